"""Dictionary learner "jumprelu": JumpReLU SAE trained with straight-through estimators of
the threshold gradient (rectangle kernel) and an L0 penalty (Rajamanoharan et al., 2024).

Light module: the torch implementation (:mod:`.model`) is imported by ``create``/``load``.
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.sae.config import SAEConfig
from harness.sae.plugin import LazySAE


class JumpReLUConfig(SAEConfig):
    l0_coefficient: float = Field(1e-3, ge=0, description="lambda of the L0 penalty lambda * ||f||_0.")
    l0_warmup_fraction: float = Field(
        0.1, ge=0, le=1, description="lambda ramps linearly from 0 over this fraction of the steps."
    )
    bandwidth: float = Field(1e-3, gt=0, description="epsilon: width of the rectangle kernel of the STE.")
    threshold_init: float = Field(1e-3, gt=0, description="Initial threshold theta of every latent.")
    apply_b_dec_to_input: bool = Field(False, description="Subtract b_dec before encoding (paper: no).")


class JumpReLU(LazySAE):
    name = "jumprelu"
    sparsity_field = "l0_coefficient"  # the sae suite sweeps multiples of it (no k)
    description = "JumpReLU SAE: f = z * H(z - theta), L0 penalty, straight-through threshold gradients."
    paper = "arXiv:2407.14435"
    Config = JumpReLUConfig
    impl = "harness_plugins.jumprelu.model:JumpReLUSAE"


@hookimpl
def register_dictionary_learners(register):
    register(JumpReLU)
