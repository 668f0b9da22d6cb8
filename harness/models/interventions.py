"""Intervention specs for :func:`harness.models.intervene`: replace, add, project out.

Each spec is a frozen dataclass applied to one activation and returning a new tensor (the
input is never modified in place). Activations are ``[batch, seq, ...]`` except attention
patterns, ``[batch, head, query, key]``:

- ``positions`` selects sequence positions (dim 1; for patterns the query dim 2);
- ``heads`` selects heads (patterns only, dim 1).

A plain callable ``fn(activation) -> tensor | None`` is accepted wherever a spec is
(None means "unchanged", e.g. after recording something).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Add", "Intervention", "ProjectOut", "Replace", "as_function"]

Positions = int | slice | Sequence[int] | None


def _index(ndim: int, *, pattern: bool, positions: Positions, heads: Sequence[int] | None) -> tuple[Any, ...]:
    index: list[Any] = [slice(None)] * ndim
    if positions is not None:
        pos = [positions] if isinstance(positions, int) else positions
        index[2 if pattern else 1] = pos if isinstance(pos, slice) else list(pos)
    if heads is not None:
        if not pattern:
            raise ValueError("`heads=` applies to attention patterns (attn.hook_pattern) only.")
        index[1] = list(heads)
    if sum(isinstance(i, list) for i in index) > 1:  # advanced indexing on two dims would pair them up
        import torch

        grids = [torch.as_tensor(i) if isinstance(i, list) else None for i in index]
        return tuple(_ixgrid(grids, index))
    return tuple(index)


def _ixgrid(grids: list[Any], index: list[Any]) -> list[Any]:
    """Turn several list indices into an open mesh (like numpy.ix_) so they select a block."""
    lists = [i for i, g in enumerate(grids) if g is not None]
    out = list(index)
    for rank, dim in enumerate(lists):
        shape = [1] * len(lists)
        shape[rank] = -1
        out[dim] = grids[dim].reshape(shape)
    return out


@dataclass(frozen=True)
class Replace:
    """Replace the activation by ``value`` (broadcast to its shape) at the selected positions/heads.

    For the attention swap: ``Replace(patterns_of_model_b, heads=[0, 3])`` at
    ``blocks.{i}.attn.hook_pattern`` keeps model A's values and output weights.
    """

    value: Any  #: tensor (or number) broadcastable to the activation
    positions: Positions = None
    heads: Sequence[int] | None = None

    def __call__(self, x: torch.Tensor, *, pattern: bool = False) -> torch.Tensor:
        import torch

        value = torch.as_tensor(self.value, dtype=x.dtype, device=x.device).expand_as(x)
        if self.positions is None and self.heads is None:
            return value.clone()
        out = x.clone()
        idx = _index(x.ndim, pattern=pattern, positions=self.positions, heads=self.heads)
        out[idx] = value[idx]
        return out


@dataclass(frozen=True)
class Add:
    """Add ``scale * vector`` (broadcast over leading dims; e.g. a steering vector ``[d]``)."""

    vector: Any
    scale: float = 1.0
    positions: Positions = None
    heads: Sequence[int] | None = None

    def __call__(self, x: torch.Tensor, *, pattern: bool = False) -> torch.Tensor:
        import torch

        delta = self.scale * torch.as_tensor(self.vector, dtype=x.dtype, device=x.device)
        if self.positions is None and self.heads is None:
            return x + delta
        out = x.clone()
        idx = _index(x.ndim, pattern=pattern, positions=self.positions, heads=self.heads)
        out[idx] = out[idx] + delta.expand_as(x)[idx]
        return out


@dataclass(frozen=True)
class ProjectOut:
    """Remove the span of ``directions`` (``[d]`` or ``[k, d]``, need not be orthonormal).

    ``x <- x - Q Q^T x`` with ``Q`` an orthonormal basis of the directions' span (QR), so the
    result has zero component along every given direction.
    """

    directions: Any
    positions: Positions = None

    def basis(self, like: torch.Tensor) -> torch.Tensor:
        """Orthonormal basis ``[d, k]`` of the directions (float32 math, cast to ``like``)."""
        import torch

        dirs = torch.as_tensor(self.directions, device=like.device, dtype=torch.float32)
        dirs = dirs.reshape(1, -1) if dirs.ndim == 1 else dirs
        if dirs.shape[-1] != like.shape[-1]:
            raise ValueError(f"ProjectOut directions have size {dirs.shape[-1]}, activation has {like.shape[-1]}.")
        q, _ = torch.linalg.qr(dirs.T)
        return q

    def __call__(self, x: torch.Tensor, *, pattern: bool = False) -> torch.Tensor:
        if pattern:
            raise ValueError("ProjectOut does not apply to attention patterns; use Replace or a function.")
        q = self.basis(x)
        xf = x.float()
        projected = (xf - (xf @ q) @ q.T).to(x.dtype)
        if self.positions is None:
            return projected
        out = x.clone()
        idx = _index(x.ndim, pattern=False, positions=self.positions, heads=None)
        out[idx] = projected[idx]
        return out


Intervention = Replace | Add | ProjectOut | Callable[["torch.Tensor"], "torch.Tensor | None"]


def as_function(spec: Intervention, *, pattern: bool) -> Callable[[torch.Tensor], torch.Tensor | None]:
    """A one-argument function applying ``spec`` (specs get told whether this is a pattern)."""
    if isinstance(spec, (Replace, Add, ProjectOut)):
        return lambda x: spec(x, pattern=pattern)
    if callable(spec):
        return spec
    raise TypeError(
        f"An intervention must be Replace, Add, ProjectOut or a callable(tensor) -> tensor | None, "
        f"not {type(spec).__name__}."
    )
