"""Data of the unlearning suite: the token sequences it labels, k-extractability, balanced classes,
retain windows. The sequences and the retain text come from the suite's ``sequences`` and
``retain`` data fields (:mod:`harness.datasets`; the world's canaries + controls and its
documents by default).

The suite wraps them in :class:`harness.unlearning.data.UnlearningData` (the contract with
every unlearning method) before a method sees them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def balanced_indices(pos: list[int], neg: list[int], seed: int) -> tuple[list[int], list[int]]:
    """Equal-size seeded subsamples (each sorted) of the two classes' indices."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n = min(len(pos), len(neg))
    return (sorted(pos[i] for i in torch.randperm(len(pos), generator=g)[:n].tolist()),
            sorted(neg[i] for i in torch.randperm(len(neg), generator=g)[:n].tolist()))


@dataclass(frozen=True)
class Sequences:
    """The suite's candidate sequences: ``<eos>`` + the first ``prefix_len + suffix_len`` tokens of
    every item long enough, and how many items were too short (counted, not silently dropped)."""

    sequences: list[tuple[int, ...]]
    n_items: int
    n_too_short: int
    min_tokens: int


def sequence_tokens(items: Iterable[Any], tokenizer: Any, prefix_len: int, suffix_len: int, *,
                    vocab_size: int | None = None, where: str = "sequences") -> Sequences:
    """Token sequences of :class:`~harness.datasets.SequenceItem` s (``tokens``, else the tokenized
    ``text``, without special tokens) cut to ``prefix_len + suffix_len`` tokens after ``<eos>``.
    Token ids must be below ``vocab_size`` (the model's embedding rows; default the tokenizer's size)."""
    n = prefix_len + suffix_len
    vocab = vocab_size or len(tokenizer)
    out, short, total = [], 0, 0
    for item in items:
        total += 1
        ids = list(item.tokens) if item.tokens is not None else tokenizer(item.text, add_special_tokens=False).input_ids
        bad = [t for t in ids[:n] if not 0 <= t < vocab]
        if bad:
            from harness.errors import HarnessError

            raise HarnessError(
                f"{where}: item {total - 1} has token ids {bad[:5]} outside the model's vocabulary (size {vocab}). "
                "Fix: give token ids of the model's own tokenizer, or text (text_column) instead of tokens."
            )
        if len(ids) >= n:
            out.append((tokenizer.eos_token_id, *ids[:n]))
        else:
            short += 1
    return Sequences(out, total, short, n)


def too_short_note(data: Sequences, where: str = "sequences") -> str | None:
    """The warning for items too short for prefix + suffix (None when there are none)."""
    if not data.n_too_short:
        return None
    return (f"{where}: {data.n_too_short} of {data.n_items} sequences have fewer than prefix_len + suffix_len = "
            f"{data.min_tokens} tokens and are not used (counted in the record's details.data.n_too_short). "
            "Fix: lower prefix_len / suffix_len, or give longer sequences.")


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


def retain_sequences(texts: Iterable[str], tokenizer: Any, n: int, length: int) -> list[tuple[int, ...]]:
    """``n`` windows of ``length`` tokens (``<eos>`` + the first ``length - 1`` tokens) of the
    documents ``texts`` long enough, reading at most ``50 * n`` documents."""
    out: list[tuple[int, ...]] = []
    for text in itertools.islice(texts, 50 * n):
        ids = tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) >= length - 1:
            out.append((tokenizer.eos_token_id, *ids[: length - 1]))
        if len(out) == n:
            break
    return out
