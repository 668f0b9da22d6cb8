"""Dictionary learner "topk": TopK SAE with the AuxK dead-latent loss (Gao et al., 2024).

Light module: the torch implementation (:mod:`.model`) is imported by ``create``/``load``.
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.sae.config import SAEConfig
from harness.sae.plugin import LazySAE


class TopKConfig(SAEConfig):
    k: int = Field(32, ge=1, description="Latents kept per token (exactly k non-zeros when k pre-activations > 0).")
    auxk_alpha: float = Field(1 / 32, ge=0, description="Weight of the AuxK loss (0 disables it).")
    k_aux: int | None = Field(None, ge=1, description="Dead latents used by AuxK; None = d_in // 2.")


class TopK(LazySAE):
    name = "topk"
    description = "TopK SAE (Gao et al. 2024): ReLU then top-k per token, AuxK loss on dead latents."
    paper = "arXiv:2406.04093"
    Config = TopKConfig
    impl = "harness_plugins.topk.model:TopKSAE"


@hookimpl
def register_dictionary_learners(register):
    register(TopK)
