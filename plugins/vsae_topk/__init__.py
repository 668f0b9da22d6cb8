"""Dictionary learner "vsae_topk": variational TopK SAE (arXiv 2509.22994).

Light module: the torch implementation (:mod:`.model`) is imported by ``create``/``load``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness import hookimpl
from harness.sae.config import SAEConfig
from harness.sae.plugin import LazySAE


class VSAETopKConfig(SAEConfig):
    k: int = Field(32, ge=1, description="Latents kept per token, selected by |z| (signed values kept).")
    variance: Literal["fixed", "learned"] = Field(
        "fixed", description="fixed: unit variance (the Pythia-70M runs); learned: a log-variance encoder head."
    )
    sample: bool = Field(
        False,
        description="Sample z = mu + sigma * eps before TopK while training (the paper's text); False = z = mu "
        "(what the authors' code does for fixed variance).",
    )
    mu_activation: Literal["relu", "identity"] = Field(
        "relu", description="Encoder mean mu = ReLU(pre) (METHODS/paper) or pre (the repository's latest code)."
    )
    kl_coeff: float = Field(1.0, ge=0, description="Weight of the KL term.")
    kl_scope: Literal["all", "topk"] = Field(
        "all", description="KL summed over all latents (pre-TopK, authors) or only over the selected top-k."
    )
    kl_warmup_fraction: float = Field(
        0.1, ge=0, le=1, description="KL weight ramps linearly 0 -> 1 over this fraction of the steps."
    )
    log_var_init: float = Field(-2.0, description="Initial bias of the log-variance head (learned variance).")
    auxk_alpha: float = Field(1 / 32, ge=0, description="Weight of the AuxK loss (0 disables it).")
    k_aux: int | None = Field(None, ge=1, description="Dead latents used by AuxK; None = d_in // 2.")
    apply_b_dec_to_input: bool = Field(False, description="Subtract b_dec before encoding (authors: no, april mode).")
    unit_norm_decoder: bool = Field(False, description="Unit-norm decoder rows (authors' april mode: no).")
    decoder_init_norm: float | None = Field(0.1, gt=0, description="Initial decoder row norm (authors: 0.1).")
    b_dec_init: Literal["zeros", "mean", "geometric_median"] = Field(
        "zeros", description="How the trainer initialises b_dec (authors' april mode: zeros)."
    )


class VSAETopK(LazySAE):
    name = "vsae_topk"
    description = "Variational TopK SAE: Gaussian latents, KL to N(0, I), TopK by |z| before decoding."
    paper = "arXiv:2509.22994"
    Config = VSAETopKConfig
    impl = "harness_plugins.vsae_topk.model:VSAETopKSAE"


@hookimpl
def register_dictionary_learners(register):
    register(VSAETopK)
