"""Where cells are computed: executors, plugins of the ``register_executors`` hook.

Built in (:mod:`harness.executors.builtin`): ``local`` (default; in-process or a process
pool), ``ray`` and ``slurm``. Every one of them sends each cell to one worker function
(:func:`harness.executors.worker.run_cell`) as JSON plus paths: the worker rebuilds the
plugin registries, re-validates the cell, computes it exactly as the in-process runner
does and publishes the record atomically into the store. Cells are idempotent, so a sweep
can be stopped and started again, or run twice at once.

Nothing heavy is imported here: ray and submitit are imported when their executor runs.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from harness.executors.base import Executor, ExecutorConfig, RunSummary

if TYPE_CHECKING:  # pragma: no cover
    from harness.plugins import Registries
    from harness.registry import Registry

__all__ = ["Executor", "ExecutorConfig", "RunSummary", "builtin_executors", "make_executor"]


@functools.cache
def builtin_executors() -> Registry[Executor]:
    """The registry of the built-in executors alone (what the ``executors`` entry point registers)."""
    from harness.executors import builtin
    from harness.plugins import Registries, discover

    return Registries(discover(entry_points=False, extra=[("executors", builtin)])).executors


def make_executor(name: str, registries: Registries | None = None, **options: Any) -> Executor:
    """The executor called ``name`` among ``registries``' executors (default: the built-in ones),
    built with ``options`` (fields of its ``Config``, validated)."""
    from harness.executors.cli_options import executor_class

    cls = executor_class(name, builtin_executors() if registries is None else registries.executors)
    return cls(cls.parse_config(options, at=f"options of make_executor({name!r})"))
