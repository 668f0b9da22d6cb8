"""Executors: the local process pool, per-cell timeouts, worker deaths, worker re-validation, CLI flags."""

import json
import re
import sys
import threading
from pathlib import Path

import pytest

from harness.config import RunSpec
from harness.errors import SpecError
from harness.executors import make_executor
from harness.executors.base import make_job, plugin_set_payload
from harness.executors.worker import rebuild_cell, run_cell
from harness.plugins import Registries, discover
from harness.runner import execute, plan
from harness.store import Store

TOY_DIR = Path(__file__).parent / "toy"


@pytest.fixture
def dir_registries():
    """Toy plugins loaded from --plugins-dir: the way a worker process can load them too."""
    return Registries(discover(entry_points=False, plugins_dirs=[TOY_DIR]))


def _spec(tmp_path, suite_config=None, **kw):
    return RunSpec(output_dir=tmp_path / "out", leaderboard_dir=tmp_path / "lb", device="cpu",
                   suites=[{"name": "toy_suite", "config": suite_config or {}}], **kw)


def record_files(store: Store) -> list[Path]:
    return sorted((store.root / "records").glob("*/*.json"))


def assert_recorded_once(store: Store, cells, status="ok"):
    files = record_files(store)
    assert sorted(f.stem for f in files) == sorted(c.key for c in cells)  # one file per cell, nothing else
    assert not list((store.root / "records").rglob(".*.tmp"))
    assert {store.get(c.cell.suite, c.key).status for c in cells} == {status}


def test_pool_of_two_workers_records_every_cell_once_and_retries_a_dead_worker(dir_registries, tmp_path):
    spec = _spec(tmp_path, {"sleep_s": 0.2, "crash_once_dir": str(tmp_path / "markers")},
                 models=["toy:a", "toy:b"], seeds=[0, 1])
    cells = plan(spec, dir_registries)
    store = Store(spec.output_dir)
    seen = []
    ex = make_executor("local", workers=2, max_retries=1)
    summary = execute(cells, store, dir_registries, device="cpu", executor=ex,
                      on_cell=lambda pc, rec: seen.append((pc.key, rec.status)))
    assert (summary.done, summary.skipped, summary.failed) == (8, 0, 0)
    assert sorted(k for k, _ in seen) == sorted(c.key for c in cells)
    assert (tmp_path / "markers" / "crashed").exists()  # one worker died mid-cell; its cell was retried
    assert_recorded_once(store, cells)
    base = store.get("toy_suite", cells[0].key)
    assert base.output.metrics[0].value == pytest.approx(1.0) and base.provenance.device.startswith("cpu")
    again = execute(cells, store, dir_registries, device="cpu", executor=ex)
    assert (again.done, again.skipped, again.failed) == (0, 8, 0)


def test_cell_timeout_kills_a_hanging_cell_and_the_sweep_goes_on(dir_registries, tmp_path):
    spec = _spec(tmp_path, {"hang_label": "toy_eraser"}, seeds=[0, 1])
    cells = plan(spec, dir_registries)
    store = Store(spec.output_dir)
    summary = execute(cells, store, dir_registries, device="cpu",
                      executor=make_executor("local", workers=2, cell_timeout=2))
    assert (summary.done, summary.failed) == (2, 2)
    for pc in cells:
        rec = store.get("toy_suite", pc.key)
        if pc.method_cls is None:
            assert rec.status == "ok"
        else:
            assert rec.status == "failed" and rec.error["message"] == "timeout after 2s"
            assert rec.error["type"] == "CellTimeout" and 2 <= rec.provenance.wall_time_s < 60


def test_worker_death_without_retries_is_recorded_failed(toy_registries, tmp_path):
    # in-process registered plugins travel by module name (the spawned worker imports them)
    spec = _spec(tmp_path, {"crash_once_dir": str(tmp_path / "m")})
    cells = plan(spec, toy_registries)
    store = Store(spec.output_dir)
    summary = execute(cells, store, toy_registries, device="cpu",
                      executor=make_executor("local", workers=1, cell_timeout=120, max_retries=0))
    assert (summary.done, summary.failed) == (1, 1)
    rec = store.get("toy_suite", cells[1].key)
    assert rec.error["type"] == "WorkerDied" and "exit code 13" in rec.error["message"]


