"""Stream activations at hook points over a token source.

- :func:`iter_token_batches` turns texts (+ tokenizer), token-id rows or ready batches into
  padded ``[batch, ctx]`` :class:`TokenBatch` es (texts are packed into full contexts by
  default, each starting with BOS when the tokenizer has one).
- :func:`harvest` runs the model batch by batch and yields :class:`Activations`; with
  ``stop_early`` (default) each forward pass ends right after the last requested hook point
  (an exception raised in the hook and caught here; the activations are identical to a full
  pass). Hooks are installed per batch, so nothing stays hooked between batches.
- :func:`harvest_flat` yields ``[n_tokens, d]`` tensors of kept positions (BOS and padding
  excluded by default), the input of :class:`~harness.models.buffer.ActivationBuffer`;
  :func:`harvest_flat_with_tokens` yields the same with the kept token ids (what
  :func:`~harness.models.cache.cached_harvest` stores).
- :func:`model_bos_id` is the BOS id those exclude (tokenizer's, else the model config's).

Nothing here imports :mod:`harness.models.cache` or :mod:`harness.models.buffer`; both build
on this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .hookpoints import HookPoint, _unwrap, run_with_cache
from .loading import LoadedModel

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = [
    "Activations",
    "TokenBatch",
    "harvest",
    "harvest_flat",
    "harvest_flat_with_tokens",
    "iter_token_batches",
    "model_bos_id",
]


@dataclass
class TokenBatch:
    """Token ids ``[batch, ctx]`` (long) and their attention mask (1 = real token)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor


