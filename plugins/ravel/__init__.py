"""Metric "sae_ravel": RAVEL-style disentanglement of an SAE's latents (SAEBench's cause and isolation).

Huang et al., RAVEL (arXiv 2402.17700), as adapted for SAEs by SAEBench (arXiv 2503.09532): per
attribute, pick the latents that encode it at the entity token, transplant them from a source
entity into a base entity (decode, patch the residual stream, keep the SAE error), and measure
*cause* (the model now gives the source's value of that attribute) and *isolation* (answers to
other attributes' prompts do not change when those latents are transplanted). On the zoo world
the attributes are its relations (country, profession, colour); only a zoo build knows them, so
for any other model the metric returns nothing. Code: :mod:`.core` (scores), :mod:`.world`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.metric_inputs import SAEInputs
from harness.protocols import Metric
from harness.results import MetricValue


class Ravel(Metric):
    name = "sae_ravel"
    description = (
        "RAVEL disentanglement (SAEBench), zoo models only: per relation, the k latents that best separate its "
        "values at the entity token are transplanted from a source entity into a base entity. Key 'ravel_cause': share "
        "of patched prompts answering the source's value; 'ravel_isolation': share of other relations' prompts whose "
        "answer is unchanged under the same transplant; 'ravel_score': their mean. Means over relations."
    )
    paper = "arXiv:2402.17700"
    higher_is_better = True
    #: On the zoo, patching the entity token moves almost no answer (cause 0.00 for every learner, README):
    #: 12-17 s a cell for no signal, so the sae suite computes it only when `metrics.include` names it.
    opt_in = True
    scope = "sae"

    class Config(PluginConfig):
        relations: list[Literal["country", "profession", "colour"]] = Field(
            ["country", "profession", "colour"], min_length=2, description="World relations used as attributes (>= 2)."
        )
        fact_splits: list[Literal["frequent", "medium", "rare", "heldout"]] = Field(
            ["frequent", "medium"], min_length=1, description="Fact splits whose entities are the items (only those the "
            "model answers correctly are kept)."
        )
        max_entities: int = Field(200, ge=8, description="Entities per relation considered (before the known filter).")
        k: int = Field(8, ge=1, description="Latents transplanted per attribute (selected on half the items).")
        n_pairs: int = Field(64, ge=1, description="(base, source) pairs per cause and per isolation measurement.")
        seed: int = Field(0, description="Pair sampling seed (combined with the cell's seed).")

    def compute(self, inputs: SAEInputs) -> list[MetricValue]:
        from harness.zoo.identify import world_of

        world = world_of(inputs.model)
        if world is None:
            return []  # not a zoo model: its attributes are unknown, no number
        from .core import ravel_scores
        from .world import world_items

        cfg = self.config
        d_sae = int(inputs.sae.W_dec.shape[0]) if hasattr(inputs.sae, "W_dec") else None
        if d_sae is not None and cfg.k > d_sae:
            raise ValueError(f"k: {cfg.k} is more than the SAE's {d_sae} latents. Fix: lower k.")
        items, predict = world_items(world, inputs.model, inputs.hook_point, cfg.relations, cfg.fact_splits,
                                     cfg.max_entities)
        items = {r: it for r, it in items.items() if it.answers.numel() >= 4}
        if len(items) < 2:
            return []  # the model knows too few facts for two attributes: nothing to intervene on
        result = ravel_scores(items, inputs.sae, predict, k=cfg.k, n_pairs=cfg.n_pairs,
                              seed=cfg.seed + 1_000_003 * int(inputs.seed))
        if not result.complete:
            return []
        n_c, n_i = sum(result.n_cause.values()), sum(result.n_isolation.values())
        return [
            self.value(result.mean_cause, key="ravel_cause", n=n_c),
            self.value(result.mean_isolation, key="ravel_isolation", n=n_i),
            self.value(result.score, key="ravel_score", n=n_c + n_i),
        ]


@hookimpl
def register_metrics(register):
    register(Ravel)
