"""What a suite receives for one cell: the method, the model, the seed, and helpers."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from harness.config import ModelRef, PluginConfig
from harness.metric_inputs import SCOPE_INPUTS, MetricInputs, scope_of
from harness.metric_selection import metric_config
from harness.protocols import LearnerSpec, Metric, ModelSource, Plugin, ReportedMetric
from harness.results import MetricValue

if TYPE_CHECKING:  # pragma: no cover
    from harness.plugins import Registries

T = TypeVar("T")
log = logging.getLogger("harness")


def resolve_device(device: str) -> str:
    """auto -> cuda when available, else cpu; cuda without a GPU is an error (one rule for the
    whole project: :func:`harness.models.loading.resolve_device`, here as a string)."""
    if device == "cpu":
        return "cpu"  # no torch import needed
    from harness.models.loading import resolve_device as resolve

    return str(resolve(device))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    import torch

    torch.manual_seed(seed)


class MetricComputeError(RuntimeError):
    """A metric's ``compute`` raised; the message names the metric (the cause is chained)."""


@dataclass
class CellContext:
    """Inputs and helpers for :meth:`harness.protocols.Suite.run`."""

    suite_config: PluginConfig
    #: The method of this row: an instance (unlearning / hallucination methods), a
    #: :class:`~harness.protocols.LearnerSpec` (dictionary learners), or None (baseline row).
    method: Plugin | LearnerSpec | None
    model_ref: ModelRef
    model_source: ModelSource
    seed: int
    device: str
    dtype: str
    registries: Registries
    artifact_dir: Path
    progress_enabled: bool = True
    #: The model a suite finally scored (e.g. with a method applied); extra model-scope
    #: metrics of the run spec are computed on it. None = the loaded model.
    evaluated_model: Any = None
    _model: Any = field(default=None, repr=False)

    def load_model(self) -> Any:
        """The cell's model (a ``harness.models.LoadedModel``), loaded once per cell."""
        if self._model is None:
            self._model = self.model_source.load(
                self.model_ref.name, self.model_ref.revision, device=self.device, dtype=self.dtype
            )
        return self._model

    def data(self, ref: Any, role: str) -> Any:
        """Open a data field's :class:`~harness.datasets.DatasetRef` as ``role`` ("corpus", "labelled",
        "qa", "sequences"), from this cell's registries (:func:`harness.datasets.open_role`)."""
        from harness.datasets.ref import open_role

        return open_role(ref, role, self.registries)

    def metric(self, name: str) -> Metric:
        """An instance of a registered metric (default config)."""
        return self.registries.metrics.get(name)()

    def compute_metrics(self, inputs: MetricInputs, names: Iterable[str] | None = None) -> list[MetricValue]:
        """Compute metrics on ``inputs`` (an inputs class of :mod:`harness.metric_inputs`).

        ``names`` None: every registered *computed* metric of ``inputs``' scope (sorted by name;
        :class:`~harness.protocols.ReportedMetric` declarations are skipped). Otherwise exactly those
        metrics, in that order; each must be a computed metric of that scope. Results are normalised
        to a list of :class:`MetricValue` (a float becomes this metric's value without a key); an
        error names the metric and what to fix. A metric the suite config configures
        (``metrics.config.<name>``, :mod:`harness.metric_selection`) is built with that config.
        """
        scope = scope_of(inputs)
        reg = self.registries.metrics
        if names is None:
            computed = (n for n in sorted(reg.names()) if not issubclass(reg.get(n), ReportedMetric))
            chosen = [n for n in computed if reg.get(n).scope == scope]
        else:
            chosen = list(names)
        out: list[MetricValue] = []
        for name in chosen:
            cls = reg.get(name)
            if cls.scope != scope:
                raise TypeError(
                    f'metric "{name}" has scope "{cls.scope}" and needs {SCOPE_INPUTS[cls.scope].__name__}; got '
                    f"{type(inputs).__name__} (scope \"{scope}\"). Compute it with the inputs of its scope."
                )
            if issubclass(cls, ReportedMetric):
                raise TypeError(
                    f'metric "{name}" is a ReportedMetric: its suite reports its values (metric.value(...)), '
                    "it cannot be computed generically. Leave it out of the names to compute."
                )
            metric = cls(metric_config(self.suite_config, name))  # the spec's metrics.config.<name>, if set
            try:
                result = metric.compute(inputs)
            except Exception as e:
                where = f'metric "{name}" failed on {type(inputs).__name__}'
                raise MetricComputeError(f"{where}: {type(e).__name__}: {e}") from e
            out += _normalise(name, result)
        return out

    def progress(self, iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
        """Wrap ``iterable`` in a progress bar (stderr; off when not enabled)."""
        from tqdm.auto import tqdm

        yield from tqdm(iterable, total=total, desc=desc, disable=not self.progress_enabled, leave=False)

    def artifact(self, name: str) -> Path:
        """A path inside this cell's artifact folder (created)."""
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        return self.artifact_dir / name

    def artifact_ref(self, name: str) -> tuple[Path, str]:
        """:meth:`artifact` plus the reference a record keeps in ``SuiteOutput.artifacts``:
        the path relative to the store root (the store lays artifacts out as ``artifacts/<key>/``)."""
        path = self.artifact(name)
        try:
            return path, path.relative_to(self.artifact_dir.parent.parent).as_posix()
        except ValueError:
            return path, name


def _normalise(name: str, result: Any) -> list[MetricValue]:
    """``float | MetricValue | list[MetricValue]`` from ``compute`` of metric ``name`` -> a list."""
    values = result if isinstance(result, list) else [result]
    out: list[MetricValue] = []
    for v in values:
        if isinstance(v, MetricValue):
            if v.metric != name:
                raise ValueError(
                    f'metric "{name}" returned a value of metric "{v.metric}"; build values with self.value(...).'
                )
            out.append(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(MetricValue(metric=name, value=float(v)))
        else:
            raise TypeError(
                f'metric "{name}" returned {type(v).__name__}; compute must return a float, a MetricValue or a list '
                "of MetricValue."
            )
    return out
