"""Metric "sae_ground_truth": an SAE's latents against the world's known features.

On a zoo model the features that generated the text are known (topic, entity type, first letter,
fact attributes); per known feature the best F1 of any latent's firing against the feature's
presence (per sentence) says whether the SAE has a latent for it, in the spirit of SAELens's
SynthSAEBench, here on a trained language model. Only a zoo build knows these features: for any
other model the metric returns nothing (no misleading number). README.md: choices and limits.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.metric_inputs import SAEInputs
from harness.protocols import Metric
from harness.results import MetricValue

Group = Literal["topic", "entity_type", "first_letter", "country", "profession", "colour"]


class GroundTruthConfig(PluginConfig):
    groups: list[Group] = Field(
        ["topic", "entity_type", "first_letter", "country", "profession", "colour"], min_length=1,
        description="Known-feature groups scored (each its own sentence pool; README.md).",
    )
    n_sentences: int = Field(
        200, ge=8, description="Sentences per group (topic / entity type / facts; first letter uses all 200 words)."
    )
    fact_splits: list[Literal["frequent", "medium", "rare", "heldout"]] = Field(
        ["frequent", "medium"], min_length=1, description="Fact splits whose entities make the attribute pools."
    )
    min_positives: int = Field(5, ge=1, description="A feature value is scored when at least this many sentences carry it.")
    threshold: float = Field(0.8, gt=0, lt=1, description="Best F1 above which a feature counts as matched.")
    seed: int = Field(0, description="Seed of the probing sentences.")


def _matches(inputs: SAEInputs, cfg: GroundTruthConfig) -> list | None:
    from harness.zoo.identify import world_of

    world = world_of(inputs.model)
    if world is None:
        return None
    from .features import ground_truth_matches, world_pools

    pools = world_pools(world, cfg.groups, cfg.n_sentences, cfg.fact_splits, cfg.seed)
    return ground_truth_matches(inputs.model, inputs.sae, inputs.hook_point, pools, cfg.min_positives)


class GroundTruth(Metric):
    name = "sae_ground_truth"
    description = (
        "Zoo models only: per known feature of the world (topics, entity types, first letters, fact attributes) "
        "the best F1 of any latent firing (non-zero on a sentence) against the feature's presence; key 'gt_mean_f1' "
        "(mean over features) and 'gt_matched' (fraction of features with best F1 > 0.8)."
    )
    higher_is_better = True
    scope = "sae"
    Config = GroundTruthConfig

    def compute(self, inputs: SAEInputs) -> list[MetricValue]:
        matches = _matches(inputs, self.config)
        if not matches:
            return []  # not a zoo model (or no feature scored): no number
        f1 = [m.f1 for m in matches]
        n = len(f1)
        mean = sum(f1) / n
        se = math.sqrt(sum((x - mean) ** 2 for x in f1) / (n - 1) / n) if n > 1 else None
        matched = sum(x > self.config.threshold for x in f1) / n
        return [self.value(mean, key="gt_mean_f1", stderr=se, n=n), self.value(matched, key="gt_matched", n=n)]


@hookimpl
def register_metrics(register):
    register(GroundTruth)
