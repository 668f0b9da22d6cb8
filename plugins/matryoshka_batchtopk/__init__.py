"""Dictionary learner "matryoshka_batchtopk": Matryoshka BatchTopK SAE (Bussmann et al., 2025).

Nested prefixes of the dictionary (latents ``[0, w_1)``, ``[0, w_2)``, ..., ``[0, d_sae)``) each
reconstruct the input from the same BatchTopK activations; the loss combines the prefix
reconstruction losses (summed, as SAELens's ``MatryoshkaBatchTopKTrainingSAE``, by default).

Light module: the torch implementation (:mod:`.model`) is imported by ``create``/``load``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness import hookimpl
from harness.config import PluginConfig
from harness.sae.config import SAEConfig
from harness.sae.plugin import LazySAE


def _strictly_increasing(values: list[Any]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


class MatryoshkaBatchTopKConfig(SAEConfig):
    k: int = Field(32, ge=1, description="Mean latents per token: the batch keeps its k * batch_size largest "
                   "ReLU pre-activations over the whole dictionary (BatchTopK).")
    matryoshka_widths: list[int] | None = Field(
        None,
        description="Prefix lengths (SAELens's matryoshka_widths): strictly increasing, at most d_sae; d_sae is "
        "appended as the last level when missing. None = from prefix_fractions (so one config fits any d_in).",
    )
    prefix_fractions: list[float] = Field(
        [0.0625, 0.125, 0.25, 0.5, 1.0], min_length=1,
        description="Prefix lengths as fractions of d_sae, strictly increasing in (0, 1] (1 is appended when "
        "missing); each is rounded to a whole number of latents. Used only when matryoshka_widths is None.",
    )
    prefix_loss: Literal["sum", "mean"] = Field(
        "sum",
        description="How the prefix reconstruction losses combine: 'sum' (SAELens: the full dictionary's MSE plus "
        "every inner prefix's) or 'mean' (that sum divided by the number of levels).",
    )
    auxk_alpha: float = Field(1.0, ge=0, description="Weight of the AuxK dead-latent loss (SAELens "
                              "aux_loss_coefficient; 0 disables it).")
    auxk_loss: Literal["saelens", "normalized"] = Field(
        "saelens",
        description="AuxK form: 'saelens' (||e - e_hat||^2 of the top k_aux dead pre-activations, scaled by "
        "min(n_dead / k_aux, 1), as SAELens's TopK/BatchTopK training SAEs) or 'normalized' (OpenAI's: ReLU'd dead "
        "latents, divided by ||e - mean(e)||^2, as harness's topk / batchtopk).",
    )
    k_aux: int | None = Field(None, ge=1, description="Dead latents used by AuxK; None = d_in // 2 (SAELens).")
    threshold_beta: float = Field(
        0.999, ge=0, lt=1, description="EMA factor of the inference threshold (min selected activation per batch)."
    )
    threshold_start_step: int = Field(
        1000, ge=0, description="Step from which the threshold is estimated (capped at half the run)."
    )

    @field_validator("matryoshka_widths")
    @classmethod
    def _widths(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if not v or min(v) < 1 or not _strictly_increasing(v):
            raise ValueError(f"matryoshka_widths must be a non-empty, strictly increasing list of positive integers "
                             f"(e.g. [64, 256, 1024]); got {v}")
        return v

    @field_validator("prefix_fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if min(v) <= 0 or max(v) > 1 or not _strictly_increasing(v):
            raise ValueError(f"prefix_fractions must be strictly increasing fractions in (0, 1] "
                             f"(e.g. [0.125, 0.5, 1.0]); got {v}")
        return v

    @model_validator(mode="after")
    def _fit_d_sae(self) -> MatryoshkaBatchTopKConfig:
        if self.d_sae is not None and self.matryoshka_widths and self.matryoshka_widths[-1] > self.d_sae:
            raise ValueError(f"matryoshka_widths: the last prefix {self.matryoshka_widths[-1]} exceeds d_sae = "
                             f"{self.d_sae}; use prefixes of at most d_sae latents")
        return self

    def resolve_widths(self, d_sae: int) -> tuple[int, ...]:
        """The prefix lengths at dictionary size ``d_sae`` (strictly increasing, the last is ``d_sae``)."""
        if self.matryoshka_widths is not None:
            widths = list(self.matryoshka_widths)
            if widths[-1] > d_sae:
                raise ValueError(f"matryoshka_widths: the last prefix {widths[-1]} exceeds d_sae = {d_sae}; use "
                                 "prefixes of at most d_sae latents (or prefix_fractions, which scale with d_sae)")
        else:
            widths = [max(1, round(f * d_sae)) for f in self.prefix_fractions]
            if not _strictly_increasing(widths):
                raise ValueError(f"prefix_fractions {self.prefix_fractions} give prefixes {widths} at d_sae = {d_sae}, "
                                 "not strictly increasing; use fewer or wider-spaced fractions, or a larger d_sae")
        if widths[-1] != d_sae:
            widths.append(d_sae)
        return tuple(widths)


class MatryoshkaBatchTopK(LazySAE):
    name = "matryoshka_batchtopk"
    description = ("Matryoshka BatchTopK SAE: nested dictionary prefixes each reconstruct the input from the same "
                   "BatchTopK latents; prefix losses summed (SAELens convention).")
    paper = "arXiv:2503.17547"
    Config = MatryoshkaBatchTopKConfig
    impl = "harness_plugins.matryoshka_batchtopk.model:MatryoshkaBatchTopKSAE"

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """As every top-k learner (k <= d_sae), plus: the prefixes fit the dictionary at ``shape.d_in``."""
        problems = super().check(config, shape)
        if isinstance(config, MatryoshkaBatchTopKConfig) and shape.d_in is not None:
            d_sae = config.resolve_d_sae(shape.d_in)
            try:
                config.resolve_widths(d_sae)
            except ValueError as e:
                at = f" at {shape.hook}" if shape.hook else ""
                problems.append(f"{e} (d_sae = {d_sae}{at} of {shape.name}).")
        return problems


@hookimpl
def register_dictionary_learners(register):
    register(MatryoshkaBatchTopK)
