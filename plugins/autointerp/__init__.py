"""Metric "sae_autointerp": SAEBench's auto-interpretability detection score with a pluggable judge.

Karvonen et al., SAEBench (arXiv 2503.09532), after Bills et al. 2023 and Paulo et al. 2024
(arXiv 2410.13928): per sampled alive latent, a judge explains the latent from its top-activating
(and importance-sampled) held-out windows, then predicts which of a shuffled set of windows (top,
importance-sampled and random ones) activate it. Judges: ``baseline`` (no LLM: top tokens and
token membership; runs offline), ``openai`` (any OpenAI-compatible endpoint, extra
``autointerp``), ``hf_chat`` (a local transformers chat model). README.md: what is faithful.
Heavy code: :mod:`.detection`, :mod:`.examples`, :mod:`.judges` (torch imported there only).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness import hookimpl
from harness.config import PluginConfig
from harness.metric_inputs import SAEInputs
from harness.protocols import Metric
from harness.results import MetricValue


class OpenAISettings(PluginConfig):
    """An OpenAI-compatible chat-completions endpoint."""

    base_url: str | None = Field(
        None, description="Endpoint base URL ending in /v1 (e.g. a local vLLM server); None = the openai client's default."
    )
    model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint (SAEBench's judge by default).")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key; None = an endpoint without a key."
    )
    temperature: float = Field(0.0, ge=0, description="Sampling temperature of both phases.")
    timeout_s: float = Field(60.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(2, ge=0, description="Retries of a failed request (the client's own back-off).")


class HFChatSettings(PluginConfig):
    """A local Hugging Face chat model."""

    model: str | None = Field(None, description="Model folder or hub name (a chat model); required for judge hf_chat.")
    revision: str | None = Field(None, description="Hub revision (commit, tag or branch); None = the default branch.")
    chat_template: str | None = Field(
        None, description="Jinja chat template replacing the tokenizer's (needed when it has none)."
    )


class AutoInterp(Metric):
    name = "sae_autointerp"
    description = (
        "Auto-interpretability detection (SAEBench): a judge explains each sampled alive latent from its top "
        "held-out windows, then predicts which of 14 shuffled windows (2 top, 2 importance-sampled, 10 random) "
        "activate it. Key 'autointerp_bal_acc' (balanced accuracy: mean of true-positive and true-negative rates, chance 0.5) and "
        "'autointerp_acc' (accuracy, SAEBench's score); mean over latents. Judge 'baseline' by default (top tokens, no LLM)."
    )
    paper = "arXiv:2503.09532"
    higher_is_better = True
    scope = "sae"
    chance = 0.5

    class Config(PluginConfig):
        judge: Literal["baseline", "openai", "hf_chat"] = Field(
            "baseline",
            description="Who explains and predicts: 'baseline' (explanation = the latent's top tokens, prediction = "
            "a window contains one of them; no LLM), 'openai' (settings under `openai`) or 'hf_chat' (under `hf_chat`).",
        )
        n_latents: int = Field(16, ge=1, description="Alive latents sampled per SAE (SAEBench: 1000).")
        seed: int = Field(0, description="Sampling seed (combined with the cell's seed).")
        min_firings: int = Field(
            15, ge=0, description="A latent is alive when it fires on more than this many held-out tokens (SAEBench: 15)."
        )
        buffer: int = Field(10, ge=1, description="Tokens each side of a window's centre (SAEBench: 10).")
        act_threshold_frac: float = Field(
            0.01, ge=0, lt=1, description="A token is active above this fraction of the latent's top activation."
        )
        n_top_ex_for_generation: int = Field(10, ge=1, description="Top windows shown for the explanation.")
        n_iw_sampled_ex_for_generation: int = Field(5, ge=0, description="Importance-sampled windows for the explanation.")
        n_top_ex_for_scoring: int = Field(2, ge=0, description="Top windows among the scoring windows.")
        n_iw_sampled_ex_for_scoring: int = Field(2, ge=0, description="Importance-sampled scoring windows.")
        n_random_ex_for_scoring: int = Field(10, ge=0, description="Random scoring windows.")
        baseline_tokens: int = Field(3, ge=1, description="Top tokens that make the baseline judge's explanation.")
        explanation_tokens: int = Field(30, ge=1, description="Max new tokens of an LLM judge's explanation.")
        prediction_tokens: int = Field(30, ge=1, description="Max new tokens of an LLM judge's prediction.")
        openai: OpenAISettings = Field(default_factory=OpenAISettings, description="Settings of judge 'openai'.")
        hf_chat: HFChatSettings = Field(default_factory=HFChatSettings, description="Settings of judge 'hf_chat'.")

        @model_validator(mode="after")
        def _judge_settings(self) -> AutoInterp.Config:
            if self.judge == "hf_chat" and not self.hf_chat.model:
                raise ValueError("hf_chat.model: judge 'hf_chat' needs a model folder or name. Fix: set hf_chat.model.")
            if self.n_top_ex_for_scoring + self.n_iw_sampled_ex_for_scoring + self.n_random_ex_for_scoring == 0:
                raise ValueError("n_*_ex_for_scoring: no scoring windows. Fix: make at least one of them positive.")
            return self

    def compute(self, inputs: SAEInputs) -> list[MetricValue]:
        from .detection import autointerp

        result = autointerp(inputs, self.config)
        if not result.scores:
            if self.config.judge != "baseline" and result.n_unparsed:
                raise ValueError(f'judge "{self.config.judge}" gave no parseable prediction for any of '
                                 f"{result.n_unparsed} latents. Fix: check the endpoint / model answers.")
            return []  # no alive latent with enough examples: nothing to score (no misleading number)
        n = len(result.scores)
        return [
            self.value(result.mean("balanced_accuracy"), key="autointerp_bal_acc", stderr=result.stderr("balanced_accuracy"),
                       n=n, chance=0.5),
            self.value(result.mean("accuracy"), key="autointerp_acc", stderr=result.stderr("accuracy"), n=n),
        ]


@hookimpl
def register_metrics(register):
    register(AutoInterp)
