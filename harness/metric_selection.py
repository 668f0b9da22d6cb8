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
both the extras and the suite's own computed metrics. ``config`` sets a metric's own Config
(as SAEBench's per-eval configs and lm-eval's per-task ``metric_list`` do), e.g. the LLM judge
of ``sae_autointerp``::

    metrics: {include: [sae_autointerp], config: {sae_autointerp: {judge: openai,
              openai: {base_url: "http://127.0.0.1:8000/v1", model: my-judge}}}}

Unknown names and bad fields are refused at plan time (:func:`resolve_selection`), naming the
field path, the registered metrics of the scope and the fix. A configured metric is built with
its config wherever the cell computes it (:meth:`harness.context.CellContext.compute_metrics`).

The ``metrics`` field, and its ``config`` while empty, are key-neutral
(:func:`harness.config.key_neutral`): left out of the cell key while unset, so the record keys
of specs that do not use them stay as they were. A set metric config enters the key validated
(defaults filled, :func:`harness.config.key_dump`), so two spellings of one config share a key
and a config equal to the metric's defaults keeps the default key; a secret never does (the
openai judge names the environment variable holding its key).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from harness.config import PluginConfig, key_dump, key_neutral
from harness.errors import HarnessError, did_you_mean
from harness.metric_inputs import Scope

if TYPE_CHECKING:  # pragma: no cover
    from harness.plugins import Registries
    from harness.protocols import Suite


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
    config: dict[str, dict[str, Any]] = Field(
        default_factory=dict, json_schema_extra=key_neutral(),
        description="Metric name -> its config (the fields of that metric's Config: `harness schema`), for metrics "
        "the suite computes, e.g. {sae_autointerp: {judge: openai, openai: {base_url: ..., model: ...}}}; {} = defaults.",
    )


class SelectsMetrics(PluginConfig):
    """Base of a suite config whose suite adds the registered computed metrics of ``metric_scope``."""

    #: The scope whose computed metrics the suite adds (``SAEInputs`` for "sae", ...).
    metric_scope: ClassVar[Scope]

    metrics: MetricSelection | None = Field(
        None, json_schema_extra=key_neutral(),
        description="Which registered computed metrics of the suite's scope are added to its board, and their "
        "configs: {include: [...], exclude: [...], config: {metric: {...}}}; None = every third-party one (metrics "
        "no suite declares), default configs.",
    )

    @classmethod
    def not_extra(cls, metric_cls: type[Any]) -> bool:
        """True for a computed metric of the scope the suite uses in another way (e.g. hallucination
        detectors, scored through their AUROC): never added as a column of its own."""
        return False


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


def metric_config(config: Any, name: str) -> dict[str, Any] | None:
    """The config a spec set for metric ``name`` in suite config ``config`` (None = its default)."""
    if isinstance(config, SelectsMetrics) and config.metrics is not None:
        return config.metrics.config.get(name)
    return None


def configured_metrics(config: Any, registries: Registries) -> dict[str, PluginConfig]:
    """Metric name -> its validated Config, for every metric ``config`` (a suite config) configures."""
    if not isinstance(config, SelectsMetrics) or config.metrics is None:
        return {}
    return {name: registries.metrics.get(name).parse_config(raw) for name, raw in config.metrics.config.items()}


def _computed_by(config: SelectsMetrics, registries: Registries, suite_cls: type[Suite] | None) -> set[str]:
    own = [m for m in suite_cls.metrics if m in _computed(registries, config.metric_scope)] if suite_cls else []
    return set(keep(config, own)) | set(extra_metric_names(config, registries))


def _default_config(metric_cls: type[Any]) -> PluginConfig | None:
    try:
        return metric_cls.Config()
    except Exception:  # noqa: BLE001 - a metric whose config has required fields has no default
        return None


def resolve_selection(config: Any, registries: Registries, at: str,
                      suite_cls: type[Suite] | None = None) -> tuple[Any, list[str]]:
    """Plan-time check of ``config.metrics`` (``at``: where it was written, e.g. ``suites[0].config``) and
    the config with every metric config validated and normalised (defaults filled, so two spellings of one
    config give one cell key; one equal to the metric's defaults is dropped, keeping the default key).
    Returns ``(config, problems)``; problems name the field path and the fix."""
    problems = selection_problems(config, registries, at)
    if problems or not isinstance(config, SelectsMetrics) or config.metrics is None or not config.metrics.config:
        return config, problems
    from harness.datasets.ref import dataset_problems

    computed = _computed(registries, config.metric_scope)
    used = _computed_by(config, registries, suite_cls)
    normalised: dict[str, dict[str, Any]] = {}
    for name, raw in config.metrics.config.items():
        where = f"{at}.metrics.config.{name}"
        if name not in computed:
            known = f'Computed metrics of scope "{config.metric_scope}": {", ".join(computed) or "(none)"}.'
            problems.append(f'{where}: no computed metric "{name}" of scope "{config.metric_scope}".'
                            f"{did_you_mean(name, computed)} {known} Fix: configure one of them.")
            continue
        if suite_cls is not None and name not in used:
            how = ("it is in metrics.exclude" if name in config.metrics.exclude
                   else "it is opt-in or not in metrics.include")
            problems.append(f'{where}: metric "{name}" is not computed by this suite config ({how}), so its config '
                            f"would do nothing. Fix: add {name} to metrics.include (and not to exclude), or drop its "
                            "config.")
            continue
        try:
            mcfg = registries.metrics.get(name).parse_config(raw, at=where)
        except HarnessError as e:
            problems.append(str(e))
            continue
        problems.extend(dataset_problems(mcfg, registries, at=f"{where}."))
        if mcfg != _default_config(registries.metrics.get(name)):  # a config at its defaults keeps the default key
            normalised[name] = key_dump(mcfg)
    if problems:
        return config, problems
    selection = config.metrics.model_copy(update={"config": normalised})
    return config.model_copy(update={"metrics": selection}), []
