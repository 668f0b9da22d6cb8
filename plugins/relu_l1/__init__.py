"""Dictionary learner "relu_l1": the standard ReLU SAE with an L1 penalty weighted by decoder
norms (Anthropic's April 2024 training update).

Light module: the torch implementation (:mod:`.model`) is imported by ``create``/``load``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness import hookimpl
from harness.sae.config import SAEConfig
from harness.sae.plugin import LazySAE


class ReluL1Config(SAEConfig):
    l1_coefficient: float = Field(5.0, ge=0, description="lambda of lambda * sum_i f_i ||W_dec_i||.")
    l1_warmup_fraction: float = Field(
        0.05, ge=0, le=1, description="lambda ramps linearly from 0 over this fraction of the steps."
    )
    apply_b_dec_to_input: bool = Field(False, description="Subtract b_dec before encoding (April update: no).")
    unit_norm_decoder: bool = Field(
        False, description="Constrain decoder rows to unit norm (April update: no; the L1 term uses their norms)."
    )
    decoder_init_norm: float | None = Field(0.1, gt=0, description="Initial decoder row norm (April update: 0.1).")
    b_dec_init: Literal["zeros", "mean", "geometric_median"] = Field(
        "zeros", description="How the trainer initialises b_dec (April update: zeros)."
    )


class ReluL1(LazySAE):
    name = "relu_l1"
    sparsity_field = "l1_coefficient"  # the sae suite sweeps multiples of it (no k)
    description = "Standard ReLU SAE, L1 penalty weighted by decoder row norms (Anthropic April 2024 update)."
    paper = "transformer-circuits.pub/2024/april-update"
    Config = ReluL1Config
    impl = "harness_plugins.relu_l1.model:ReluL1SAE"


@hookimpl
def register_dictionary_learners(register):
    register(ReluL1)
