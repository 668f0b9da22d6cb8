"""Latent activations over held-out contexts and SAEBench-style example windows.

:func:`latent_activations` runs the model over the held-out token batches, encodes the
activations at the hook point with the SAE and returns ``[contexts, T, d_sae]`` (BOS and
padding positions zeroed, as SAEBench masks BOS/pad/EOS). :func:`gather_examples` then builds,
per latent, SAEBench's two example sets from windows of ``2 * buffer + 1`` tokens:

- generation: the top-activating windows (no overlap) plus importance-weighted ones (sampled
  with probability proportional to the activation, among positions below the top windows'
  smallest centre value);
- scoring: the remaining top windows, the remaining importance-weighted ones and random
  windows, shuffled; a window is *active* when any of its tokens exceeds ``act_threshold_frac``
  times the latent's top activation (SAEBench ``Example.is_active``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Window:
    """One example: token ids, the latent's activation per token, and which tokens are active."""

    tokens: tuple[int, ...]
    acts: tuple[float, ...]
    active: tuple[bool, ...]

    @property
    def is_active(self) -> bool:
        """Whether the latent fires on any token of the window (what the judge predicts)."""
        return any(self.active)


@dataclass(frozen=True)
class LatentExamples:
    """A latent's generation windows (most active first) and shuffled scoring windows."""

    latent: int
    generation: tuple[Window, ...]
    scoring: tuple[Window, ...]


