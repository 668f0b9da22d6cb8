"""A process-level memo for work that is identical across a run's cells.

A suite that evaluates many rows (several SAEs, several seeds) on one model repeats model-side
work that does not depend on the row: harvesting activations, the clean and zero-ablation
forward passes, the activations of a probing set. SAEBench splits that set-up from the per-SAE
work; harness does the same with this memo. A value is kept under a key that names everything
it depends on (the model's identity, the hook point, the data and the budget), so a hit returns
exactly what recomputing would.

The memo lives in one process (a worker of the local executor keeps it across the cells it runs)
and holds at most ``HARNESS_MEMO_MB`` megabytes (default :data:`DEFAULT_MB`; ``0`` turns it off),
dropping the least recently used values first; a value larger than the whole budget is computed
and not kept. Callers must not modify what :meth:`Memo.get` returns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

#: Megabytes the memo holds when ``HARNESS_MEMO_MB`` is unset.
DEFAULT_MB = 1024
ENV = "HARNESS_MEMO_MB"


def budget_bytes() -> int:
    """The byte budget from ``HARNESS_MEMO_MB`` (a clear error for a value that is not a number >= 0)."""
    raw = os.environ.get(ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MB * 2**20
    try:
        mb = float(raw)
    except ValueError:
        mb = -1.0
    if mb < 0:
        raise ValueError(f"{ENV}={raw!r}: expected megabytes, a number >= 0 (0 turns the memo off). "
                         f"Fix: export {ENV}={DEFAULT_MB}, or unset it.")
    return int(mb * 2**20)


def nbytes(value: Any) -> int:
    """Approximate memory of ``value``: tensors and arrays by their buffers, containers and dataclasses
    by their items (other objects count as 64 bytes)."""
    if hasattr(value, "element_size") and hasattr(value, "nelement"):  # torch.Tensor
        return int(value.element_size() * value.nelement())
    if hasattr(value, "nbytes") and hasattr(value, "dtype"):  # numpy array
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values()) + 64
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value) + 64
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value)) + 64
    if hasattr(value, "__dict__"):
        return sum(nbytes(v) for v in vars(value).values()) + 64
    return 64


class Memo:
    """Least-recently-used values by key, within ``max_bytes``; counts its hits and misses."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.used = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value kept under ``key``, else ``compute()`` (kept when it fits the budget)."""
        if key in self._values:
            self._values.move_to_end(key)
            self.hits += 1
            return self._values[key][0]
        self.misses += 1
        value = compute()
        size = nbytes(value)
        if size <= self.max_bytes:
            while self._values and self.used + size > self.max_bytes:
                _, (_, dropped) = self._values.popitem(last=False)
                self.used -= dropped
            self._values[key] = (value, size)
            self.used += size
        return value

    def clear(self) -> None:
        self._values.clear()
        self.used = 0

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._values), "bytes": self.used}


_MEMO: Memo | None = None


def memo() -> Memo:
    """This process's memo (its budget read from ``HARNESS_MEMO_MB`` when first used, or when it changed)."""
    global _MEMO
    limit = budget_bytes()
    if _MEMO is None:
        _MEMO = Memo(limit)
    elif _MEMO.max_bytes != limit:
        _MEMO.max_bytes = limit
        if limit < _MEMO.used:
            _MEMO.clear()
    return _MEMO


def model_key(loaded: Any) -> tuple[Any, ...]:
    """What identifies a loaded model's outputs: its weights' fingerprint (else name, revision, commit and
    path), device and dtype."""
    ident = getattr(loaded, "fingerprint", None) or (
        getattr(loaded, "name", None), getattr(loaded, "revision", None), getattr(loaded, "commit", None),
        str(getattr(loaded, "path", None)),
    )  # fmt: skip
    return (ident, str(getattr(loaded, "device", "")), str(getattr(loaded, "dtype", "")))


def digest(items: Iterable[Any]) -> str:
    """A short content hash of a sequence of texts or token-id lists (for keys over data)."""
    h = hashlib.sha1()
    for item in items:
        h.update(repr(item).encode())
        h.update(b"\x00")
    return h.hexdigest()
