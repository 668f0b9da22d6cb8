"""The built-in executors, registered through ``register_executors`` like any third party's.

Listed as the ``executors`` entry point of the ``harness`` group. Importing this module is
light: Ray and submitit are imported only when their executor runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import hookimpl
from harness.executors.local import LocalExecutor
from harness.executors.ray_executor import RayExecutor
from harness.executors.slurm_executor import SlurmExecutor

if TYPE_CHECKING:  # pragma: no cover
    from harness.executors.base import Executor
    from harness.registry import Register


@hookimpl
def register_executors(register: Register[Executor]) -> None:
    register(LocalExecutor)
    register(RayExecutor)
    register(SlurmExecutor)
