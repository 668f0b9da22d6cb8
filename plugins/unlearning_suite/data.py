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
from typing import Any, Literal, get_args

#: Pooling over positions of the probes and the probe-based edits (see :func:`pooled_activations`).
Pooling = Literal["mean", "last", "max", "suffix_mean", "last_prefix"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
#: Hook kind probed / edited at every depth (see :func:`harness_plugins.unlearning_suite.erasure.hook_points`).
Hook = Literal["resid_post", "resid_pre", "mlp_out", "attn_out"]


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


def pooled_activations(
    model: Any, tokens: Any, points: list[str], pooling: str = "mean", edits: Any = None, prefix_len: int | None = None,
) -> Any:
    """``[n_points, n_seq, d]`` activations pooled over positions. With ``<eos>`` at position 0,
    prompt tokens at ``1..prefix_len`` and the suffix after them:

    - ``mean`` / ``max``: mean / elementwise max over every position but the ``<eos>``;
    - ``last``: the last position;
    - ``suffix_mean``: mean over positions ``prefix_len .. L-2``, the ones whose next-token
      prediction is a suffix token (what k-extractability tests), needs ``prefix_len``;
    - ``last_prefix``: position ``prefix_len`` (the last prompt token: what the model has seen
      when extraction starts), needs ``prefix_len``.

    ``edits``: optional ``{point: fn}`` active during the pass."""
    import contextlib

    import torch

    from harness.models import capture, intervene

    if pooling in ("suffix_mean", "last_prefix") and (prefix_len is None or not 1 <= prefix_len <= tokens.shape[1] - 2):
        raise ValueError(
            f"pooling={pooling!r} needs prefix_len between 1 and sequence length - 2 ({tokens.shape[1] - 2}), got "
            f"{prefix_len!r}: pass the data's prefix_len, or use pooling 'mean', 'last' or 'max'."
        )
    hf = getattr(model, "model", model)
    ctx = intervene(hf, edits) if edits else contextlib.nullcontext()
    with torch.no_grad(), ctx, capture(hf, points) as store:
        hf(input_ids=tokens, use_cache=False)
    acts = torch.stack([store[p].float() for p in points])  # [points, n, L, d]
    if pooling == "mean":
        return acts[:, :, 1:].mean(2)
    if pooling == "last":
        return acts[:, :, -1]
    if pooling == "max":
        return acts[:, :, 1:].max(2).values
    if pooling == "suffix_mean":
        return acts[:, :, prefix_len:-1].mean(2)
    if pooling == "last_prefix":
        return acts[:, :, prefix_len]
    raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}.")


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
