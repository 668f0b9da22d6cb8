"""Dictionary learner "vsae_topk": variational TopK SAE (arXiv 2509.22994).

Light module: the torch implementation (:mod:`.model`) is imported by ``create``/``load``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

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
    recipe: Literal["topk", "authors"] = Field(
        "topk",
        description="Training recipe of the fields below left unset: topk = the TopK learner's (b_dec subtracted, "
        "unit-norm decoder, unit init, geometric-median b_dec, Gao et al.'s lr rule), so a gap to TopK is the "
        "variational part alone; authors = the authors' april mode (none of those, decoder init norm 0.1, b_dec "
        "zeros, lr 8e-4).",
    )

    @model_validator(mode="before")
    @classmethod
    def _recipe_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("recipe") == "authors":
            data = {**AUTHORS_RECIPE, **data}
        return data


#: The authors' "april update mode" (their code's defaults for the Pythia-70M runs).
AUTHORS_RECIPE: dict[str, Any] = {"apply_b_dec_to_input": False, "unit_norm_decoder": False,
                                  "decoder_init_norm": 0.1, "b_dec_init": "zeros", "lr": 8e-4}


class VSAETopK(LazySAE):
    name = "vsae_topk"
    description = "Variational TopK SAE: Gaussian latents, KL to N(0, I), TopK by |z| before decoding."
    paper = "arXiv:2509.22994"
    Config = VSAETopKConfig
    impl = "harness_plugins.vsae_topk.model:VSAETopKSAE"


@hookimpl
def register_dictionary_learners(register):
    register(VSAETopK)
