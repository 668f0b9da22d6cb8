"""Which registered computed metrics a suite adds to its board: ``metrics: {include, exclude}``.

A suite computes its own metrics as it always did, and on top of them every registered
*computed* metric of its scope that no suite declares as its own (a third party's metric:
one ``register_metrics`` and it becomes a column). A suite's config opts into this by
subclassing :class:`SelectsMetrics` and naming its scope::

    class Config(SelectsMetrics):
        metric_scope = "sae"

Then a spec selects per suite (SAEBench and lm-eval users choose metrics per evaluation)::

    suites: [{name: sae, config: {metrics: {exclude: [my_metric]}}}]

``include`` None (the default) = every such extra metric; a list = only those (any computed
metric of the scope, including one another suite declares); ``exclude`` drops names from
both the extras and the suite's own computed metrics. Unknown names are refused at plan time
(:func:`selection_problems`), naming the field and the registered metrics of the scope.

The ``metrics`` field is left out of the config's dump while unset, so the record keys of
specs that do not use it stay as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, model_serializer

from harness.config import PluginConfig
from harness.metric_inputs import Scope

if TYPE_CHECKING:  # pragma: no cover
    from harness.plugins import Registries


class MetricSelection(PluginConfig):
    """``include`` / ``exclude`` lists of metric names (see the module docstring)."""

    include: list[str] | None = Field(
        None,
        description="Extra computed metrics of the suite's scope to add; None = every registered one no suite "
        "declares as its own (third-party metrics); [] = none.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Computed metrics of the suite's scope not to compute (extras or built-in)."
    )


class SelectsMetrics(PluginConfig):
    """Base of a suite config whose suite adds the registered computed metrics of ``metric_scope``."""

    #: The scope whose computed metrics the suite adds (``SAEInputs`` for "sae", ...).
    metric_scope: ClassVar[Scope]

    metrics: MetricSelection | None = Field(
        None,
        description="Which registered computed metrics of the suite's scope are added to its board: "
        "{include: [...], exclude: [...]}; None = every third-party one (metrics no suite declares).",
    )

    @classmethod
    def not_extra(cls, metric_cls: type[Any]) -> bool:
        """True for a computed metric of the scope the suite uses in another way (e.g. hallucination
        detectors, scored through their AUROC): never added as a column of its own."""
        return False

    @model_serializer(mode="wrap")
    def _omit_unset_selection(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        data = handler(self)
        if isinstance(data, dict) and data.get("metrics") is None:
            data.pop("metrics", None)
        return data


def _computed(registries: Registries, scope: str) -> list[str]:
    from harness.protocols import ReportedMetric

    reg = registries.metrics
    return [n for n in sorted(reg.names()) if reg.get(n).scope == scope and not issubclass(reg.get(n), ReportedMetric)]


def _declared(registries: Registries) -> set[str]:
    return {m for s in registries.suites.names() for m in registries.suites.get(s).metrics}


def extra_metric_names(config: SelectsMetrics, registries: Registries) -> list[str]:
    """The computed metrics of ``config.metric_scope`` a suite adds to its own (sorted; exclusions applied)."""
    sel = config.metrics or MetricSelection()
    if sel.include is not None:
        names: Iterable[str] = sel.include
    else:
        declared = _declared(registries)
        names = [n for n in _computed(registries, config.metric_scope)
                 if n not in declared and not config.not_extra(registries.metrics.get(n))
                 and not registries.metrics.get(n).opt_in]
    return [n for n in dict.fromkeys(names) if n not in sel.exclude]


def keep(config: SelectsMetrics, names: Iterable[str]) -> list[str]:
    """``names`` (a suite's own computed metrics) without those ``metrics.exclude`` names."""
    excluded = set(config.metrics.exclude) if config.metrics else set()
    return [n for n in names if n not in excluded]


def selection_problems(config: Any, registries: Registries, at: str) -> list[str]:
    """Plan-time check of ``metrics.include`` / ``.exclude`` of a suite config (``at``: where it was
    written, e.g. ``suites[0].config``): every name must be a registered computed metric of the scope."""
    if not isinstance(config, SelectsMetrics) or config.metrics is None:
        return []
    scope = config.metric_scope
    computed = _computed(registries, scope)
    problems = []
    for field in ("include", "exclude"):
        for name in getattr(config.metrics, field) or []:
            if name in computed:
                continue
            if name in registries.metrics:
                mcls = registries.metrics.get(name)
                why = (f'has scope "{mcls.scope}", not "{scope}"' if mcls.scope != scope
                       else "is reported by its suite (a ReportedMetric), so it cannot be computed or left out")
                problems.append(f'{at}.metrics.{field}: metric "{name}" {why}. Fix: drop it from metrics.{field}.')
            else:
                from harness.errors import did_you_mean

                problems.append(
                    f'{at}.metrics.{field}: no registered metric "{name}".{did_you_mean(name, computed)} Computed '
                    f'metrics of scope "{scope}": {", ".join(computed) or "(none)"}. Fix: use one of them, or install '
                    "the plugin that registers it."
                )
    return problems
