"""One planned cell: what it is, how it is computed, how its record is published.

This module sits below the runner and the executors: :mod:`harness.runner` plans cells
and dispatches them to an executor; every executor (in-process or in a worker) computes a
cell with :func:`compute_cell` and stores its record with :func:`publish_record`.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from harness.config import ModelRef, PluginConfig
from harness.context import CellContext, seed_everything
from harness.errors import HarnessError
from harness.metric_inputs import ModelInputs
from harness.protocols import DictionaryLearner, LearnerSpec, Plugin, Suite
from harness.provenance import now_iso, provenance
from harness.results import CellKey, Provenance, RunRecord, SuiteOutput

if TYPE_CHECKING:  # pragma: no cover
    from harness.plugins import Registries
    from harness.store import Store

log = logging.getLogger("harness")

#: What happened to one cell: computed and recorded ok / recorded failed / already done.
Outcome = Literal["done", "failed", "skipped"]


@dataclass(frozen=True)
class PlannedCell:
    """A cell and the validated objects needed to compute it."""

    cell: CellKey
    label: str
    suite_cls: type[Suite]
    suite_config: PluginConfig
    method_cls: type[Plugin] | None
    method_config: PluginConfig | None
    model_ref: ModelRef

    @property
    def key(self) -> str:
        return self.cell.key()


def _check_output(out: Any, suite_cls: type[Suite], registries: Registries) -> SuiteOutput:
    if not isinstance(out, SuiteOutput):
        raise TypeError(f'Suite "{suite_cls.name}" returned {type(out).__name__}, expected SuiteOutput.')
    for mv in out.metrics:
        if mv.metric not in registries.metrics:
            raise TypeError(f'Suite "{suite_cls.name}" returned a value of unregistered metric "{mv.metric}".')
    return out


def _method_for(pc: PlannedCell) -> Plugin | LearnerSpec | None:
    """The row's method as a suite receives it (a LearnerSpec for dictionary learners)."""
    if pc.method_cls is None:
        return None
    if issubclass(pc.method_cls, DictionaryLearner):
        return LearnerSpec(pc.method_cls, pc.method_config)
    return pc.method_cls(pc.method_config)


def _add_extra_metrics(output: SuiteOutput, ctx: CellContext, names: list[str]) -> SuiteOutput:
    if not names:
        return output
    model = ctx.evaluated_model if ctx.evaluated_model is not None else ctx.load_model()
    extra = ctx.compute_metrics(ModelInputs(model=model, seed=ctx.seed, device=ctx.device), names)
    return output.model_copy(update={"metrics": [*output.metrics, *extra]})


def compute_cell(pc: PlannedCell, store: Store, registries: Registries, *, device: str,
                 progress: bool = True) -> RunRecord:
    """Compute one cell on ``device`` (already resolved); a cell that raises gives a ``failed`` record.

    Every executor computes a cell through this function (in-process or in a worker).
    """
    started, t0 = now_iso(), time.perf_counter()
    output: SuiteOutput | None = None
    error: dict[str, str] | None = None
    try:
        seed_everything(pc.cell.seed)
        ctx = CellContext(
            suite_config=pc.suite_config,
            method=_method_for(pc),
            model_ref=pc.model_ref,
            model_source=registries.model_sources.get(pc.model_ref.source)(),
            seed=pc.cell.seed,
            device=device,
            dtype=pc.cell.dtype,
            registries=registries,
            artifact_dir=store.artifact_dir(pc.key),
            progress_enabled=progress,
        )
        output = _check_output(pc.suite_cls(pc.suite_config).run(ctx), pc.suite_cls, registries)
        output = _add_extra_metrics(output, ctx, pc.cell.extra_metrics)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - a failing cell is recorded, the run goes on
        error = {
            "type": type(e).__name__,
            "message": str(e),
            "traceback": "" if isinstance(e, HarnessError) else traceback.format_exc(),
        }
        log.error("cell %s / %s / %s failed: %s: %s", pc.cell.suite, pc.label, pc.cell.model, type(e).__name__, e)
    return RunRecord(
        key=pc.key,
        cell=pc.cell,
        label=pc.label,
        status="ok" if error is None else "failed",
        output=output,
        error=error,
        provenance=Provenance(**provenance(device, started, time.perf_counter() - t0),
                              plugins=plugin_provenance(pc, registries), datasets=data_provenance(pc, registries)),
    )


def data_provenance(pc: PlannedCell, registries: Registries) -> dict[str, dict[str, Any]]:
    """Field path -> identity of every data field of the cell's suite and method configs (defaults
    included, unlike the cell key), e.g. ``{"suite.corpus": {"dataset": "world", ...}}``."""
    from harness.datasets.ref import dataset_identities
    from harness.metric_selection import configured_metrics

    out: dict[str, dict[str, Any]] = {}
    try:
        out.update(dataset_identities(pc.suite_config, registries, prefix="suite.", all_fields=True))
        for metric, mcfg in configured_metrics(pc.suite_config, registries).items():
            out.update(dataset_identities(mcfg, registries, prefix=f"suite.metrics.{metric}.", all_fields=True))
        if pc.method_config is not None:
            out.update(dataset_identities(pc.method_config, registries, prefix="method.", all_fields=True))
    except HarnessError as e:
        out["error"] = {"message": str(e)}
    return out


def plugin_provenance(pc: PlannedCell, registries: Registries) -> dict[str, dict[str, str | None]]:
    """Role -> {name, plugin, distribution, version, origin} of the suite, method and model source
    of a cell (built-ins name harness's distribution and version)."""
    roles = {"suite": registries.suites.entry(pc.suite_cls.name),
             "model_source": registries.model_sources.entry(pc.model_ref.source)}
    if pc.method_cls is not None:
        roles["method"] = registries[pc.method_cls.kind].entry(pc.method_cls.name)
    out: dict[str, dict[str, str | None]] = {}
    for role, entry in roles.items():
        src = registries.plugin_set.sources.get(entry.origin)
        out[role] = {"name": entry.name, "plugin": entry.origin, "distribution": src.distribution if src else None,
                     "version": src.version if src else None, "origin": src.origin if src else None}
    return out


def publish_record(record: RunRecord, store: Store, *, force: bool = False) -> Outcome:
    """Write ``record`` to the store and say what happened to the cell.

    ``done`` / ``failed``: this record was published. ``skipped``: an ``ok`` record of the
    cell was published meanwhile by another run (never overwritten; the cell counts as reused).
    """
    if force and record.status == "ok" and store.is_done(record.cell.suite, record.key):
        store.replace(record)
        return "done"
    if store.put(record):
        return "done" if record.status == "ok" else "failed"
    return "skipped"
