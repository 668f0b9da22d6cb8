"""The Ray executor on a real local cluster (127.0.0.1, 2 CPUs), started once for the module."""

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from harness.config import RunSpec  # noqa: E402
from harness.executors import make_executor  # noqa: E402
from harness.plugins import Registries, discover  # noqa: E402
from harness.runner import execute, plan  # noqa: E402
from harness.store import Store  # noqa: E402

TOY_DIR = Path(__file__).parent / "toy"


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def regs():
    return Registries(discover(entry_points=False, plugins_dirs=[TOY_DIR]))


def _plan(tmp_path, regs, suite_config, **kw):
    spec = RunSpec(output_dir=tmp_path / "out", leaderboard_dir=tmp_path / "lb", device="auto",
                   suites=[{"name": "toy_suite", "config": suite_config}], **kw)
    return plan(spec, regs), Store(spec.output_dir)


def test_ray_sweep_survives_a_killed_worker(cluster, regs, tmp_path):
    cells, store = _plan(tmp_path, regs, {"crash_once_dir": str(tmp_path / "m")}, models=["toy:a", "toy:b"])
    summary = execute(cells, store, regs, device="auto", executor=make_executor("ray", max_retries=2))
    assert (summary.done, summary.skipped, summary.failed) == (4, 0, 0)
    assert (tmp_path / "m" / "crashed").exists()  # a worker process died mid-cell and Ray retried the task
    files = sorted((store.root / "records").glob("*/*.json"))
    assert sorted(f.stem for f in files) == sorted(c.key for c in cells)
    assert all(store.get(c.cell.suite, c.key).status == "ok" for c in cells)
    assert all(store.get(c.cell.suite, c.key).provenance.device.startswith("cpu") for c in cells)  # resolved there
    again = execute(cells, store, regs, executor=make_executor("ray"))
    assert (again.done, again.skipped) == (0, 4)


def test_ray_cell_timeout(cluster, regs, tmp_path):
    cells, store = _plan(tmp_path, regs, {"hang_label": "toy_eraser"})
    summary = execute(cells, store, regs, executor=make_executor("ray", cell_timeout=3, max_retries=1))
    assert (summary.done, summary.failed) == (1, 1)
    rec = store.get("toy_suite", cells[1].key)
    assert rec.status == "failed" and rec.error["message"] == "timeout after 3s"
