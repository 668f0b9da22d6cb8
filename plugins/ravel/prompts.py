"""RAVEL's items from entity / attribute data: prompts, the entity position, and the model-backed ``predict``.

The data is a :class:`harness.datasets.EntityAttributes` (the world's relations by default, or a
user's entities with several attributes, SAEBench's schema). For each attribute, every entity that
has a value of it yields one prompt per template (``template`` with the entity in its ``%s``). Items
are the prompts whose answer the model gets right (greedy next token = the first token of
``" " + value``); the values of an attribute must have distinct first tokens for that check, so a
value sharing its first token with another value is left out (logged). The entity position is the
last token of the entity in the prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness.datasets.roles import ENTITY_SLOT, EntityItem

from .core import AttributeItems

log = logging.getLogger("harness")


@dataclass(frozen=True)
class Prompts:
    """Token rows (BOS first) of one attribute's prompts, their entity positions and true answer ids."""

    rows: list[list[int]]
    entity_pos: list[int]
    answers: list[int]
    first_tokens: list[int]  # first token of " <value>" per value id


def attribute_prompts(templates: Sequence[str], entities: Sequence[EntityItem], tokenizer: Any, attribute: str,
                      limit: int) -> Prompts:
    """The prompts of the first ``limit`` entities having ``attribute``, one per template, tokenised."""
    chosen = [(e.entity, v) for e in entities if (v := e.value(attribute)) is not None][:limit]
    values = list(dict.fromkeys(v for _e, v in chosen))
    first = [tokenizer(" " + v, add_special_tokens=False)["input_ids"][0] for v in values]
    shared = {t for t in first if first.count(t) > 1}
    if shared:
        dropped = [v for v, t in zip(values, first) if t in shared]
        log.warning("sae_ravel: attribute %r: values %s share a first token; their entities are left out (the greedy "
                    "check cannot tell them apart).", attribute, ", ".join(dropped[:6]))
    bos = tokenizer.bos_token_id
    lead = [bos] if bos is not None else []
    rows, pos, answers = [], [], []
    for entity, value in chosen:
        vid = values.index(value)
        if first[vid] in shared:
            continue
        for template in templates:
            start = template.index(ENTITY_SLOT)
            prompt = template[:start] + entity + template[start + len(ENTITY_SLOT):]
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            head = tokenizer(prompt[: start + len(entity)], add_special_tokens=False)["input_ids"]
            if not head or ids[: len(head)] != head:
                continue  # the entity's tokens are not a prefix of the prompt's: no clean entity position
            rows.append(lead + ids)
            pos.append(len(lead) + len(head) - 1)
            answers.append(vid)
    return Prompts(rows, pos, answers, first)


class ModelReader:
    """Runs the model on prompts, reads the hook point at the entity position, patches it, predicts."""

    def __init__(self, loaded: Any, hook_point: str, batch_size: int = 64) -> None:
        self.model = loaded.model
        self.hook_point = hook_point
        self.batch_size = batch_size
        self.device = next(self.model.parameters()).device
        tok = loaded.require_tokenizer()
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

    def _batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask, torch.tensor([len(r) - 1 for r in rows])

    def run(self, rows: list[list[int]], positions: list[int], patched: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(greedy next token after each prompt [n], activation at each entity position [n, d])``; with
        ``patched`` ``[n, d]`` that activation is replaced there during the pass."""
        from harness.models import capture, intervene

        preds, reps = [], []
        for s in range(0, len(rows), self.batch_size):
            ids, mask, last = self._batch(rows[s : s + self.batch_size])
            pos = torch.tensor(positions[s : s + self.batch_size])
            ar = torch.arange(len(pos))
            edits = {}
            if patched is not None:
                new = patched[s : s + self.batch_size]

                def put(act: torch.Tensor, new: torch.Tensor = new, pos: torch.Tensor = pos) -> torch.Tensor:
                    act = act.clone()
                    act[torch.arange(len(pos)), pos.to(act.device)] = new.to(act.device, act.dtype)
                    return act

                edits = {self.hook_point: put}
            with torch.no_grad(), intervene(self.model, edits), capture(self.model, self.hook_point) as store:
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), use_cache=False).logits
            preds.append(logits[ar, last.to(logits.device)].argmax(-1).cpu())
            reps.append(store[self.hook_point][ar, pos.to(self.device)].float().cpu())
        return torch.cat(preds), torch.cat(reps)


def entity_items(templates: dict[str, list[str]], entities: Sequence[EntityItem], loaded: Any, hook_point: str,
                 attributes: list[str], limit: int) -> tuple[dict[str, AttributeItems], Any]:
    """Known items per attribute and the ``predict`` function :func:`~.core.ravel_scores` needs."""
    reader = ModelReader(loaded, hook_point)
    tok = loaded.require_tokenizer()
    items, known = {}, {}
    for attr in attributes:
        p = attribute_prompts(templates[attr], entities, tok, attr, limit)
        if not p.rows:
            continue
        greedy, reps = reader.run(p.rows, p.entity_pos)
        ok = [i for i, (g, a) in enumerate(zip(greedy.tolist(), p.answers)) if g == p.first_tokens[a]]
        known[attr] = (p, ok)
        items[attr] = AttributeItems(attr, reps[ok], torch.tensor([p.answers[i] for i in ok], dtype=torch.long))

    def predict(attr: str, base_rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        p, ok = known[attr]
        rows = [p.rows[ok[i]] for i in base_rows.tolist()]
        positions = [p.entity_pos[ok[i]] for i in base_rows.tolist()]
        greedy, _ = reader.run(rows, positions, patched=x)
        value = {t: v for v, t in enumerate(p.first_tokens)}
        return torch.tensor([value.get(g, -1) for g in greedy.tolist()], dtype=torch.long)

    return items, predict
