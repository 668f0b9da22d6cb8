"""Known features of the world, labelled sentences, and the best F1 of any latent per feature (torch here).

Feature groups (each with its own pool of sentences; a feature's negatives are the other
sentences of its pool):

- ``topic``: balanced topic sentences, one feature per topic;
- ``entity_type``: "People often talk about <entity>."-style sentences, one feature per type;
- ``first_letter``: "<word> starts with" (the letter itself is not in the text), one feature per
  letter with at least ``min_positives`` words;
- ``country`` / ``profession`` / ``colour``: the fact prompt without its answer ("Bolira is a city
  in"), one feature per answer value with at least ``min_positives`` entities.

A latent *fires on a sentence* when it is non-zero on any of its tokens (BOS excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

GROUPS = ("topic", "entity_type", "first_letter", "country", "profession", "colour")


@dataclass(frozen=True)
class FeaturePool:
    """Sentences of one group and the known feature values of each (one label per sentence)."""

    group: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class FeatureMatch:
    """The best-matching latent of one known feature."""

    group: str
    value: str
    latent: int
    f1: float
    n_positive: int


def world_pools(world: Any, groups: Sequence[str], n_sentences: int, fact_splits: Sequence[str], seed: int) -> list[FeaturePool]:
    """Labelled sentences of each requested group (see the module docstring)."""
    pools = []
    for group in groups:
        if group in ("topic", "entity_type"):
            split = "balanced" if group == "topic" else "train"
            ex = world.probing_examples(n_sentences, group, split, seed=seed)
            pools.append(FeaturePool(group, tuple(e.text for e in ex), tuple(e.label_name for e in ex)))
        elif group == "first_letter":
            pairs = world.first_letter_words
            pools.append(FeaturePool(group, tuple(f"{w} starts with" for w, _ in pairs), tuple(c for _, c in pairs)))
        elif group in world.relations:
            facts = [f for s in fact_splits for f in world.facts_by_split(s) if f.relation == group][:n_sentences]
            pools.append(FeaturePool(group, tuple(f.prompt for f in facts), tuple(f.answer for f in facts)))
        else:
            raise ValueError(f"groups: unknown feature group {group!r}; choose from {', '.join(GROUPS)}.")
    return pools


def sentence_firing(loaded: Any, sae: Any, hook_point: str, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """``[len(texts), d_sae]`` bool: the latent is non-zero on some token of the sentence (one context per
    sentence, BOS first, BOS and padding excluded)."""
    from harness.models import iter_token_batches, model_bos_id, run_with_cache

    tok = loaded.require_tokenizer()
    bos = model_bos_id(loaded, tok)
    model_dev = next(loaded.model.parameters()).device
    sae_dev = next(iter(sae.parameters()), torch.zeros(0)).device if hasattr(sae, "parameters") else torch.device("cpu")
    out = []
    with torch.no_grad():
        for b in iter_token_batches(list(texts), tokenizer=tok, batch_size=batch_size, context_length=128, pack=False):
            _, store = run_with_cache(loaded.model, hook_point, b.input_ids.to(model_dev),
                                      attention_mask=b.attention_mask.to(model_dev), stop_early=True)
            x = store[hook_point].to(sae_dev, torch.float32)
            z = sae.encode(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:2], -1).cpu()
            keep = b.attention_mask.bool() if bos is None else b.attention_mask.bool() & (b.input_ids != bos)
            out.append(((z != 0) & keep.unsqueeze(-1)).any(1))
    return torch.cat(out)


def best_f1(fires: torch.Tensor, labels: Sequence[str], min_positives: int) -> list[tuple[str, int, float, int]]:
    """Per feature value with at least ``min_positives`` sentences: ``(value, best latent, its F1, positives)``.

    F1 of latent j for value v = 2 TP / (|fires_j| + |v|) over the pool's sentences (0 when neither fires).
    """
    f = fires.double()
    out = []
    for value in sorted(set(labels)):
        y = torch.tensor([lab == value for lab in labels], dtype=torch.float64)
        pos = int(y.sum())
        if pos < min_positives:
            continue
        tp = y @ f
        denom = f.sum(0) + pos
        f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
        j = int(torch.argmax(f1))
        out.append((value, j, float(f1[j]), pos))
    return out


def ground_truth_matches(loaded: Any, sae: Any, hook_point: str, pools: Sequence[FeaturePool], min_positives: int) -> list[FeatureMatch]:
    """The best latent of every known feature of ``pools``."""
    matches = []
    for pool in pools:
        fires = sentence_firing(loaded, sae, hook_point, pool.texts)
        for value, j, f1, pos in best_f1(fires, pool.labels, min_positives):
            matches.append(FeatureMatch(pool.group, value, j, f1, pos))
    return matches
