"""Dictionary learner "gated": Gated SAE (Rajamanoharan et al., 2024).

A gate path decides which latents fire (Heaviside of ``pi_gate = (x - b_dec) W_enc + b_gate``), a
magnitude path with the same directions rescaled per latent (``exp(r_mag)``, bias ``b_mag``) says
how much. Trained with reconstruction + lambda * decoder-norm-weighted L1 of ReLU(pi_gate) + an
auxiliary reconstruction of x from ReLU(pi_gate) through a frozen copy of the decoder.

Light module: the torch implementation (:mod:`.model`) is imported by ``create``/``load``.
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.sae.config import SAEConfig
from harness.sae.plugin import LazySAE


class GatedConfig(SAEConfig):
    l1_coefficient: float = Field(
        2.0, ge=0, description="lambda of the sparsity penalty lambda * sum_i ReLU(pi_gate)_i ||W_dec_i|| "
        "(SAELens l1_coefficient; the default is tuned for the sae suite's quick budget on the zoo, see README)."
    )
    l1_warmup_fraction: float = Field(
        0.05, ge=0, le=1, description="lambda ramps linearly from 0 over this fraction of the steps (0 = none)."
    )
    aux_frozen_decoder: bool = Field(
        True,
        description="The auxiliary reconstruction ReLU(pi_gate) W_dec + b_dec uses a frozen (gradient-stopped) copy "
        "of the decoder, as in the paper; false = the live decoder, as SAELens's GatedTrainingSAE (same loss value, "
        "different decoder gradients).",
    )
    apply_b_dec_to_input: bool = Field(True, description="Subtract b_dec before both encoder paths (paper: yes).")


class Gated(LazySAE):
    name = "gated"
    sparsity_field = "l1_coefficient"  # the sae suite sweeps multiples of it (no k)
    description = ("Gated SAE: Heaviside gate path and exp(r_mag)-rescaled magnitude path sharing W_enc; L1 on the "
                   "gate pre-activations plus an auxiliary frozen-decoder reconstruction.")
    paper = "arXiv:2404.16014"
    Config = GatedConfig
    impl = "harness_plugins.gated.model:GatedSAE"


@hookimpl
def register_dictionary_learners(register):
    register(Gated)
