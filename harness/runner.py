"""Plan a run spec into cells, and compute the cells not yet in the store.

Everything is validated while planning (every suite, method and config, every model
reference), so a typo fails before any compute and nothing recorded is touched.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.config import ComponentSpec, ModelRef, PluginConfig, RunSpec
from harness.context import CellContext, seed_everything
from harness.errors import HarnessError, SpecError
from harness.executors.base import Outcome, RunSummary
from harness.metric_inputs import ModelInputs
from harness.metric_selection import selection_problems
from harness.plugins import Registries
from harness.protocols import DictionaryLearner, LearnerSpec, Plugin, ReportedMetric, Suite
from harness.provenance import now_iso, provenance
from harness.results import Cell, Provenance, RunRecord, SuiteOutput
from harness.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from harness.executors.base import Executor

log = logging.getLogger("harness")


@dataclass(frozen=True)
class PlannedCell:
    """A cell and the validated objects needed to compute it."""

    cell: Cell
    label: str
    suite_cls: type[Suite]
    suite_config: PluginConfig
    method_cls: type[Plugin] | None
    method_config: PluginConfig | None
    model_ref: ModelRef

    @property
    def key(self) -> str:
        return self.cell.key()


def _methods_for(suite_cls: type[Suite], spec: RunSpec, registries: Registries) -> list[tuple[ComponentSpec, type[Plugin]]]:
    if spec.methods is None and suite_cls.default_methods is not None:
        chosen = [(ComponentSpec(name=n), registries.method(n)) for n in suite_cls.default_methods
                  if any(n in registries[k] for k in suite_cls.method_kinds)]
    elif spec.methods is None:
        chosen = [
            (ComponentSpec(name=name), registries[kind].get(name))
            for kind in suite_cls.method_kinds
            for name in registries[kind].names()
        ]
    else:
        chosen = [(m, registries.method(m.name)) for m in spec.methods]
        chosen = [(m, cls) for m, cls in chosen if cls.kind in suite_cls.method_kinds]
    return chosen


def _expand(models: list[ModelRef], registries: Registries) -> list[ModelRef]:
    """``source:*`` stands for every model the source lists (e.g. ``zoo:*``)."""
    out: list[ModelRef] = []
    for m in models:
        if m.name != "*":
            out.append(m)
            continue
        names = registries.model_sources.get(m.source)().list_models()
        if not names:
            raise SpecError(f'Model "{m}": source "{m.source}" lists no models to expand "*" into.')
        out.extend(ModelRef(source=m.source, name=n, revision=m.revision) for n in names)
    return out


def _require_distinct_labels(entries: list[tuple[int, ComponentSpec]], field: str, why: str) -> None:
    seen: dict[str, int] = {}
    for j, e in entries:
        if e.display in seen:
            raise SpecError(
                f'{field}: two entries are labelled "{e.display}" ({field}[{seen[e.display]}] and {field}[{j}]); {why}. '
                f"Give each entry its own `label:`, e.g. label: {e.name}-{j}."
            )
        seen[e.display] = j


def plan(spec: RunSpec, registries: Registries) -> list[PlannedCell]:
    """Expand ``spec`` into cells; raises :class:`SpecError` / UnknownNameError on any bad input."""
    suite_specs = spec.suites or [ComponentSpec(name=n) for n in registries.suites.names()]
    if spec.methods:  # every named method must exist and be compared by some chosen suite
        kinds = {k for s in suite_specs for k in registries.suites.get(s.name).method_kinds}
        for i, m in enumerate(spec.methods):
            cls = registries.method(m.name)
            cls.parse_config(m.config, at=f"methods[{i}].config")
            if cls.kind not in kinds:
                raise SpecError(
                    f'Method "{m.name}" is a {cls.kind.replace("_", " ")}, but none of the chosen suites '
                    f"({', '.join(s.name for s in suite_specs)}) compares that kind. Add a suite that does, "
                    "or drop the method."
                )
    for name in spec.extra_metrics:
        mcls = registries.metrics.get(name)
        if mcls.scope != "model":
            raise SpecError(
                f'extra_metrics: "{name}" has scope "{mcls.scope}"; only model-scope metrics can be added to '
                f"every cell. A registered {mcls.scope}-scope metric is already a column of the boards of the suites "
                f"of that scope; choose per suite with suites[].config.metrics: {{include: [{name}]}} (or exclude), "
                "and drop it from extra_metrics."
            )
        if issubclass(mcls, ReportedMetric):
            raise SpecError(
                f'extra_metrics: "{name}" is reported by the suite that computes it; only computed model-scope '
                "metrics (with compute(ModelInputs)) can be added to every cell. Drop it from extra_metrics."
            )
    why = "rows with one label would be merged as seeds of one row"
    _require_distinct_labels(list(enumerate(spec.methods or [])), "methods", why)
    repeated = {s.name for s in suite_specs if sum(t.name == s.name for t in suite_specs) > 1}
    _require_distinct_labels([(i, s) for i, s in enumerate(suite_specs) if s.name in repeated], "suites", why)
    cells: list[PlannedCell] = []
    resolved: dict[ModelRef, str] = {}
    for i, s in enumerate(suite_specs):
        suite_cls = registries.suites.get(s.name)
        suite_cfg = suite_cls.parse_config(s.config, at=f"suites[{i}].config")
        selection = selection_problems(suite_cfg, registries, f"suites[{i}].config")
        if selection:
            raise SpecError("\n".join(selection))
        for metric in suite_cls.metrics:
            if metric not in registries.metrics:
                raise SpecError(
                    f'Suite "{suite_cls.name}" reports metric "{metric}", which no plugin registers. '
                    "Install or enable the plugin that provides it."
                )
        rows: list[tuple[ComponentSpec | None, type[Plugin] | None]] = []
        if suite_cls.include_baseline:
            rows.append((None, None))
        rows.extend(_methods_for(suite_cls, spec, registries))
        models = _expand(spec.models or [ModelRef.parse(m) for m in suite_cls.default_models], registries)
        if not models:
            raise SpecError(f'Suite "{suite_cls.name}" has no default models; pass --model or models: in the spec.')
        for model in models:
            if model not in resolved:
                source = registries.model_sources.get(model.source)()
                resolved[model] = str(source.resolve(model.name, model.revision)["fingerprint"])
            for mspec, mcls in rows:
                mcfg = mcls.parse_config(mspec.config) if mcls and mspec else None
                for seed in spec.seeds:
                    cell = Cell(
                        suite=suite_cls.name,
                        suite_version=suite_cls.version,
                        suite_config=suite_cfg.model_dump(mode="json"),
                        method=mcls.name if mcls else None,
                        method_kind=mcls.kind if mcls else None,
                        method_config=mcfg.model_dump(mode="json") if mcfg else None,
                        model=str(model),
                        model_fingerprint=resolved[model],
                        seed=seed,
                        dtype=spec.dtype,
                        extra_metrics=list(spec.extra_metrics),
                    )
                    label = mspec.display if mspec else "base model"
                    if s.name in repeated:  # e.g. the sae suite at two hook points: one row per entry
                        label = f"{label} @ {s.display}"
                    cells.append(PlannedCell(cell, label, suite_cls, suite_cfg, mcls, mcfg, model))
    from harness.validation import validate_plan

    validate_plan(spec, cells, registries)  # what depends on the models' shapes (k <= d_sae, hook points, ...)
    return cells


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
        provenance=Provenance(**provenance(device, started, time.perf_counter() - t0)),
    )


def publish(record: RunRecord, store: Store, *, force: bool = False) -> Outcome:
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


def execute(
    cells: list[PlannedCell],
    store: Store,
    registries: Registries,
    *,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    on_cell: Callable[[PlannedCell, RunRecord | None], None] | None = None,
    executor: Executor | None = None,
) -> RunSummary:
    """Compute every cell not already recorded (all of them with ``force``).

    A cell that raises is recorded as ``failed`` (with its traceback) and the run goes on.
    ``executor`` chooses where cells run (default: in this process, one after the other);
    see :mod:`harness.executors`.
    """
    if executor is None:
        from harness.executors.local import LocalExecutor

        executor = LocalExecutor()
    return executor.run(cells, store, registries, device=device, force=force, progress=progress, on_cell=on_cell)
