"""Dictionary learner "batchtopk": BatchTopK SAE (Bussmann, Leask & Nanda, 2024).

Light module: the torch implementation (:mod:`.model`) is imported by ``create``/``load``.
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.sae.config import SAEConfig
from harness.sae.plugin import LazySAE


class BatchTopKConfig(SAEConfig):
    k: int = Field(32, ge=1, description="Mean latents per token: the batch keeps its k * batch_size largest.")
    auxk_alpha: float = Field(1 / 32, ge=0, description="Weight of the AuxK loss (0 disables it).")
    k_aux: int | None = Field(None, ge=1, description="Dead latents used by AuxK; None = d_in // 2.")
    threshold_beta: float = Field(
        0.999, ge=0, lt=1, description="EMA factor of the inference threshold (min selected activation per batch)."
    )
    threshold_start_step: int = Field(
        1000, ge=0, description="Step from which the threshold is estimated (capped at half the run)."
    )


class BatchTopK(LazySAE):
    name = "batchtopk"
    description = "BatchTopK SAE: top k*batch activations over the whole batch; a global threshold at inference."
    paper = "arXiv:2412.06410"
    Config = BatchTopKConfig
    impl = "harness_plugins.batchtopk.model:BatchTopKSAE"


@hookimpl
def register_dictionary_learners(register):
    register(BatchTopK)
