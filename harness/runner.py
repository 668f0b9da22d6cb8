"""Plan a run spec into cells, and dispatch the cells not yet in the store to an executor.

Everything is validated while planning (every suite, method and config, every model
reference), so a typo fails before any compute and nothing recorded is touched. How one
cell is computed and published lives in :mod:`harness.cell`, below the executors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.cell import PlannedCell
from harness.config import ComponentSpec, ModelRef, RunSpec
from harness.datasets.ref import dataset_identities, dataset_problems, key_dump
from harness.errors import SpecError
from harness.evaluation.folders import task_dirs_identity
from harness.executors.base import RunSummary
from harness.metric_selection import configured_metrics, resolve_selection
from harness.plugins import Registries
from harness.protocols import Plugin, ReportedMetric, Suite
from harness.results import CellKey, RunRecord
from harness.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from harness.executors.base import Executor

log = logging.getLogger("harness")


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


def _check_executor(spec: RunSpec, registries: Registries) -> None:
    """The spec's ``executor:`` must name a registered executor with a valid config."""
    if spec.executor is not None:
        from harness.executors.cli_options import executor_class

        executor_class(spec.executor.name, registries.executors).parse_config(spec.executor.config,
                                                                             at="executor.config")


def plan(spec: RunSpec, registries: Registries) -> list[PlannedCell]:
    """Expand ``spec`` into cells; raises :class:`SpecError` / UnknownNameError on any bad input."""
    _check_executor(spec, registries)
    suite_specs = spec.suites or [ComponentSpec(name=n) for n in registries.suites.names()]
    if spec.methods:  # every named method must exist and be compared by some chosen suite
        kinds = {k for s in suite_specs for k in registries.suites.get(s.name).method_kinds}
        for i, m in enumerate(spec.methods):
            cls = registries.method(m.name)
            mcfg = cls.parse_config(m.config, at=f"methods[{i}].config")
            problems = dataset_problems(mcfg, registries, at=f"methods[{i}].config.")
            if problems:
                raise SpecError("\n".join(problems))
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
        data_problems = dataset_problems(suite_cfg, registries, at=f"suites[{i}].config.")
        if data_problems:
            raise SpecError("\n".join(data_problems))
        suite_cfg, selection = resolve_selection(suite_cfg, registries, f"suites[{i}].config", suite_cls)
        if selection:
            raise SpecError("\n".join(selection))
        suite_data = dataset_identities(suite_cfg, registries, prefix="suite.")
        for metric, mcfg_ in configured_metrics(suite_cfg, registries).items():  # e.g. sae_ravel's data
            suite_data.update(dataset_identities(mcfg_, registries, prefix=f"suite.metrics.{metric}."))
        suite_dump = key_dump(suite_cfg)
        task_dirs = task_dirs_identity(suite_cfg, at=f"suites[{i}].config")
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
                method_data = dataset_identities(mcfg, registries, prefix="method.") if mcfg is not None else {}
                plugins = registries.cell_plugins(suite_cls, mcls, registries.model_sources.get(model.source))
                for seed in spec.seeds or suite_cls.default_seeds:
                    cell = CellKey(
                        suite=suite_cls.name,
                        suite_version=suite_cls.version,
                        suite_config=suite_dump,
                        method=mcls.name if mcls else None,
                        method_kind=mcls.kind if mcls else None,
                        method_config=key_dump(mcfg) if mcfg else None,
                        model=str(model),
                        model_fingerprint=resolved[model],
                        seed=seed,
                        dtype=spec.dtype,
                        extra_metrics=list(spec.extra_metrics),
                        plugins=plugins,
                        datasets={**suite_data, **method_data},
                        task_dirs=task_dirs,
                    )
                    label = mspec.display if mspec else "base model"
                    if s.name in repeated:  # e.g. the sae suite at two hook points: one row per entry
                        label = f"{label} @ {s.display}"
                    cells.append(PlannedCell(cell, label, suite_cls, suite_cfg, mcls, mcfg, model))
    from harness.validation import validate_plan

    validate_plan(spec, cells, registries)  # what depends on the models' shapes (k <= d_sae, hook points, ...)
    return cells


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
    ``executor`` chooses where cells run (default: the built-in local executor, in this
    process, one after the other); see :mod:`harness.executors`.
    """
    if executor is None:
        from harness.executors import make_executor

        executor = make_executor("local")
    return executor.run(cells, store, registries, device=device, force=force, progress=progress, on_cell=on_cell)
