"""The executor interface and what travels to a worker: JSON and paths, never objects.

An executor is a plugin (hook ``register_executors``): a subclass of :class:`Executor`
with a ``name``, a ``description`` and a ``Config`` (extending :class:`ExecutorConfig`)
whose fields are its spec fields (``executor: {name, config}``) and its ``harness run``
flags (see :mod:`harness.executors.cli_options`).

A job (one cell) is a JSON-able dict::

    {"cell": {...cell payload...}, "store": "<store root>", "plugins": {...plugin set...},
     "device": "auto|cpu|cuda", "force": false, "progress": false}

The plugin set says how the worker rebuilds the same registries: the entry-point plugin
names the driver loaded, its ``--plugins-dir`` folders, and importable modules that were
registered in-process (tests). The device is resolved in the worker, so a Ray task on a GPU
node sees its GPU.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from harness.config import PluginConfig
from harness.protocols import Plugin

if TYPE_CHECKING:  # pragma: no cover
    from harness.cell import Outcome, PlannedCell
    from harness.plugins import Registries
    from harness.results import RunRecord
    from harness.store import Store

log = logging.getLogger("harness")

OnCell = Callable[["PlannedCell", "RunRecord | None"], None]


@dataclass
class RunSummary:
    """Counts of one sweep: every planned cell is counted exactly once."""

    done: int = 0
    skipped: int = 0
    failed: int = 0


class ExecutorConfig(PluginConfig):
    """Options every executor has (``harness run --cell-timeout`` / ``--max-retries``)."""

    cell_timeout: float | None = Field(
        None, description="Kill a cell still running after this many seconds and record it failed; the sweep goes on.",
        json_schema_extra={"cli": "--cell-timeout", "metavar": "SECONDS"})
    max_retries: int = Field(
        1, ge=0, description="Retries of a cell whose worker died (crash, lost node).",
        json_schema_extra={"cli": "--max-retries", "metavar": "N"})

    @field_validator("cell_timeout")
    @classmethod
    def _positive_timeout(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be a positive number of seconds")
        return v


class Executor(Plugin):
    """Computes planned cells and publishes their records into a store.

    Built from its validated ``Config`` (``self.config``); registered with the
    ``register_executors`` hook. Subclasses set ``name``, ``description`` and ``Config``.
    """

    kind: ClassVar[str] = "executor"
    Config: ClassVar[type[PluginConfig]] = ExecutorConfig

    @abstractmethod
    def run(
        self,
        cells: list[PlannedCell],
        store: Store,
        registries: Registries,
        *,
        device: str = "auto",
        force: bool = False,
        progress: bool = True,
        on_cell: OnCell | None = None,
    ) -> RunSummary:
        """Compute every cell not yet recorded ``ok`` (all with ``force``); failures are recorded, not raised."""


# --------------------------------------------------------------------------- driver helpers
class Tally:
    """Counts outcomes and calls ``on_cell`` once per cell (with the record published, if any)."""

    def __init__(self, store: Store, on_cell: OnCell | None) -> None:
        self.store, self.on_cell, self.summary = store, on_cell, RunSummary()

    def add(self, pc: PlannedCell, outcome: Outcome, record: RunRecord | None = None) -> None:
        setattr(self.summary, outcome, getattr(self.summary, outcome) + 1)
        if self.on_cell is not None:
            if record is None and outcome != "skipped":
                record = self.store.get(pc.cell.suite, pc.key)
            self.on_cell(pc, record)


def split_todo(cells: list[PlannedCell], store: Store, force: bool, tally: Tally) -> list[PlannedCell]:
    """Cells to compute; those already recorded ``ok`` are counted as skipped (unless ``force``)."""
    todo = []
    for pc in cells:
        if not force and store.is_done(pc.cell.suite, pc.key):
            tally.add(pc, "skipped")
        else:
            todo.append(pc)
    return todo


#: What to do about a cell whose worker ended without a result (see :func:`settle_lost_cell`).
LostVerdict = Literal["done", "failed", "skipped", "retry"]


def settle_lost_cell(store: Store, pc: PlannedCell, job: dict[str, Any], *, sweep: str, force: bool,
                     error_type: str, message: str, started: str, wall_s: float,
                     can_retry: bool = False) -> LostVerdict:
    """Decide the fate of a cell whose worker ended without a result (task error, lost node, dead job).

    ``skipped``: another sweep recorded it ``ok`` meanwhile (unless ``force``). ``failed``: this
    sweep already recorded it failed (e.g. its watchdog on a timeout). ``retry``: nothing
    recorded and ``can_retry``; the caller resubmits it. Otherwise a failed record
    (``error_type``: ``message``) is published and its outcome returned.
    """
    from harness.executors.worker import record_failure

    rec = store.get(pc.cell.suite, pc.key)
    if rec is not None and rec.status == "ok" and not force:
        return "skipped"
    if rec is not None and rec.error and rec.error.get("sweep") == sweep:
        return "failed"
    if can_retry:
        return "retry"
    return record_failure(job, error_type, message, started=started, wall_s=wall_s)  # type: ignore[return-value]


def cell_payload(pc: PlannedCell) -> dict[str, Any]:
    """The JSON a worker needs to rebuild and re-validate ``pc``."""
    return {
        "key": pc.key,
        "cell": pc.cell.model_dump(mode="json"),
        "label": pc.label,
        "model_ref": str(pc.model_ref),
        "suite": pc.suite_cls.name,
        "suite_config": pc.suite_config.model_dump(mode="json"),
        "method": pc.method_cls.name if pc.method_cls else None,
        "method_config": pc.method_config.model_dump(mode="json") if pc.method_config is not None else None,
    }


def plugin_set_payload(registries: Registries) -> dict[str, Any]:
    """How a worker loads the same plugins as ``registries`` (JSON; folders made absolute)."""
    from harness.errors import SpecError

    entry_points: list[str] = []
    dirs: list[str] = []
    modules: list[list[str]] = []
    ps = registries.plugin_set
    for name, source in sorted(ps.sources.items()):
        if source.origin == "entry point":
            entry_points.append(name)
        elif source.origin.startswith("plugins-dir "):
            d = str(Path(source.origin.removeprefix("plugins-dir ")).resolve())
            if d not in dirs:
                dirs.append(d)
        else:
            obj = ps.pm.get_plugin(name)
            if not isinstance(obj, ModuleType) or obj.__name__ == "__main__":
                raise SpecError(
                    f'Plugin "{name}" was registered in-process as an object, which cannot be sent to a worker '
                    "process. Install it (entry point group 'harness') or load it with --plugins-dir."
                )
            modules.append([name, obj.__name__])
    return {"entry_points": entry_points, "plugins_dirs": dirs, "modules": modules}


def make_job(pc: PlannedCell, store: Store, plugins: dict[str, Any], *, device: str, force: bool) -> dict[str, Any]:
    return {
        "cell": cell_payload(pc),
        "store": str(Path(store.root).resolve()),
        "plugins": plugins,
        "device": device,
        "force": force,
        "progress": False,
    }
