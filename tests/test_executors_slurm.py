"""The Slurm executor through submitit's LocalExecutor (a job array of local processes)."""

import shutil
from pathlib import Path

import pytest

pytest.importorskip("submitit")

from harness.config import RunSpec  # noqa: E402
from harness.errors import SpecError  # noqa: E402
from harness.executors import make_executor  # noqa: E402
from harness.plugins import Registries, discover  # noqa: E402
from harness.runner import execute, plan  # noqa: E402
from harness.store import Store  # noqa: E402

TOY_DIR = Path(__file__).parent / "toy"


@pytest.fixture
def regs():
    return Registries(discover(entry_points=False, plugins_dirs=[TOY_DIR]))


def test_submitit_local_job_array_resubmits_a_dead_job(regs, tmp_path):
    spec = RunSpec(output_dir=tmp_path / "out", leaderboard_dir=tmp_path / "lb", device="cpu",
                   suites=[{"name": "toy_suite", "config": {"crash_once_dir": str(tmp_path / "m")}}],
                   models=["toy:a"])
    cells, store = plan(spec, regs), Store(spec.output_dir)
    ex = make_executor("slurm", local=True, folder=tmp_path / "slurm", time_min=5, poll_s=0.5)
    summary = execute(cells, store, regs, device="cpu", executor=ex)
    assert (summary.done, summary.skipped, summary.failed) == (2, 0, 0)
    assert (tmp_path / "m" / "crashed").exists()
    files = sorted((store.root / "records").glob("*/*.json"))
    assert sorted(f.stem for f in files) == sorted(c.key for c in cells)
    assert all(store.get(c.cell.suite, c.key).status == "ok" for c in cells)
    assert list((tmp_path / "slurm").glob("*/*_log.out"))  # submitit's per-job logs


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="a Slurm client is installed here")
def test_slurm_without_sbatch_says_so(regs, tmp_path):
    spec = RunSpec(output_dir=tmp_path / "out", device="cpu", suites=["toy_suite"])
    with pytest.raises(SpecError, match="--slurm-local"):
        execute(plan(spec, regs), Store(spec.output_dir), regs, executor=make_executor("slurm", folder=tmp_path))
