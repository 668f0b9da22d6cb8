"""The bridge's result cache: one JSON file per (model, intervention, task, settings).

lm-eval's own ``use_cache`` SQLite cache keys on request text only, so it would serve a
result computed for another model or another intervention; it is never used here.
This cache keys on everything that can change a task's numbers (see :class:`CacheKey`)
and writes each entry atomically (temp file + ``os.replace``), so concurrent runs
never see a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from os import PathLike
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.evaluation.types import TaskResult

log = logging.getLogger("harness.evaluation")

#: Bumped when the cache entry layout or the meaning of a key field changes.
CACHE_FORMAT = "harness-lmeval-cache/1"


class CacheKey(BaseModel):
    """Everything that determines one task's result; its canonical JSON hash names the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = CACHE_FORMAT
    model_id: str = Field(description="Caller's model id, or the weight fingerprint when none is given.")
    model_dtype: str = Field(description="dtype of the model's parameters (bf16 and fp32 score differently).")
    intervention_id: str | None = Field(description="Stable id of the intervention applied, or None.")
    task: str = Field(description="Requested lm-eval task (or group/tag) name.")
    task_config_hash: str = Field(description="sha256 of the task's resolved config and local data files.")
    task_version: Any = Field(description="metadata.version the task's YAML declares.")
    limit: int | float | None
    num_fewshot: int | None
    bootstrap_iters: int = Field(description="Changes the stderr values.")
    seed: int
    lm_eval_version: str

    def digest(self) -> str:
        """sha256 of the canonical JSON of every field."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


class CacheEntry(BaseModel):
    """What a cache file holds: the key (for inspection) and the task's result(s)."""

    model_config = ConfigDict(extra="forbid")

    key: CacheKey
    results: dict[str, TaskResult]


class ResultCache:
    """JSON files ``<cache_dir>/<sha256>.json``, one per :class:`CacheKey`."""

    def __init__(self, cache_dir: str | PathLike[str]) -> None:
        self.root = Path(cache_dir)

    def path(self, key: CacheKey) -> Path:
        return self.root / f"{key.digest()}.json"

    def get(self, key: CacheKey) -> dict[str, TaskResult] | None:
        """The stored results for ``key``, or None on a miss.

        An unreadable entry (truncated by a crash of an older writer, edited by hand) is
        reported with a warning and treated as a miss; the next :meth:`put` replaces it.
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = CacheEntry.model_validate_json(path.read_text())
        except (OSError, ValidationError, ValueError) as err:
            log.warning("lm-eval result cache: ignoring unreadable entry %s (%s); recomputing.", path, err)
            return None
        if entry.key != key:  # a sha256 collision or a hand-copied file
            log.warning("lm-eval result cache: entry %s holds another key; recomputing.", path)
            return None
        return entry.results

    def put(self, key: CacheKey, results: dict[str, TaskResult]) -> Path:
        """Store ``results`` under ``key`` atomically; returns the file written."""
        from harness.store import atomic_write_text

        path = self.path(key)
        entry = CacheEntry(key=key, results=results)
        atomic_write_text(path, entry.model_dump_json(indent=2) + "\n")
        return path


def model_fingerprint(model: Any, tokenizer: Any | None = None) -> str:
    """sha256 over the model's class, its weights (:func:`harness.models.model_fingerprint`:
    parameter and buffer names, shapes, dtypes and bytes) and the tokenizer's serialised form
    when given: a model id for models without a name.

    Reads every weight once (~0.3 s for 70M parameters on CPU).
    """
    from harness.models.loading import model_fingerprint as weights_fingerprint

    h = hashlib.sha256()
    h.update(type(model).__name__.encode())
    h.update(weights_fingerprint(model, from_weights=True).encode())
    if tokenizer is not None:
        h.update(tokenizer_fingerprint(tokenizer).encode())
    return "sha256:" + h.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of a tokenizer's full serialisation (fast tokenizers) or its sorted vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()))
    special = json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str)
    return hashlib.sha256((text + special).encode()).hexdigest()
