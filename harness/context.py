"""What a suite receives for one cell: the method, the model, the seed, and helpers."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from harness.config import ModelRef, PluginConfig
from harness.protocols import LearnerSpec, Metric, ModelSource, Plugin

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

    def metric(self, name: str) -> Metric:
        """An instance of a registered metric (default config)."""
        return self.registries.metrics.get(name)()

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
