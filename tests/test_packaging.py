"""The distribution lists every package and every built-in plugin, exactly as a third party would."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _packages_on_disk() -> set[str]:
    found = set()
    for init in (REPO / "harness").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(REPO).parts))
    for init in (REPO / "plugins").rglob("__init__.py"):
        rel = init.parent.relative_to(REPO / "plugins").parts
        found.add(".".join(("harness_plugins", *rel)))
    return {p for p in found if "__pycache__" not in p}


def test_packages_list_matches_disk():
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == _packages_on_disk()


def test_every_builtin_plugin_has_entry_point_and_readme():
    eps = PYPROJECT["project"].get("entry-points", {}).get("harness", {})
    folders = sorted(p.name for p in (REPO / "plugins").iterdir() if (p / "__init__.py").exists())
    core = {name: value for name, value in eps.items() if not value.startswith("harness_plugins.")}
    assert core == {"executors": "harness.executors.builtin", "datasets": "harness.datasets.builtin"}  # core plugins registered the same way
    assert sorted(set(eps) - set(core)) == folders
    for name in folders:
        assert eps[name] == f"harness_plugins.{name}"
        readme = REPO / "plugins" / name / "README.md"
        assert readme.exists(), f"plugins/{name} needs a README.md"


def test_top_level_layout():
    """What is committed at the top level (caches and virtual environments are not)."""
    import subprocess

    allowed = {"pyproject.toml", "harness", "plugins", "tests", "leaderboards", "README.md", ".ci", "benchmarks",
               "docs", "specs", ".gitignore"}
    try:
        files = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True,
                               timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        import pytest

        pytest.skip("not a git checkout")
    top = {f.split("/", 1)[0] for f in files}
    assert top <= allowed, f"unexpected top-level entries: {top - allowed}"


def test_every_builtin_suite_readme_states_its_statistical_power():
    """Each suite's README says how many seeds its board has, its eval size and its primary metric's
    minimum detectable difference (the line `benchmarks/board_power.py` recomputes)."""
    import re
    import sys

    from harness.testing import registries_with

    regs = registries_with(builtins=True)
    for name in regs.suites.names():
        folder = sys.modules[regs.suites.get(name).__module__].__name__.split(".")[1]
        text = (REPO / "plugins" / folder / "README.md").read_text()
        line = next((ln for ln in text.splitlines() if ln.startswith("**Statistical power:**")), None)
        assert line is not None, f"plugins/{folder}/README.md: no '**Statistical power:**' line for suite {name}"
        assert re.search(r"Seeds: \d", line) and "Eval size:" in line and "MDD of `" in line, (folder, line)
