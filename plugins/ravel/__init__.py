"""Metric "sae_ravel": RAVEL-style disentanglement of an SAE's latents (SAEBench's cause and isolation).

Huang et al., RAVEL (arXiv 2402.17700), as adapted for SAEs by SAEBench (arXiv 2503.09532): per
attribute, pick the latents that encode it at the entity token, transplant them from a source
entity into a base entity (decode, patch the residual stream, keep the SAE error), and measure
*cause* (the model now gives the source's value of that attribute) and *isolation* (answers to
other attributes' prompts do not change when those latents are transplanted). The data is an
``entity_attributes`` data set (``data``): the world by default, whose attributes are its relations
(country, profession, colour) and which only a zoo build knows (for any other model the metric then
returns nothing), or a user's entities with several attributes and prompt templates per attribute
(SAEBench's RAVEL schema) through the datasets kind (``local``, ``hf``). Code: :mod:`.core`
(scores), :mod:`.prompts` (items from the data).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.datasets import DatasetRef, EntityAttributes, dataset_field, is_world, open_role
from harness.metric_inputs import SAEInputs
from harness.protocols import Metric
from harness.results import MetricValue


class Ravel(Metric):
    name = "sae_ravel"
    description = (
        "RAVEL disentanglement (SAEBench): per attribute, the k latents that best separate its values at the entity "
        "token are transplanted from a source entity into a base entity. Key 'ravel_cause': share of patched prompts "
        "answering the source's value; 'ravel_isolation': share of other attributes' prompts whose answer is "
        "unchanged under the same transplant; 'ravel_score': their mean. Means over attributes. Data: the world's "
        "relations (zoo models) or a user's entity / attribute set (config `data`)."
    )
    paper = "arXiv:2402.17700"
    higher_is_better = True
    #: On the zoo, patching the entity token moves almost no answer (cause 0.00 for every learner, README):
    #: 12-17 s a cell for no signal, so the sae suite computes it only when `metrics.include` names it.
    opt_in = True
    scope = "sae"

    class Config(PluginConfig):
        data: DatasetRef = dataset_field(
            "entity_attributes", "Entities with a value per attribute and prompt templates per attribute (SAEBench's "
            "RAVEL schema): world = the zoo world's relations (zoo models only); local / hf = your own set.")
        attributes: list[str] | None = Field(
            None, min_length=2, description="Attributes used (>= 2); None = every attribute of the data (the world: "
            "country, profession, colour).")
        fact_splits: list[Literal["frequent", "medium", "rare", "heldout"]] = Field(
            ["frequent", "medium"], min_length=1, description="World data only: the fact splits whose entities are the "
            "items (only those the model answers correctly are kept). Other data: every entity.")
        max_entities: int = Field(200, ge=8, description="Entities per attribute considered (before the known filter); "
                                                          "each gives one prompt per template.")
        k: int = Field(8, ge=1, description="Latents transplanted per attribute (selected on half the items).")
        n_pairs: int = Field(64, ge=1, description="(base, source) pairs per cause and per isolation measurement.")
        seed: int = Field(0, description="Pair sampling seed (combined with the cell's seed).")

    def compute(self, inputs: SAEInputs) -> list[MetricValue]:
        cfg = self.config
        d_sae = int(inputs.sae.W_dec.shape[0]) if hasattr(inputs.sae, "W_dec") else None
        if d_sae is not None and cfg.k > d_sae:
            raise ValueError(f"k: {cfg.k} is more than the SAE's {d_sae} latents. Fix: lower k.")
        data = self._data(inputs)
        if data is None:
            return []  # world data and not a zoo model: its attributes are unknown, no number
        from .core import ravel_scores
        from .prompts import entity_items

        templates = data.templates()
        attributes = cfg.attributes or list(templates)
        unknown = [a for a in attributes if a not in templates]
        if unknown:
            from harness.errors import did_you_mean

            raise ValueError(f"attributes: {', '.join(unknown)} not in the data's attributes ({', '.join(templates)})."
                             f"{did_you_mean(unknown[0], list(templates))} Fix: name attributes the data has.")
        if len(attributes) < 2:
            raise ValueError(f"attributes: the data has {len(attributes)} attribute(s) ({', '.join(attributes)}); "
                             "RAVEL's isolation needs two or more. Fix: add attributes (and their templates).")
        entities = data.entities()
        if is_world(cfg.data):  # in the order of fact_splits, as the items were always drawn
            entities = [e for s in cfg.fact_splits for e in entities if e.split == s]
        items, predict = entity_items(templates, entities, inputs.model, inputs.hook_point, attributes,
                                      cfg.max_entities)
        items = {a: it for a, it in items.items() if it.answers.numel() >= 4}
        if len(items) < 2:
            return []  # the model knows too few values of two attributes: nothing to intervene on
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

    def _data(self, inputs: SAEInputs) -> EntityAttributes | None:
        """The configured entity / attribute data; for the world, the world the zoo model was trained on
        (None for any other model)."""
        if not is_world(self.config.data):
            return open_role(self.config.data, "entity_attributes", at="data")
        from harness.datasets.providers import WorldEntityAttributes
        from harness.zoo.identify import world_of

        world = world_of(inputs.model)
        if world is None:
            return None
        seed = self.config.data.config.get("seed", 0)
        if seed != world.seed:
            raise ValueError(f"data: world seed {seed}, but the model was trained on world {world.seed}. Fix: drop "
                             "the seed (the model's own world is used).")
        return WorldEntityAttributes(world)


@hookimpl
def register_metrics(register):
    register(Ravel)
