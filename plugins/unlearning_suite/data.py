"""Data of the unlearning suite: the token sequences it labels, k-extractability, balanced classes.

The suite wraps them in :class:`harness.unlearning.data.UnlearningData` (the contract with
every unlearning method) before a method sees them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def balanced_indices(pos: list[int], neg: list[int], seed: int) -> tuple[list[int], list[int]]:
    """Equal-size seeded subsamples (each sorted) of the two classes' indices."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n = min(len(pos), len(neg))
    return (sorted(pos[i] for i in torch.randperm(len(pos), generator=g)[:n].tolist()),
            sorted(neg[i] for i in torch.randperm(len(neg), generator=g)[:n].tolist()))


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
