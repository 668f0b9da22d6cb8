"""Example third-party harness plugin: one metric, registered through the entry point.

``embedding_anisotropy`` is the mean cosine similarity between the input embeddings of
random pairs of distinct tokens (Ethayarajh 2019 measured the same on contextual
representations). 0 means isotropic; near 1 means every token points the same way.

It is a computed model-scope metric: ``compute`` receives
:class:`harness.metric_inputs.ModelInputs`, so any run can add it to every cell
(``harness run --extra-metric embedding_anisotropy``).
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.metric_inputs import ModelInputs
from harness.protocols import Metric
from harness.results import MetricValue


class EmbeddingAnisotropy(Metric):
    name = "embedding_anisotropy"
    description = "Mean cosine similarity between input embeddings of random token pairs."
    higher_is_better = False
    scope = "model"
    unit = "cosine"

    class Config(PluginConfig):
        pairs: int = Field(4096, ge=1, description="Number of random token pairs.")
        seed: int = Field(0, description="Seed of the pair sampler.")

    def compute(self, inputs: ModelInputs) -> MetricValue:
        import torch

        model = getattr(inputs.model, "model", inputs.model)  # a harness LoadedModel or a bare HF model
        emb = model.get_input_embeddings().weight.detach().float()
        gen = torch.Generator().manual_seed(self.config.seed)
        i = torch.randint(0, emb.shape[0], (self.config.pairs,), generator=gen)
        j = (i + torch.randint(1, emb.shape[0], (self.config.pairs,), generator=gen)) % emb.shape[0]
        cos = torch.nn.functional.cosine_similarity(emb[i], emb[j], dim=-1)
        stderr = float(cos.std() / len(cos) ** 0.5)
        return self.value(float(cos.mean()), stderr=stderr, n=len(cos))


@hookimpl
def register_metrics(register):
    register(EmbeddingAnisotropy)
