"""The Ray executor: each cell is a Ray task with a resource request.

Connects to a running cluster (``address``: ``auto``, ``ray://head:10001`` or ``head:6379``)
or starts a local one with ``num_cpus`` CPUs. A task whose worker dies (node lost, OOM kill,
segfault) is retried by Ray ``max_retries`` times; as cells are idempotent a retry either
finds the record and skips, or computes the cell. Workers need harness and the plugins
installed, and the store folder (and any ``--plugins-dir``) on a shared filesystem.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
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
INSTALL_HINT = "pip install 'harness-interp[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        from harness.errors import SpecError

        raise SpecError(f"--executor ray needs Ray, which is not installed. Install it with: {INSTALL_HINT}") from None
    return ray


class RayConfig(ExecutorConfig):
    """Options of the Ray executor."""

    address: str | None = Field(
        None, description="Cluster to join (auto, HEAD:6379 or ray://HEAD:10001); default: start a local one.",
        json_schema_extra={"metavar": "ADDR"})
    num_cpus: int | None = Field(None, description="CPUs of a local cluster (default: all).",
                                 json_schema_extra={"metavar": "N"})
    cpus_per_cell: float = Field(1.0, description="CPUs requested per cell.",
                                 json_schema_extra={"cli": "--cpus-per-cell", "metavar": "N"})
    gpus_per_cell: float | None = Field(
        None, description="GPUs requested per cell (default: 1 when the device is cuda, or auto on a GPU cluster).",
        json_schema_extra={"cli": "--gpus-per-cell", "metavar": "N"})
    max_retries: int = Field(2, ge=0, description="Retries of a cell whose worker died (crash, lost node).",
                             json_schema_extra={"cli": "--max-retries", "metavar": "N"})
    init_kwargs: dict[str, Any] = Field(default_factory=dict,
                                        description="Extra keyword arguments of ray.init (spec only).")


class RayExecutor(Executor):
    """One Ray task per cell (``num_cpus`` / ``num_gpus`` per task)."""

    name = "ray"
    description = "one Ray task per cell"
    Config = RayConfig

    def __init__(self, config: RayConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        c = self.config
        self.address, self.num_cpus = c.address, c.num_cpus
        self.cpus_per_cell, self.gpus_per_cell = c.cpus_per_cell, c.gpus_per_cell
        self.max_retries, self.cell_timeout = c.max_retries, c.cell_timeout
        self.init_kwargs = dict(c.init_kwargs)

    def _connect(self, ray: Any) -> bool:
        """Connect or start a cluster; True when this call started it (and must shut it down)."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"log_to_driver": bool(os.environ.get("HARNESS_VERBOSE")), **self.init_kwargs}
        if self.address:
            kwargs["address"] = self.address
        else:
            kwargs.setdefault("num_cpus", self.num_cpus)
            kwargs.setdefault("include_dashboard", False)
        ray.init(**kwargs)
        return True

    def _gpus(self, ray: Any, device: str) -> float:
        if self.gpus_per_cell is not None:
            return self.gpus_per_cell
        if device == "cuda":
            return 1.0
        if device == "auto":  # a GPU per cell when the cluster has GPUs
            return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        return 0.0

    def run(self, cells: list[PlannedCell], store: Store, registries: Registries, *, device: str = "auto",
            force: bool = False, progress: bool = True, on_cell: OnCell | None = None) -> RunSummary:
        from harness.executors.worker import run_cell
        from harness.provenance import now_iso

        tally = Tally(store, on_cell)
        todo = split_todo(cells, store, force, tally)
        if not todo:
            return tally.summary
        ray = import_ray()
        plugins = plugin_set_payload(registries)
        started_here = self._connect(ray)
        try:
            gpus = self._gpus(ray, device)
            task = ray.remote(num_cpus=self.cpus_per_cell, num_gpus=gpus, max_retries=self.max_retries,
                              retry_exceptions=False)(run_cell)
            sweep = uuid.uuid4().hex
            jobs: dict[Any, tuple[PlannedCell, dict[str, Any]]] = {}
            submitted, t0 = now_iso(), time.perf_counter()
            for pc in todo:
                job = {**make_job(pc, store, plugins, device=device, force=force), "sweep": sweep,
                       "timeout": self.cell_timeout}
                jobs[task.remote(job)] = (pc, job)
            log.info("submitted %d cells to Ray (%s CPU, %s GPU each)", len(jobs), self.cpus_per_cell, gpus)
            pending = list(jobs)
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    pc, job = jobs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - worker lost beyond retries (Ray retried it), task error
                        verdict = settle_lost_cell(store, pc, job, sweep=sweep, force=force, error_type="WorkerDied",
                                                   message=f"Ray task failed: {type(e).__name__}: {e}",
                                                   started=submitted, wall_s=time.perf_counter() - t0)
                        tally.add(pc, verdict)  # type: ignore[arg-type] - never "retry" without can_retry
                        continue
                    tally.add(pc, result["outcome"])
        finally:
            if started_here:
                ray.shutdown()
        return tally.summary
