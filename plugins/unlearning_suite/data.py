"""Data of the unlearning suite: labelled token sequences, k-extractability, pooled activations.

``UnlearningData`` is the contract between the suite and every unlearning method
(third-party ones included): ``fit(model, forget, retain, *, seed)`` receives

- ``forget``: an :class:`UnlearningData` whose ``labels`` are 1 for memorised sequences (the
  content to erase) and 0 for non-memorised ones of the same kind (the contrast a probe needs);
- ``retain``: an :class:`UnlearningData` of ordinary text (labels all 0) to preserve.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class UnlearningData:
    """Token sequences (lists of token ids, all of one length) with 0/1 labels."""

    sequences: tuple[tuple[int, ...], ...]
    labels: tuple[int, ...]
    prefix_len: int = 16  #: tokens of the extraction prompt (k-extractability)

    def __post_init__(self) -> None:
        if len(self.sequences) != len(self.labels):
            raise ValueError(f"UnlearningData: {len(self.sequences)} sequences but {len(self.labels)} labels.")

    def tensor(self) -> Any:
        import torch

        return torch.tensor([list(s) for s in self.sequences], dtype=torch.long)

    def subset(self, label: int) -> UnlearningData:
        keep = [i for i, y in enumerate(self.labels) if y == label]
        return UnlearningData(tuple(self.sequences[i] for i in keep), tuple(label for _ in keep), self.prefix_len)


def zoo_sequences(tokenizer: Any, prefix_len: int, suffix_len: int, seed: int = 0) -> list[tuple[int, ...]]:
    """The zoo world's canaries and never-seen controls as ``<eos> + tokens`` cut to
    ``1 + prefix_len + suffix_len`` tokens (zoo canaries are 21-35 tokens; shorter ones are skipped)."""
    from harness.zoo import World

    world = World(seed=seed)
    n = prefix_len + suffix_len
    out = []
    for c in (*world.canaries, *world.controls):
        ids = tokenizer(c.text, add_special_tokens=False).input_ids
        if len(ids) >= n:
            out.append((tokenizer.eos_token_id, *ids[:n]))
    return out


def jsonl_sequences(path: str | Path, tokenizer: Any, prefix_len: int, suffix_len: int) -> list[tuple[int, ...]]:
    """A user token set: one JSON object per line with ``"tokens": [ids]`` or ``"text": "..."``;
    sequences shorter than ``prefix_len + suffix_len`` are skipped, longer ones cut."""
    n = prefix_len + suffix_len
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        ids = row["tokens"] if "tokens" in row else tokenizer(row["text"], add_special_tokens=False).input_ids
        if len(ids) >= n:
            out.append((tokenizer.eos_token_id, *ids[:n]))
    return out


def k_extractable(model: Any, sequences: Any, prefix_len: int, batch_size: int = 64) -> list[bool]:
    """Greedy continuation of the first ``1 + prefix_len`` tokens reproduces the rest exactly
    (Biderman et al. 2023, k-extractability). ``sequences``: LongTensor [n, L]."""
    import torch

    hf = getattr(model, "model", model)
    p = prefix_len + 1
    hits: list[bool] = []
    with torch.no_grad():
        for b in range(0, len(sequences), batch_size):
            seq = sequences[b : b + batch_size]
            ids = seq[:, :p]
            for _ in range(seq.shape[1] - p):
                nxt = hf(input_ids=ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
                ids = torch.cat([ids, nxt], 1)
            hits += (ids[:, p:] == seq[:, p:]).all(1).tolist()
    return hits


def pooled_activations(model: Any, tokens: Any, points: list[str], pooling: str = "mean", edits: Any = None) -> Any:
    """``[n_points, n_seq, d]`` activations pooled over positions (skipping the <eos> at 0):
    'mean', 'last' or 'max'. ``edits``: optional ``{point: fn}`` active during the pass."""
    import contextlib

    import torch

    from harness.models import capture, intervene

    hf = getattr(model, "model", model)
    ctx = intervene(hf, edits) if edits else contextlib.nullcontext()
    with torch.no_grad(), ctx, capture(hf, points) as store:
        hf(input_ids=tokens, use_cache=False)
    acts = torch.stack([store[p][:, 1:].float() for p in points])
    if pooling == "mean":
        return acts.mean(2)
    if pooling == "last":
        return acts[:, :, -1]
    if pooling == "max":
        return acts.max(2).values
    raise ValueError(f"pooling must be 'mean', 'last' or 'max', not {pooling!r}.")


def retain_sequences(tokenizer: Any, n: int, length: int, seed: int = 0, start: int = 200_000) -> list[tuple[int, ...]]:
    """``n`` windows of ``length`` tokens of ordinary world text (documents past the canary window)."""
    from harness.zoo import World

    out: list[tuple[int, ...]] = []
    for doc in World(seed=seed).documents(start, start + 50 * n):
        ids = tokenizer(doc.text, add_special_tokens=False).input_ids
        if len(ids) >= length - 1:
            out.append((tokenizer.eos_token_id, *ids[: length - 1]))
        if len(out) == n:
            break
    return out
