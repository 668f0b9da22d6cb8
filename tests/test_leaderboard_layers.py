"""The leaderboard package's layers: the site sits below the writer and reads no store (its
import edges are checked in tests/test_import_graph.py)."""

import subprocess
import sys

import pytest
from conftest import REPO

import harness.leaderboard
from harness.leaderboard import LeaderboardDoc, RowDoc, ValueDoc
from harness.site import RecordArtifacts, build_site

FORBIDDEN_FOR_SITE = ("harness.store", "harness.leaderboard.writing", "harness.leaderboard.building")


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
