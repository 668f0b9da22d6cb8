"""`harness new-plugin`: the generated package registers, round-trips and passes its own test."""

import os
import subprocess
import sys

import pytest
from conftest import make_distribution

from harness.errors import HarnessError
from harness.kinds import kind_names
from harness.scaffold import scaffold


@pytest.mark.parametrize("kind", kind_names())
def test_scaffold_each_kind_registers(tmp_path, kind, monkeypatch):
    name = f"my_{kind}"
    root = scaffold(name, kind, tmp_path)
    assert (root / "pyproject.toml").read_text().count(f'{name} = "harness_{name}"') == 1
    assert "bibtex" in (root / "README.md").read_text()
    monkeypatch.syspath_prepend(str(root))
    import importlib

    module = importlib.import_module(f"harness_{name}")
    from harness.testing import registries_with

    regs = registries_with((name, module))
    cls = regs[kind].get(name)
    assert cls.Config.model_validate_json(cls.Config().model_dump_json()) == cls.Config()


def test_scaffolded_metric_test_passes(tmp_path):
    root = scaffold("tiny_metric", "metric", tmp_path)
    make_distribution(tmp_path / "site", "harness-tiny-metric", {"tiny_metric": "harness_tiny_metric"})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(tmp_path / "site")]))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    env["HARNESS_LOAD_PLUGINS"] = "tiny_metric"
    r = subprocess.run([sys.executable, "-m", "harness.cli", "plugins"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert "tiny_metric" in r.stdout


def test_scaffolded_learner_trains_in_its_own_test(tmp_path):
    """The dictionary_learner scaffold is a learner that trains: its generated test (loss halves
    over 200 steps, save / load round trip) passes as generated."""
    root = scaffold("tiny_sae", "dictionary_learner", tmp_path)
    assert 'impl = ".model:TinySaeSAE"' in (root / "harness_tiny_sae" / "__init__.py").read_text()
    make_distribution(tmp_path / "site", "harness-tiny-sae", {"tiny_sae": "harness_tiny_sae"})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(tmp_path / "site")]))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("name,kind", [("Bad-Name", "metric"), ("ok_name", "widget")])
def test_scaffold_refuses_bad_input(tmp_path, name, kind):
    with pytest.raises(HarnessError):
        scaffold(name, kind, tmp_path)
