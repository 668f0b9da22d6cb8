"""RAVEL on the zoo world: the relations' prompts, the entity position, and the model-backed ``predict``.

Attribute = relation (country of a city, profession of a person, colour of an element). Items
are the facts of the chosen splits whose answer the model gets right (greedy next token = the
answer's first token; the answers of a relation have distinct first tokens in the world's
vocabulary, checked here). The entity position is the last token of the entity in the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .core import AttributeItems


@dataclass(frozen=True)
class Prompts:
    """Token rows (BOS first) of one attribute's prompts, their entity positions and true answer ids."""

    rows: list[list[int]]
    entity_pos: list[int]
    answers: list[int]
    first_tokens: list[int]  # first token of " <value>" per value id


def attribute_prompts(world: Any, tokenizer: Any, relation: str, splits: list[str], limit: int) -> Prompts:
    """The prompts of ``relation``'s facts in ``splits`` (at most ``limit``), tokenised."""
    rel = world.relations[relation]
    first = [tokenizer(" " + a, add_special_tokens=False)["input_ids"][0] for a in rel.answers]
    if len(set(first)) != len(first):
        raise ValueError(f"relation {relation!r}: two answers share a first token; RAVEL's greedy check needs distinct ones.")
    bos = tokenizer.bos_token_id
    rows, pos, answers = [], [], []
    facts = [f for s in splits for f in world.facts_by_split(s) if f.relation == relation][:limit]
    for f in facts:
        ids = tokenizer(f.prompt, add_special_tokens=False)["input_ids"]
        end = f.prompt.index(f.entity) + len(f.entity)
        head = tokenizer(f.prompt[:end], add_special_tokens=False)["input_ids"]
        if ids[: len(head)] != head:
            continue  # the entity's tokens are not a prefix of the prompt's: no clean entity position
        lead = [bos] if bos is not None else []
        rows.append(lead + ids)
        pos.append(len(lead) + len(head) - 1)
        answers.append(rel.answers.index(f.answer))
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


def world_items(world: Any, loaded: Any, hook_point: str, relations: list[str], splits: list[str], limit: int
                ) -> tuple[dict[str, AttributeItems], Any]:
    """Known items per relation and the ``predict`` function :func:`~.core.ravel_scores` needs."""
    reader = ModelReader(loaded, hook_point)
    tok = loaded.require_tokenizer()
    items, known = {}, {}
    for rel in relations:
        p = attribute_prompts(world, tok, rel, splits, limit)
        if not p.rows:
            continue
        greedy, reps = reader.run(p.rows, p.entity_pos)
        ok = [i for i, (g, a) in enumerate(zip(greedy.tolist(), p.answers)) if g == p.first_tokens[a]]
        known[rel] = (p, ok)
        items[rel] = AttributeItems(rel, reps[ok], torch.tensor([p.answers[i] for i in ok], dtype=torch.long))

    def predict(rel: str, base_rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        p, ok = known[rel]
        rows = [p.rows[ok[i]] for i in base_rows.tolist()]
        positions = [p.entity_pos[ok[i]] for i in base_rows.tolist()]
        greedy, _ = reader.run(rows, positions, patched=x)
        value = {t: v for v, t in enumerate(p.first_tokens)}
        return torch.tensor([value.get(g, -1) for g in greedy.tolist()], dtype=torch.long)

    return items, predict
