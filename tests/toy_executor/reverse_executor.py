"""A third-party executor, as a one-file plugin: cells computed in this process, last planned first.

It registers through ``register_executors`` exactly as a package would, and its one option
(``order_file``) becomes ``harness run --reverse-order-file`` and the spec's
``executor: {name: reverse, config: {order_file: ...}}``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.cell import compute_cell, publish_record
from harness.context import resolve_device
from harness.executors.base import Executor, ExecutorConfig, Tally, split_todo


class ReverseConfig(ExecutorConfig):
    order_file: Path | None = Field(None, description="Append the key of each cell computed here to this file.")


class ReverseExecutor(Executor):
    """Computes the cells to do in this process, in reverse planned order."""

    name = "reverse"
    description = "this process, last planned cell first (a test executor)"
    Config = ReverseConfig

    def run(self, cells, store, registries, *, device="auto", force=False, progress=True, on_cell=None):
        tally = Tally(store, on_cell)
        todo = split_todo(cells, store, force, tally)
        resolved = resolve_device(device) if todo else "cpu"
        for pc in reversed(todo):
            record = compute_cell(pc, store, registries, device=resolved, progress=progress)
            outcome = publish_record(record, store, force=force)
            tally.add(pc, outcome, record if outcome != "skipped" else None)
            if self.config.order_file is not None:
                with open(self.config.order_file, "a") as fh:
                    fh.write(pc.key + "\n")
        return tally.summary


@hookimpl
def register_executors(register):
    register(ReverseExecutor)
