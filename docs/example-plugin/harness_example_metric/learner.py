"""Example dictionary learner "example_threshold_sae", registered through its own entry point.

A ReLU SAE whose latents fire only above a fixed threshold (``f = relu(pre) * [pre > theta]``)
with an L1 penalty: the smallest change to a ReLU SAE that lets a reader see every piece of
the learner contract. This module is light (pydantic only): ``create`` / ``load`` import the
torch implementation in :mod:`.model` through the relative ``impl``, so ``harness --help``
and ``harness plugins`` never import torch for it.

The shared trainer (``harness train-sae``, the ``sae`` suite) drives it because the
implementation builds on :class:`harness.sae.base.SAEBase`; it saves SAELens-style
(cfg.json + sae_weights.safetensors) and ``harness.sae.load_sae`` reads it back.
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.sae.config import SAEConfig
from harness.sae.plugin import LazySAE


class ThresholdSAEConfig(SAEConfig):
    """Every field of SAEConfig (expansion_factor / d_sae, lr, unit_norm_decoder, ...) plus two."""

    threshold: float = Field(0.0, ge=0, description="Pre-activation a latent must exceed to fire (0 = plain ReLU).")
    l1_coefficient: float = Field(1e-2, ge=0, description="Weight of the L1 penalty on the latents.")


class ThresholdSAE(LazySAE):
    name = "example_threshold_sae"
    description = "Example third-party learner: ReLU SAE with a fixed firing threshold and an L1 penalty."
    Config = ThresholdSAEConfig
    impl = ".model:ThresholdSAEImpl"  # relative to this package


@hookimpl
def register_dictionary_learners(register):
    register(ThresholdSAE)
