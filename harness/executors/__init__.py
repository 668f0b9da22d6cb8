"""Where cells are computed: ``local`` (default; in-process or a process pool), ``ray``, ``slurm``.

Every executor sends each cell to one worker function (:func:`harness.executors.worker.run_cell`)
as JSON plus paths: the worker rebuilds the plugin registries, re-validates the cell, computes
it exactly as the in-process runner does and publishes the record atomically into the store.
Cells are idempotent, so a sweep can be stopped and started again, or run twice at once.

Nothing heavy is imported here: ray and submitit are imported when their executor is made.
"""

from __future__ import annotations

from typing import Any

from harness.executors.base import Executor, RunSummary

EXECUTORS = ("local", "ray", "slurm")

__all__ = ["EXECUTORS", "Executor", "RunSummary", "make_executor"]


def make_executor(name: str, **options: Any) -> Executor:
    """The executor called ``name`` (one of :data:`EXECUTORS`) built with ``options``."""
    if name == "local":
        from harness.executors.local import LocalExecutor

        return LocalExecutor(**options)
    if name == "ray":
        from harness.executors.ray_executor import RayExecutor

        return RayExecutor(**options)
    if name == "slurm":
        from harness.executors.slurm_executor import SlurmExecutor

        return SlurmExecutor(**options)
    from harness.errors import SpecError, did_you_mean

    raise SpecError(f'Unknown executor "{name}".{did_you_mean(name, EXECUTORS)} Choose one of {", ".join(EXECUTORS)}.')
