"""Cell keys name the third-party plugins that take part, with their versions: a version bump
recomputes; provenance names every plugin's distribution and version; built-in cells keep
their keys; `harness status` reports records made by other versions."""

import shutil

import pytest
from conftest import make_distribution

from harness.cli import main
from harness.config import RunSpec
from harness.plugins import Registries, discover
from harness.runner import execute, plan
from harness.store import Store
from harness.testing import registries_with


@pytest.fixture
def toy_dist(tmp_path, monkeypatch):
    """The toy plugins (tests/toy) installed as the third-party distribution "tp-toy"."""
    site = tmp_path / "site"

    def install(version: str) -> Registries:
        shutil.rmtree(site, ignore_errors=True)
        make_distribution(site, "tp-toy", {"toy": "toy_plugins"}, version=version)
        return Registries(discover(distributions=["tp-toy"]))

    monkeypatch.syspath_prepend(str(site))
    return install


def _spec(tmp_path):
    return RunSpec(output_dir=tmp_path / "out", leaderboard_dir=tmp_path / "lb")


def test_version_bump_recomputes_and_provenance_names_the_plugins(toy_dist, tmp_path):
    regs = toy_dist("1.0")
    cells = plan(_spec(tmp_path), regs)
    assert {c.cell.plugins["tp-toy"] for c in cells} == {"1.0"}
    store = Store(tmp_path / "out")
    assert execute(cells, store, regs, device="cpu", progress=False).done == len(cells)
    rec = store.get(cells[0].cell.suite, cells[0].key)
    assert rec.provenance.plugins["suite"] == {"name": "toy_suite", "plugin": "toy", "distribution": "tp-toy",
                                               "version": "1.0", "origin": "entry point"}
    assert rec.provenance.plugins["model_source"]["distribution"] == "tp-toy"
    # same version: every cell reused
    assert execute(plan(_spec(tmp_path), toy_dist("1.0")), store, regs, device="cpu", progress=False).skipped == 2
    # a new version: new keys, every cell recomputed
    regs2 = toy_dist("1.1")
    cells2 = plan(_spec(tmp_path), regs2)
    assert {c.key for c in cells2}.isdisjoint(c.key for c in cells)
    assert execute(cells2, store, regs2, device="cpu", progress=False).done == len(cells2)


def test_builtin_cells_keep_their_keys():
    regs = registries_with(builtins=True)
    cells = plan(RunSpec(suites=["lm_eval"], models=["zoo:zoo-32"]), regs)
    assert all(c.cell.plugins == {} for c in cells)
    data = cells[0].cell.model_dump(mode="json")
    from harness.results import content_hash

    for empty in ("plugins", "datasets", "task_dirs"):  # fields a built-in cell on default data leaves out
        if empty in data:
            assert not data.pop(empty)
    assert cells[0].key == content_hash(data)  # the key of a cell without those fields, as before


def test_status_reports_records_of_other_versions(toy_dist, tmp_path, monkeypatch, capsys):
    regs = toy_dist("1.0")
    execute(plan(_spec(tmp_path), regs), Store(tmp_path / "out"), regs, device="cpu", progress=False)
    toy_dist("2.0")
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "toy")
    import harness.plugins

    harness.plugins.reset()
    assert main(["status", "--output-dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    harness.plugins.reset()
    assert "toy_suite: done 0, failed 0, pending 2 (2 pending cells have records made by other plugin versions: " \
           "tp-toy==1.0)" in out