@dataclass
class Activations:
    """One model batch: ``acts[point]`` is ``[batch, ctx, ...]`` (patterns ``[batch, head, q, k]``)."""

    acts: dict[str, torch.Tensor]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def keep_mask(
        self, *, exclude_bos: bool = True, exclude_pad: bool = True, bos_token_id: int | None = None
    ) -> torch.Tensor:
        """Positions to keep ``[batch, ctx]`` (bool): drops padding and every BOS token.

        Where BOS and EOS share an id (Pythia, GPT-2), EOS separators are dropped too.
        """
        keep = self.attention_mask.bool() if exclude_pad else self.attention_mask.new_ones(
            self.attention_mask.shape, dtype=bool
        )
        if exclude_bos and bos_token_id is not None:
            keep = keep & (self.input_ids != bos_token_id)
        return keep

    def flat(self, point: str, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``acts[point]`` at kept positions, ``[n_kept, ...]``."""
        x = self.acts[point]
        if keep is None:
            return x.reshape(-1, *x.shape[2:])
        return x[keep.to(x.device)]


# --------------------------------------------------------------------------- tokens
def _pad_rows(rows: list[list[int]], pad_id: int) -> TokenBatch:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return TokenBatch(ids, mask)


def _special_ids(tokenizer: Any) -> tuple[int | None, int | None, int]:
    bos = getattr(tokenizer, "bos_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    return bos, eos, pad if pad is not None else (eos if eos is not None else 0)


def _rows_from_texts(
    texts: Iterable[str], tokenizer: Any, context_length: int, pack: bool, prepend_bos: bool
) -> Iterator[list[int]]:
    bos, eos, _ = _special_ids(tokenizer)
    head = [bos] if prepend_bos and bos is not None else []
    width = context_length - len(head)
    if width < 1:
        raise ValueError(f"context_length={context_length} leaves no room for tokens.")
    stream: list[int] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not pack:
            yield head + ids[:width]
            continue
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
        while len(stream) >= width:
            yield head + stream[:width]
            del stream[:width]
    if pack and stream:
        yield head + stream


def iter_token_batches(
    source: Any,
    *,
    tokenizer: Any = None,
    batch_size: int = 8,
    context_length: int = 128,
    pack: bool = True,
    prepend_bos: bool = True,
    pad_token_id: int | None = None,
) -> Iterator[TokenBatch]:
    """Batches ``[batch_size, <= context_length]`` from any token source.

    ``source`` may be: a 2-D tensor of ids (rows); an iterable of texts (needs
    ``tokenizer``; ``pack`` concatenates them with EOS separators into full contexts,
    otherwise one row per text, truncated); an iterable of rows (1-D tensors or lists of
    ids); or an iterable of ready batches (2-D tensors, dicts with ``input_ids``/
    ``attention_mask``, or :class:`TokenBatch`), which pass through truncated to
    ``context_length``. Rows are right-padded with ``pad_token_id`` (default: the
    tokenizer's pad, else EOS, else 0) and masked.
    """
    import torch

    pad = pad_token_id if pad_token_id is not None else _special_ids(tokenizer)[2]
    if isinstance(source, torch.Tensor):
        table = source.reshape(1, -1) if source.ndim == 1 else source
        source = (table[i : i + batch_size] for i in range(0, table.shape[0], batch_size))

    def rows_or_batches() -> Iterator[Any]:
        items = iter(source)
        for item in items:
            if isinstance(item, str):
                if tokenizer is None:
                    raise ValueError("A text source needs tokenizer=... (or pass token ids).")
                texts = _chain_first(item, items)
                yield from _rows_from_texts(texts, tokenizer, context_length, pack, prepend_bos)
                return
            yield item

    rows: list[list[int]] = []
    for item in rows_or_batches():
        batch = _as_batch(item, context_length, pad)
        if batch is not None:
            yield batch
            continue
        row = item.tolist() if isinstance(item, torch.Tensor) else list(item)
        rows.append(row[:context_length])
        if len(rows) == batch_size:
            yield _pad_rows(rows, pad)
            rows = []
    if rows:
        yield _pad_rows(rows, pad)


def _chain_first(first: str, rest: Iterator[Any]) -> Iterator[str]:
    yield first
    yield from rest


def _as_batch(item: Any, context_length: int, pad: int) -> TokenBatch | None:
    """A ready batch (2-D ids, dict or TokenBatch) truncated to ``context_length``; None for a row."""
    import torch

    if isinstance(item, TokenBatch):
        ids, mask = item.input_ids, item.attention_mask
    elif isinstance(item, dict):
        ids = torch.as_tensor(item["input_ids"])
        mask = torch.as_tensor(item["attention_mask"]) if "attention_mask" in item else torch.ones_like(ids)
    elif isinstance(item, torch.Tensor) and item.ndim == 2:
        ids, mask = item, torch.ones_like(item)
    elif isinstance(item, (list, tuple)) and item and isinstance(item[0], (list, tuple)):
        return _pad_rows([list(r)[:context_length] for r in item], pad)
    else:
        return None
    return TokenBatch(ids[:, :context_length].long(), mask[:, :context_length].long())


# --------------------------------------------------------------------------- harvesting
def _model_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def harvest(
    model: Any,
    points: str | HookPoint | Sequence[str | HookPoint],
    source: Any,
    *,
    tokenizer: Any = None,
    batch_size: int = 8,
    context_length: int = 128,
    pack: bool = True,
    prepend_bos: bool = True,
    stop_early: bool = True,
    out_device: str | torch.device | None = None,
    out_dtype: torch.dtype | None = None,
) -> Iterator[Activations]:
    """Run ``model`` over ``source`` and yield the activations at ``points`` per batch.

    ``model`` is a :class:`~harness.models.LoadedModel` (its tokenizer is the default) or a
    transformers model. ``out_device``/``out_dtype`` convert the captured tensors (default:
    as produced). Token batching follows :func:`iter_token_batches`.
    """
    if tokenizer is None and isinstance(model, LoadedModel):
        tokenizer = model.tokenizer
    module = _unwrap(model)
    device = _model_device(module)
    batches = iter_token_batches(
        source, tokenizer=tokenizer, batch_size=batch_size, context_length=context_length,
        pack=pack, prepend_bos=prepend_bos,
    )  # fmt: skip
    for batch in batches:
        ids = batch.input_ids.to(device, non_blocking=True)
        mask = batch.attention_mask.to(device, non_blocking=True)
        _, acts = run_with_cache(module, points, ids, attention_mask=mask, stop_early=stop_early)
        if out_device is not None or out_dtype is not None:
            acts = {k: v.to(device=out_device, dtype=out_dtype) for k, v in acts.items()}
        yield Activations(acts, batch.input_ids, batch.attention_mask)


def model_bos_id(model: Any, tokenizer: Any) -> int | None:
    """The BOS id of ``tokenizer``, else of ``model``'s config; None when neither has one."""
    if tokenizer is not None and getattr(tokenizer, "bos_token_id", None) is not None:
        return int(tokenizer.bos_token_id)
    bos = getattr(getattr(_unwrap(model), "config", None), "bos_token_id", None)
    return int(bos) if isinstance(bos, int) else None


def harvest_flat_with_tokens(
    model: Any,
    point: str | HookPoint,
    source: Any,
    *,
    tokenizer: Any = None,
    exclude_bos: bool = True,
    exclude_pad: bool = True,
    bos_token_id: int | None = None,
    **harvest_kwargs: Any,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(activations [n_kept_tokens, d], token ids [n_kept_tokens])`` at one point, batch by batch.

    BOS positions (id from ``bos_token_id``, the tokenizer, or the model config) and padding
    are dropped unless ``exclude_bos``/``exclude_pad`` are False. The token ids stay on the
    CPU; the activations are where :func:`harvest` puts them.
    """
    if tokenizer is None and isinstance(model, LoadedModel):
        tokenizer = model.tokenizer
    bos = bos_token_id if bos_token_id is not None else model_bos_id(model, tokenizer)
    key = point.name if isinstance(point, HookPoint) else point
    if "pattern" in key:
        raise ValueError("harvest_flat is for per-token activations; attention patterns have no token axis.")
    for batch in harvest(model, point, source, tokenizer=tokenizer, **harvest_kwargs):
        keep = batch.keep_mask(exclude_bos=exclude_bos, exclude_pad=exclude_pad, bos_token_id=bos)
        yield batch.flat(key, keep), batch.input_ids[keep.cpu()]


def harvest_flat(
    model: Any,
    point: str | HookPoint,
    source: Any,
    *,
    tokenizer: Any = None,
    exclude_bos: bool = True,
    exclude_pad: bool = True,
    bos_token_id: int | None = None,
    **harvest_kwargs: Any,
) -> Iterator[torch.Tensor]:
    """Yield ``[n_kept_tokens, d]`` activations at one point, batch by batch.

    BOS positions (id from ``bos_token_id``, the tokenizer, or the model config) and padding
    are dropped unless ``exclude_bos``/``exclude_pad`` are False.
    """
    for acts, _ in harvest_flat_with_tokens(
        model, point, source, tokenizer=tokenizer, exclude_bos=exclude_bos, exclude_pad=exclude_pad,
        bos_token_id=bos_token_id, **harvest_kwargs,
    ):  # fmt: skip
        yield acts
