"""On-disk activation cache: safetensors shards under a key that names everything that matters.

The key hashes the model fingerprint (:func:`~harness.models.model_fingerprint`), the
canonical hook point, the token-source id, the context length, the stored dtype, the
token-batching options and the cache format version - so a cache never serves another
model's, layer's or dataset's activations. An entry is a folder::

    <root>/<key>/meta.json                  the key's fields (checked again on read)
    <root>/<key>/shard_00000.safetensors    {"activations": [n, d], "tokens": [n]}

It is written to ``<root>/.tmp-<key>-<random>/`` and renamed into place only when the
stream has been consumed to the end (atomic on one filesystem); a stream abandoned half
way or an exception leaves nothing behind. Concurrent writers: the first rename wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .harvest import harvest_flat_with_tokens, model_bos_id
from .hookpoints import HookPoint, _unwrap, resolve_hook_point
from .loading import LoadedModel, model_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["FORMAT_VERSION", "ActivationCache", "cached_harvest", "source_fingerprint"]

FORMAT_VERSION = 1


def source_fingerprint(source: Any) -> str | None:
    """A content hash for sources that can be hashed cheaply (a tensor, a list of texts or rows)."""
    import torch

    digest = hashlib.sha256()
    if isinstance(source, torch.Tensor):
        digest.update(f"tensor|{source.dtype}|{tuple(source.shape)}|".encode())
        digest.update(source.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(source, (list, tuple)) and all(isinstance(t, str) for t in source):
        for text in source:
            digest.update(text.encode() + b"\0")
    elif isinstance(source, (list, tuple)) and all(isinstance(r, (list, tuple)) for r in source):
        digest.update(json.dumps(source).encode())
    else:
        return None
    return "sha256:" + digest.hexdigest()[:16]


class ActivationCache:
    """A folder of cached activation streams (see module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @staticmethod
    def key_fields(
        *, fingerprint: str, point: str, source_id: str, context_length: int, dtype: str, **extra: Any
    ) -> dict[str, Any]:
        """The fields a key hashes (all JSON-serialisable)."""
        return {
            "format": FORMAT_VERSION,
            "model": fingerprint,
            "point": point,
            "source": source_id,
            "context_length": int(context_length),
            "dtype": dtype,
            **{k: extra[k] for k in sorted(extra)},
        }

    @staticmethod
    def key(fields: dict[str, Any]) -> str:
        """A short hash of ``fields`` (the folder name)."""
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]

    def path(self, fields: dict[str, Any]) -> Path:
        return self.root / self.key(fields)

    def has(self, fields: dict[str, Any]) -> bool:
        """True when a complete entry for ``fields`` exists."""
        return (self.path(fields) / "meta.json").is_file()

    def read(self, fields: dict[str, Any], *, device: str | torch.device | None = None) -> Iterator[torch.Tensor]:
        """Yield the cached ``[n, d]`` activations shard by shard."""
        from safetensors.torch import load_file

        folder = self.path(fields)
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("fields") != json.loads(json.dumps(fields)):
            raise RuntimeError(f"Activation cache entry {folder} does not match its key; delete the folder.")
        for i in range(int(meta["n_shards"])):
            shard = load_file(str(folder / f"shard_{i:05d}.safetensors"), device=str(device or "cpu"))
            yield shard["activations"]

    def write(
        self, fields: dict[str, Any], stream: Iterator[tuple[torch.Tensor, torch.Tensor]], *, shard_tokens: int
    ) -> Iterator[torch.Tensor]:
        """Pass ``(activations [n, d], tokens [n])`` chunks through, writing them as shards.

        The entry appears only after the stream is exhausted; otherwise the temp folder is
        removed.
        """
        import torch
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{self.key(fields)}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        done = False
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        n_shards = n_tokens = 0

        def flush() -> None:
            nonlocal n_shards, pending
            if not pending:
                return
            acts = torch.cat([a for a, _ in pending]).cpu().contiguous()
            toks = torch.cat([t for _, t in pending]).cpu().contiguous()
            save_file({"activations": acts, "tokens": toks}, str(tmp / f"shard_{n_shards:05d}.safetensors"))
            n_shards, pending = n_shards + 1, []

        try:
            for acts, toks in stream:
                pending.append((acts, toks))
                n_tokens += acts.shape[0]
                if sum(a.shape[0] for a, _ in pending) >= shard_tokens:
                    flush()
                yield acts
            flush()
            meta = {"fields": fields, "n_shards": n_shards, "n_tokens": n_tokens}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
            try:
                os.rename(tmp, self.path(fields))
                done = True
            except OSError:  # another writer finished first: keep theirs
                pass
        finally:
            if not done:
                shutil.rmtree(tmp, ignore_errors=True)


def cached_harvest(
    model: Any,
    point: str | HookPoint,
    source: Any,
    *,
    cache_dir: str | os.PathLike[str],
    source_id: str | None = None,
    tokenizer: Any = None,
    context_length: int = 128,
    pack: bool = True,
    prepend_bos: bool = True,
    exclude_bos: bool = True,
    exclude_pad: bool = True,
    out_dtype: torch.dtype | None = None,
    shard_tokens: int = 65536,
    device: str | torch.device | None = None,
    **harvest_kwargs: Any,
) -> Iterator[torch.Tensor]:
    """:func:`~harness.models.harvest_flat` through an :class:`ActivationCache` in ``cache_dir``.

    ``source_id`` names the token source (e.g. ``"zoo-world:v1:train[:20000]"``); it may be
    omitted only for sources hashed by content (a tensor, a list of texts or of id rows).
    On a hit the shards are streamed from disk; on a miss the model is run and the shards
    are written while the activations are yielded. Either way tensors arrive on ``device``
    (default: the model's device) in the same order and chunking-independent content.
    """
    if tokenizer is None and isinstance(model, LoadedModel):
        tokenizer = model.tokenizer
    sid = source_id or source_fingerprint(source)
    if sid is None:
        raise ValueError(
            "cached_harvest needs source_id=... naming the token source (dataset, split, order), because "
            f"a {type(source).__name__} cannot be hashed by content; e.g. source_id='my-corpus:v1:train'."
        )
    module = _unwrap(model)
    hp = resolve_hook_point(module, point)
    dtype = out_dtype or next(module.parameters()).dtype
    fields = ActivationCache.key_fields(
        fingerprint=model_fingerprint(model), point=hp.name, source_id=sid, context_length=context_length,
        dtype=str(dtype).removeprefix("torch."), pack=pack, prepend_bos=prepend_bos,
        exclude_bos=exclude_bos, exclude_pad=exclude_pad,
    )  # fmt: skip
    cache = ActivationCache(cache_dir)
    if cache.has(fields):
        yield from cache.read(fields, device=device or next(module.parameters()).device)
        return
    bos = model_bos_id(model, tokenizer)

    def stream() -> Iterator[tuple[Any, Any]]:
        for acts, toks in harvest_flat_with_tokens(
            model, hp, source, tokenizer=tokenizer, exclude_bos=exclude_bos, exclude_pad=exclude_pad,
            bos_token_id=bos, context_length=context_length, pack=pack, prepend_bos=prepend_bos,
            out_dtype=out_dtype, **harvest_kwargs,
        ):  # fmt: skip
            yield (acts if device is None else acts.to(device)), toks

    yield from cache.write(fields, stream(), shard_tokens=shard_tokens)
