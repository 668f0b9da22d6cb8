"""Light base of the built-in SAE plugins: registers without importing torch.

The registered class (e.g. ``harness_plugins.topk.TopK``) carries name, description,
paper and Config; ``create``/``load`` import the torch implementation lazily. The
implementation subclasses both :class:`harness.sae.base.SAEBase` (``torch.nn.Module``)
and the registered class, so ``isinstance(sae, TopK)`` holds for what they return.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

from harness.config import PluginConfig
from harness.protocols import DictionaryLearner


class LazySAE(DictionaryLearner):
    """Registered facade: ``impl`` = "package.module:Class" of the torch implementation."""

    impl: ClassVar[str]

    @classmethod
    def implementation(cls) -> type[Any]:
        if "impl" not in cls.__dict__:  # already the implementation (or a subclass of it)
            return cls
        module, _, attr = cls.impl.partition(":")
        return getattr(importlib.import_module(module), attr)

    @classmethod
    def create(cls, d_in: int, config: PluginConfig | dict[str, Any] | None = None, *, seed: int = 0) -> Any:
        return cls.implementation().create(d_in, config, seed=seed)

    @classmethod
    def load(cls, directory: Path | str) -> Any:
        return cls.implementation().load(directory)
