"""The contract between the unlearning suite and every unlearning method, and pooled activations.

``fit(model, forget, retain, *, seed)`` of an :class:`~harness.protocols.UnlearningMethod`
(third-party ones included) receives

- ``forget``: an :class:`UnlearningData` whose ``labels`` are 1 for memorised sequences (the
  content to erase) and 0 for non-memorised ones of the same kind (the contrast a probe needs);
- ``retain``: an :class:`UnlearningData` of ordinary text (labels all 0) to preserve.

:func:`pooled_activations` is what the probes and the probe-based edits read (pooled over
positions as named by :data:`Pooling`) at the hook kinds named by :data:`Hook`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

#: Pooling over positions of the probes and the probe-based edits (see :func:`pooled_activations`).
Pooling = Literal["mean", "last", "max", "suffix_mean", "last_prefix"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
#: Hook kind probed / edited at every depth (see :func:`harness.unlearning.erasure.hook_points`).
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
