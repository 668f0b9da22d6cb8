"""A shuffling buffer over a stream of activation chunks, for SAE training.

:class:`ActivationBuffer` fills ``buffer_size`` rows, shuffles (seeded), yields batches until
half the buffer is used, refills, reshuffles; its output depends only on the flat activation
stream and the seed, not on how the stream was chunked. :meth:`ActivationBuffer.from_model`
builds one over :func:`~harness.models.harvest_flat` or, with a cache folder,
:func:`~harness.models.cached_harvest` (this module sits above both).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .cache import cached_harvest
from .harvest import harvest_flat
from .hookpoints import HookPoint

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["ActivationBuffer"]


class ActivationBuffer:
    """Shuffling buffer over a stream of ``[n, d]`` activation chunks (for SAE training).

    Fills ``buffer_size`` rows, shuffles them with a generator seeded by ``seed``, yields
    ``[batch_size, d]`` batches until ``refill_fraction`` of the buffer is left, then tops it
    up from the stream and reshuffles. At the end of the stream the rest is yielded (a last
    short batch only if ``drop_last`` is False). Same stream + same seed -> same batches.
    Iterating twice re-iterates ``source`` (a one-shot iterator yields nothing the second time).
    """

    def __init__(
        self,
        source: Iterable[torch.Tensor],
        *,
        buffer_size: int,
        batch_size: int,
        seed: int = 0,
        refill_fraction: float = 0.5,
        drop_last: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        if batch_size < 1 or buffer_size < batch_size:
            raise ValueError(f"need 1 <= batch_size <= buffer_size (got {batch_size}, {buffer_size}).")
        if not 0.0 <= refill_fraction < 1.0:
            raise ValueError(f"refill_fraction must be in [0, 1), got {refill_fraction}.")
        self.source, self.buffer_size, self.batch_size = source, buffer_size, batch_size
        self.seed, self.refill_fraction, self.drop_last, self.device = seed, refill_fraction, drop_last, device

    @classmethod
    def from_model(
        cls,
        model: Any,
        point: str | HookPoint,
        source: Any,
        *,
        buffer_size: int,
        batch_size: int,
        seed: int = 0,
        model_batch_size: int = 8,
        cache_dir: str | None = None,
        source_id: str | None = None,
        **harvest_kwargs: Any,
    ) -> ActivationBuffer:
        """A buffer over :func:`~harness.models.harvest_flat` (or :func:`~harness.models.cached_harvest` when
        ``cache_dir`` is given) of ``model`` at ``point``.

        ``batch_size`` is the buffer's output batch (rows); ``model_batch_size`` the number
        of sequences per forward pass; other keywords go to :func:`~harness.models.harvest_flat`.
        """
        harvest_kwargs["batch_size"] = model_batch_size
        if cache_dir is not None:
            stream: Iterable[torch.Tensor] = _Reiterable(
                lambda: cached_harvest(model, point, source, cache_dir=cache_dir, source_id=source_id, **harvest_kwargs)
            )
        else:
            stream = _Reiterable(lambda: harvest_flat(model, point, source, **harvest_kwargs))
        return cls(stream, buffer_size=buffer_size, batch_size=batch_size, seed=seed)

    def __iter__(self) -> Iterator[torch.Tensor]:
        import torch

        gen = torch.Generator().manual_seed(self.seed)
        chunks = iter(self.source)
        store: torch.Tensor | None = None
        filled = 0
        carry: torch.Tensor | None = None
        exhausted = False
        low = int(self.buffer_size * self.refill_fraction)
        while True:
            while filled < self.buffer_size and not exhausted:  # top up
                if carry is None or carry.shape[0] == 0:
                    carry = next(chunks, None)
                    if carry is None:
                        exhausted = True
                        break
                    carry = carry.reshape(-1, carry.shape[-1]).to(self.device or carry.device)
                if store is None:
                    store = carry.new_empty((self.buffer_size, carry.shape[-1]))
                take = min(self.buffer_size - filled, carry.shape[0])
                store[filled : filled + take] = carry[:take]
                filled += take
                carry = carry[take:]
            if store is None or filled == 0:
                return
            perm = torch.randperm(filled, generator=gen).to(store.device)
            store[:filled] = store[:filled][perm]
            n_batches = filled // self.batch_size
            if not exhausted:  # use the buffer down to `low` rows, but at least one batch per fill
                n_batches = min(n_batches, max(1, (filled - low) // self.batch_size))
            start = 0
            for _ in range(n_batches):
                yield store[start : start + self.batch_size].clone()
                start += self.batch_size
            if exhausted:
                if filled - start > 0 and not self.drop_last:
                    yield store[start:filled].clone()
                return
            store[: filled - start] = store[start:filled].clone()  # keep the unused rows at the front
            filled -= start


class _Reiterable:
    """An iterable that calls ``factory()`` for each new iteration."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def __iter__(self) -> Iterator[Any]:
        return iter(self.factory())
