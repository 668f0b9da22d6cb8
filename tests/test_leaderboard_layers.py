"""The leaderboard package's layers: the site sits below the writer and reads no store."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

import harness.leaderboard
from harness.leaderboard import LeaderboardDoc, RowDoc, ValueDoc
from harness.site import RecordArtifacts, build_site

FORBIDDEN_FOR_SITE = ("harness.store", "harness.leaderboard.writing", "harness.leaderboard.building")


def _harness_imports(path: Path) -> tuple[set[str], set[str]]:
    """The harness modules a file imports at any depth (function-level imports included), and
    those plus every ``module.name`` of its from-imports (so ``from harness import store`` counts)."""
    modules: set[str] = set()
    dotted: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            dotted.update(f"{node.module}.{a.name}" for a in node.names)
    modules = {m for m in modules if m == "harness" or m.startswith("harness.")}
    return modules, modules | {m for m in dotted if m.startswith("harness.")}


def test_site_imports_only_the_documents_and_formatters():
    modules, names = _harness_imports(REPO / "harness" / "site.py")
    assert modules == {"harness.leaderboard.documents", "harness.leaderboard.markdown"}
    assert not {m for m in names if m.startswith(FORBIDDEN_FOR_SITE)}


def test_markdown_and_statistics_import_only_the_documents():
    modules, _ = _harness_imports(REPO / "harness" / "leaderboard" / "markdown.py")
    assert modules == {"harness.leaderboard.documents"}
    # statistics also uses the shared formulas of harness.stats (paired t test, MDD), a leaf module
    modules, _ = _harness_imports(REPO / "harness" / "leaderboard" / "statistics.py")
    assert modules == {"harness.leaderboard.documents", "harness.stats"}
    assert _harness_imports(REPO / "harness" / "stats.py")[0] == set()


def test_importing_the_site_loads_no_store_building_or_writing():
    code = "import sys, harness.site; print(' '.join(m for m in sys.modules if m.startswith('harness')))"
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                cwd=REPO).stdout.split())
    assert {"harness.site", "harness.leaderboard.documents"} <= loaded
    assert not {m for m in loaded if m.startswith(FORBIDDEN_FOR_SITE)}, loaded


def test_package_names_load_lazily_and_unknown_names_fail():
    from harness.leaderboard import build_board, build_leaderboards, summarize_suite, write_schemas

    assert build_leaderboards.__module__ == "harness.leaderboard.writing"
    assert {build_board.__module__, summarize_suite.__module__} == {"harness.leaderboard.building"}
    assert write_schemas.__module__ == "harness.leaderboard.writing"
    assert set(harness.leaderboard.__all__) <= set(dir(harness.leaderboard))
    with pytest.raises(AttributeError, match="no attribute 'build_bored'"):
        harness.leaderboard.build_bored  # noqa: B018


def _board(suite: str, keys: list[str]) -> LeaderboardDoc:
    row = RowDoc(rank=1, tied=False, label="m", method="m", method_config=None, model="toy:a", seeds=[0],
                 status="ok", failures=[], win_rate=None, provenance={"record_keys": keys},
                 values={"s": ValueDoc(mean=0.5, stderr=0.1, ci_low=0.3, ci_high=0.7, n_seeds=1)})
    return LeaderboardDoc(suite=suite, suite_version="1", description="d", primary_metric="s", ranked_within="model",
                          generated_at="now", harness_version="0", columns=[], rows=[row])


def test_build_site_returns_pages_and_plots_and_leaves_boards_alone(tmp_path):
    art = tmp_path / "store" / "artifacts" / "k1" / "map.png"
    art.parent.mkdir(parents=True)
    art.write_bytes(b"\x89PNG fake")
    boards = {"toy_suite": _board("toy_suite", ["k1" * 5, "k-unknown"])}
    site = build_site(boards, tmp_path / "site", {"k1" * 5: RecordArtifacts("m", "toy:a", 0, {"map": art})})
    assert set(site.pages) == {"index.html", "toy_suite.html"}
    assert not list((tmp_path / "site").glob("*.html"))  # the caller writes the pages
    assert boards["toy_suite"].plots == {}  # no side effect on the documents
    shown = {"s by row": "plots/toy_suite_s.png", "m / toy:a / seed 0: map": "plots/toy_suite_k1k1k1k1k1_map.png"}
    assert site.plots == {"toy_suite": shown}
    assert all((tmp_path / "site" / p).is_file() for p in shown.values())
    assert 'src="plots/toy_suite_k1k1k1k1k1_map.png"' in site.pages["toy_suite.html"]
