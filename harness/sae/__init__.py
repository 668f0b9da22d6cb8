"""Sparse dictionary learning: the shared trainer, SAE base class, kernels, save/load.

Importing this package is cheap; torch is imported when a name below is first used.

- :func:`train_sae`, :class:`TrainLog`, :func:`activations_from_model` (``harness.sae.trainer``)
- :class:`SAETrainConfig`, :class:`SAEConfig` (``harness.sae.config``, no torch)
- :class:`SAEBase` (``harness.sae.base``): the torch side of every built-in learner
- :func:`load_sae` (``harness.sae.io``): load any harness- or SAELens-format folder
- :func:`topk_encode`, :func:`sparse_decode` (``harness.sae.kernels``)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train_sae": "trainer",
    "TrainLog": "trainer",
    "activations_from_model": "trainer",
    "lr_factor": "trainer",
    "SAETrainConfig": "config",
    "SAEConfig": "config",
    "SAEBase": "base",
    "load_sae": "io",
    "learner_for_cfg": "io",
    "topk_encode": "kernels",
    "sparse_decode": "kernels",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"harness.sae.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'harness.sae' has no attribute {name!r}")
