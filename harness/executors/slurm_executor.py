"""The Slurm executor: the cells of a sweep as one submitit job array.

Each array task runs :func:`harness.executors.worker.run_cell` on one cell. Jobs that end
without a result (node failure, preemption, Slurm time limit) are resubmitted
``max_retries`` times; idempotent cells make that safe. ``local=True`` uses submitit's
LocalExecutor (processes on this machine) to try a sweep without a cluster. The store
folder, ``folder`` (submitit's logs and pickles) and any ``--plugins-dir`` must be on a
filesystem shared with the compute nodes.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness.executors.base import (
    Executor,
    ExecutorConfig,
    OnCell,
    RunSummary,
    Tally,
    make_job,
    plugin_set_payload,
    settle_lost_cell,
    split_todo,
)

if TYPE_CHECKING:  # pragma: no cover
    from harness.plugins import Registries
    from harness.cell import PlannedCell
    from harness.store import Store

log = logging.getLogger("harness")
INSTALL_HINT = "pip install 'harness-interp[slurm]'"


def import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        from harness.errors import SpecError

        raise SpecError(
            f"--executor slurm needs submitit, which is not installed. Install it with: {INSTALL_HINT}"
        ) from None
    return submitit


class SlurmConfig(ExecutorConfig):
    """Options of the Slurm executor."""

    partition: str | None = Field(None, description="Partition.", json_schema_extra={"metavar": "P"})
    gpus: int = Field(0, ge=0, description="GPUs per job (one cell per job).", json_schema_extra={"metavar": "G"})
    time_min: int = Field(60, gt=0, description="Time limit per job, minutes.", json_schema_extra={"metavar": "T"})
    folder: Path = Field(Path("harness-slurm"), description="submitit logs and pickles.",
                         json_schema_extra={"metavar": "DIR"})
    cpus_per_task: int | None = Field(None, description="CPUs per job.",
                                      json_schema_extra={"cli": "--slurm-cpus", "metavar": "N"})
    mem_gb: float | None = Field(None, description="Memory per job.", json_schema_extra={"metavar": "GB"})
    array_parallelism: int | None = Field(None, description="At most N jobs at once.",
                                          json_schema_extra={"metavar": "N"})
    local: bool = Field(False, description="Run the job array on this machine with submitit's LocalExecutor "
                        "(testing).")
    poll_s: float = Field(1.0, gt=0, description="Seconds between polls of the jobs (spec only).",
                          json_schema_extra={"cli": False})
    extra_parameters: dict[str, Any] = Field(
        default_factory=dict, description="Extra submitit parameters, e.g. slurm_account (spec only).")


class SlurmExecutor(Executor):
    """A submitit job array, one task per cell."""

    name = "slurm"
    description = "a submitit job array"
    Config = SlurmConfig

    def __init__(self, config: SlurmConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.folder, self.partition, self.gpus, self.time_min = Path(c.folder), c.partition, c.gpus, c.time_min
        self.cpus_per_task, self.mem_gb, self.array_parallelism = c.cpus_per_task, c.mem_gb, c.array_parallelism
        self.local, self.max_retries, self.cell_timeout, self.poll_s = c.local, c.max_retries, c.cell_timeout, c.poll_s
        self.extra_parameters = dict(c.extra_parameters)

    def _executor(self, submitit: Any) -> Any:
        from harness.errors import SpecError

        folder = str(self.folder.resolve() / "%j")
        if self.local:
            ex = submitit.LocalExecutor(folder=folder)
            params: dict[str, Any] = {"timeout_min": self.time_min}
            if self.gpus:
                params["gpus_per_node"] = self.gpus
            ex.update_parameters(**params)
            return ex
        if shutil.which("sbatch") is None:
            raise SpecError("--executor slurm: no `sbatch` on PATH (not a Slurm login node). Run from a node that "
                            "can submit jobs, or try the sweep locally with --slurm-local.")
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        params = {"timeout_min": self.time_min, "gpus_per_node": self.gpus, "tasks_per_node": 1, "nodes": 1,
                  "name": "harness"}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.cpus_per_task:
            params["cpus_per_task"] = self.cpus_per_task
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        if self.array_parallelism:
            params["slurm_array_parallelism"] = self.array_parallelism
        ex.update_parameters(**params, **self.extra_parameters)
        return ex

    def run(self, cells: list[PlannedCell], store: Store, registries: Registries, *, device: str = "auto",
            force: bool = False, progress: bool = True, on_cell: OnCell | None = None) -> RunSummary:
        from harness.executors.worker import run_cell
        from harness.provenance import now_iso

        tally = Tally(store, on_cell)
        todo = split_todo(cells, store, force, tally)
        if not todo:
            return tally.summary
        submitit = import_submitit()
        ex = self._executor(submitit)
        plugins = plugin_set_payload(registries)
        sweep = uuid.uuid4().hex
        jobs = [(pc, {**make_job(pc, store, plugins, device=device, force=force), "sweep": sweep,
                      "timeout": self.cell_timeout}) for pc in todo]
        submitted, t0 = now_iso(), time.perf_counter()
        handles = ex.map_array(run_cell, [job for _, job in jobs])
        log.info("submitted %d cells as job array %s (logs in %s)", len(handles),
                 handles[0].job_id.split("_")[0] if handles else "-", self.folder)
        pending = [(h, pc, job, 0) for h, (pc, job) in zip(handles, jobs, strict=True)]
        while pending:
            still = []
            for handle, pc, job, attempt in pending:
                if not handle.done():
                    still.append((handle, pc, job, attempt))
                    continue
                try:
                    tally.add(pc, handle.result()["outcome"])
                    continue
                except Exception as e:  # noqa: BLE001 - the job ended without a result
                    error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                verdict = settle_lost_cell(store, pc, job, sweep=sweep, force=force, error_type="JobFailed",
                                           message=f"job {handle.job_id} ended without a result: {error}",
                                           started=submitted, wall_s=time.perf_counter() - t0,
                                           can_retry=attempt < self.max_retries)
                if verdict == "retry":
                    log.warning("job %s (cell %s) ended without a result (%s); resubmitting", handle.job_id,
                                pc.key[:12], error)
                    still.append((ex.submit(run_cell, job), pc, job, attempt + 1))
                else:
                    tally.add(pc, verdict)
            pending = still
            if pending:
                time.sleep(self.poll_s)
        return tally.summary