def _device(module: Any) -> torch.device:
    try:
        return next(module.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def latent_activations(loaded: Any, sae: Any, hook_point: str, batches: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens [N, T] long, latents [N, T, d_sae] float32)`` over the held-out batches, on the CPU.

    Batches may differ in width; rows are right-padded to the widest one. Padding and BOS
    positions get latent activation 0 (SAEBench masks BOS, padding and EOS the same way).
    """
    from harness.models import model_bos_id, run_with_cache

    if not batches:
        raise ValueError("autointerp needs held-out token batches (SAEInputs.token_batches is empty).")
    module = loaded.model if hasattr(loaded, "model") else loaded
    tokenizer = getattr(loaded, "tokenizer", None)
    bos = model_bos_id(loaded, tokenizer)
    model_dev, sae_dev = _device(module), _device(sae)
    width = max(int(b.input_ids.shape[1]) for b in batches)
    all_ids, all_lat = [], []
    with torch.no_grad():
        for b in batches:
            ids, mask = b.input_ids, b.attention_mask
            _, store = run_with_cache(module, hook_point, ids.to(model_dev), attention_mask=mask.to(model_dev),
                                      stop_early=True)
            x = store[hook_point].to(sae_dev, torch.float32)
            z = sae.encode(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:2], -1).float().cpu()
            keep = mask.bool() if bos is None else mask.bool() & (ids != bos)
            z = z * keep.unsqueeze(-1)
            pad = width - ids.shape[1]
            all_ids.append(torch.nn.functional.pad(ids, (0, pad), value=0))
            all_lat.append(torch.nn.functional.pad(z, (0, 0, 0, pad)))
    return torch.cat(all_ids), torch.cat(all_lat)


def _windows(tokens: torch.Tensor, acts: torch.Tensor, centres: torch.Tensor, buffer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token and activation windows ``[k, 2 * buffer + 1]`` around ``centres`` ``[k, 2]`` (row, position)."""
    offsets = torch.arange(-buffer, buffer + 1)
    rows = centres[:, :1].expand(-1, offsets.numel())
    cols = centres[:, 1:] + offsets
    return tokens[rows, cols], acts[rows, cols]


def top_centres(acts: torch.Tensor, k: int, buffer: int) -> torch.Tensor:
    """Up to ``k`` (row, position) centres of the largest activations, at least ``buffer`` from each
    end, with non-overlapping windows (SAEBench ``get_k_largest_indices(no_overlap=True)``);
    positions with activation 0 are never chosen."""
    inner = acts[:, buffer : acts.shape[1] - buffer]
    flat = inner.flatten()
    order = torch.argsort(flat, descending=True, stable=True)
    width = inner.shape[1]
    taken: list[tuple[int, int]] = []
    for idx in order.tolist():
        if flat[idx] <= 0 or len(taken) == k:
            break
        r, c = divmod(idx, width)
        c += buffer
        if all(r != tr or abs(c - tc) > 2 * buffer for tr, tc in taken):
            taken.append((r, c))
    return torch.tensor(taken, dtype=torch.long).reshape(-1, 2)


def iw_centres(acts: torch.Tensor, k: int, buffer: int, below: float, gen: torch.Generator) -> torch.Tensor:
    """Up to ``k`` centres sampled with probability proportional to the activation among positions whose
    activation is positive and below ``below`` (SAEBench's importance-weighted examples, disjoint from
    the top ones), without replacement."""
    inner = acts[:, buffer : acts.shape[1] - buffer].clone()
    inner[inner >= below] = 0
    weights = inner.flatten().clamp_min(0).double()
    n = int((weights > 0).sum())
    if n == 0:
        return torch.zeros((0, 2), dtype=torch.long)
    idx = torch.multinomial(weights, min(k, n), replacement=False, generator=gen)
    width = inner.shape[1]
    return torch.stack([idx // width, idx % width + buffer], dim=-1)


def random_centres(n_rows: int, seq_len: int, k: int, buffer: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` uniformly random centres (SAEBench's random scoring examples)."""
    rows = torch.randint(0, n_rows, (k,), generator=gen)
    cols = torch.randint(buffer, seq_len - buffer, (k,), generator=gen)
    return torch.stack([rows, cols], dim=-1)


def gather_examples(
    tokens: torch.Tensor, acts: torch.Tensor, latent: int, cfg: Any, gen: torch.Generator
) -> LatentExamples | None:
    """The generation and scoring windows of one latent (``acts``: ``[N, T]`` of that latent), or None
    when the latent has fewer top windows than the generation set needs (SAEBench treats it as dead).

    ``cfg`` has ``buffer``, ``act_threshold_frac`` and the ``n_*_ex_for_*`` counts of
    :class:`~harness_plugins.autointerp.AutoInterp.Config`.
    """
    b = cfg.buffer
    if tokens.shape[1] < 2 * b + 2:
        raise ValueError(f"buffer: {b} leaves no window centre in contexts of {tokens.shape[1]} tokens. "
                         f"Fix: use buffer <= {(tokens.shape[1] - 2) // 2}.")
    n_top = cfg.n_top_ex_for_generation + cfg.n_top_ex_for_scoring
    top = top_centres(acts, n_top, b)
    if top.shape[0] <= cfg.n_top_ex_for_generation:
        return None
    top_tok, top_act = _windows(tokens, acts, top, b)
    threshold = cfg.act_threshold_frac * float(top_act.max())
    n_iw = cfg.n_iw_sampled_ex_for_generation + cfg.n_iw_sampled_ex_for_scoring
    iw = iw_centres(acts, n_iw, b, float(top_act[:, b].min()), gen)
    iw_tok, iw_act = _windows(tokens, acts, iw, b)
    rand = random_centres(tokens.shape[0], tokens.shape[1], cfg.n_random_ex_for_scoring, b, gen)
    rand_tok, rand_act = _windows(tokens, acts, rand, b)

    def make(tok: torch.Tensor, act: torch.Tensor) -> list[Window]:
        return [Window(tuple(t), tuple(a), tuple(x > threshold for x in a)) for t, a in zip(tok.tolist(), act.tolist())]

    top_split = torch.randperm(top.shape[0], generator=gen)
    iw_split = torch.randperm(iw.shape[0], generator=gen)
    g_top, s_top = top_split[: cfg.n_top_ex_for_generation], top_split[cfg.n_top_ex_for_generation :]
    g_iw, s_iw = iw_split[: cfg.n_iw_sampled_ex_for_generation], iw_split[cfg.n_iw_sampled_ex_for_generation :]
    generation = make(top_tok[g_top], top_act[g_top]) + make(iw_tok[g_iw], iw_act[g_iw])
    generation.sort(key=lambda w: max(w.acts), reverse=True)
    scoring = make(top_tok[s_top], top_act[s_top]) + make(iw_tok[s_iw], iw_act[s_iw]) + make(rand_tok, rand_act)
    order = torch.randperm(len(scoring), generator=gen).tolist()
    return LatentExamples(latent, tuple(generation), tuple(scoring[i] for i in order))