def test_two_concurrent_sweeps_never_duplicate_a_cell(toy_registries, tmp_path):
    spec = _spec(tmp_path, {"sleep_s": 0.05}, models=["toy:a", "toy:b"], seeds=[0, 1, 2, 3])
    cells = plan(spec, toy_registries)
    store = Store(spec.output_dir)
    results = []

    def sweep(order):
        results.append(execute(order, store, toy_registries, device="cpu", progress=False))

    threads = [threading.Thread(target=sweep, args=(cells,)), threading.Thread(target=sweep, args=(cells[::-1],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.done for r in results) == len(cells)  # each cell published by exactly one sweep
    assert all(r.done + r.skipped == len(cells) and r.failed == 0 for r in results)
    assert_recorded_once(store, cells)


def test_worker_revalidates_the_cell(dir_registries, tmp_path):
    spec = _spec(tmp_path)
    pc = plan(spec, dir_registries)[1]
    store = Store(spec.output_dir)
    job = make_job(pc, store, plugin_set_payload(dir_registries), device="cpu", force=False)
    job = json.loads(json.dumps(job))  # only JSON travels
    assert rebuild_cell(job["cell"], dir_registries).key == pc.key
    bad = json.loads(json.dumps(job))
    bad["cell"]["cell"]["model_fingerprint"] = "something-else"
    bad["cell"]["key"] = "0" * 64
    with pytest.raises(SpecError, match="model fingerprint"):
        rebuild_cell(bad["cell"], dir_registries)
    assert run_cell(job) == {"key": pc.key, "outcome": "done", "message": ""}
    assert run_cell(job)["outcome"] == "skipped"
    tampered = json.loads(json.dumps(job))
    tampered["cell"]["suite_config"]["sleep_s"] = 1.0  # no longer the cell the key names
    tampered["force"] = True
    res = run_cell(tampered)
    assert res["outcome"] == "skipped" and "suite config differs" in res["message"]  # the ok record stays


def test_plugins_registered_as_objects_cannot_travel(tmp_path):
    import toy_plugins

    from harness.testing import registries_with

    class Holder:
        register_suites = staticmethod(toy_plugins.register_suites)

    regs = registries_with(("toy", toy_plugins))
    assert plugin_set_payload(regs) == {"entry_points": [], "plugins_dirs": [], "modules": [["toy", "toy_plugins"]]}
    with pytest.raises(SpecError, match="--plugins-dir"):
        plugin_set_payload(Registries(discover(entry_points=False, extra=[("obj", Holder())])))


@pytest.mark.parametrize("module,name,hint", [("ray", "ray", "harness-interp[ray]"),
                                              ("submitit", "slurm", "harness-interp[slurm]")])
def test_missing_engine_is_one_clear_error(dir_registries, tmp_path, monkeypatch, module, name, hint):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    cells = plan(_spec(tmp_path), dir_registries)
    with pytest.raises(SpecError, match=re.escape(f"pip install '{hint}'")):
        execute(cells, Store(tmp_path / "out"), dir_registries, executor=make_executor(name, local=True)
                if name == "slurm" else make_executor(name))


def test_bad_executor_options():
    with pytest.raises(SpecError, match="at least 1"):
        make_executor("local", workers=0)
    with pytest.raises(SpecError, match='Did you mean "ray"'):
        make_executor("rayy")


def test_settle_lost_cell_skips_fails_retries_or_records(dir_registries, tmp_path):
    from harness.executors.base import settle_lost_cell

    spec = _spec(tmp_path)
    base_cell, eraser_cell = plan(spec, dir_registries)
    store = Store(spec.output_dir)
    plugins = plugin_set_payload(dir_registries)

    def settle(pc, sweep="s1", **kw):
        job = {**make_job(pc, store, plugins, device="cpu", force=False), "sweep": sweep}
        return settle_lost_cell(store, pc, job, sweep=sweep, force=False, error_type="JobFailed",
                                message="job 7 ended without a result", started="2026-01-01T00:00:00", wall_s=1.0,
                                **kw)

    assert settle(eraser_cell, can_retry=True) == "retry" and store.get("toy_suite", eraser_cell.key) is None
    assert settle(eraser_cell) == "failed"  # nothing recorded, no retry left: a failed record of this sweep
    rec = store.get("toy_suite", eraser_cell.key)
    assert rec.status == "failed" and rec.error["type"] == "JobFailed" and rec.error["sweep"] == "s1"
    assert settle(eraser_cell, can_retry=True) == "failed"  # this sweep recorded it already: no retry
    assert settle(eraser_cell, sweep="s2", can_retry=True) == "retry"  # another sweep's failure is retried
    assert run_cell(make_job(base_cell, store, plugins, device="cpu", force=False))["outcome"] == "done"
    assert settle(base_cell, can_retry=True) == "skipped"  # recorded ok meanwhile by another sweep
    assert store.get("toy_suite", base_cell.key).status == "ok"


def test_unset_workers_follow_harness_workers_gpus_or_cores(monkeypatch):
    from harness.executors import local

    monkeypatch.delenv("HARNESS_WORKERS", raising=False)
    monkeypatch.setattr(local.os, "cpu_count", lambda: 2)
    assert local.auto_workers("cpu") == 2
    monkeypatch.setattr(local.os, "cpu_count", lambda: 64)
    assert local.auto_workers("cpu") == local.AUTO_CPU_WORKERS  # each worker holds its own model: capped
    monkeypatch.setattr(local, "visible_gpus", lambda: ["0", "1", "2"])
    assert local.auto_workers("cuda") == 3 and local.auto_workers("auto") == 3 and local.auto_workers("cpu") == 4
    monkeypatch.setattr(local, "visible_gpus", lambda: [])
    assert local.auto_workers("mps") == 1 and local.auto_workers("auto") == 4
    monkeypatch.setenv("HARNESS_WORKERS", "3")
    assert local.auto_workers("cuda") == 3
    monkeypatch.setenv("HARNESS_WORKERS", "two")
    with pytest.raises(SpecError, match="HARNESS_WORKERS='two'.*whole number"):
        local.auto_workers("cpu")


def test_unset_workers_run_one_cell_in_process(dir_registries, tmp_path, monkeypatch):
    """Never more workers than cells: a single cell computes in this process (no pool is started)."""
    from harness.executors import local

    monkeypatch.delenv("HARNESS_WORKERS", raising=False)
    monkeypatch.setattr(local.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(local, "_Pool", None)  # a pool would fail
    spec = _spec(tmp_path, {"sleep_s": 0.0}, models=["toy:a"], seeds=[0])
    cells = plan(spec, dir_registries)
    cells = cells[:1]
    ex = make_executor("local")
    summary = execute(cells, Store(spec.output_dir), dir_registries, device="cpu", executor=ex)
    assert (summary.done, summary.failed) == (1, 0) and ex.slot_count("cpu", len(cells)) == 1
