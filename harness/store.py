"""The results store: one immutable JSON record per cell, written atomically.

Layout under the output folder::

    records/<suite>/<key>.json     one RunRecord per cell (key = content hash of the cell)
    artifacts/<key>/...            plots, checkpoints, tables a cell produced

A finished (``ok``) record is never overwritten: it is published with a hard link,
which fails if the file exists, so two concurrent runs cannot both write a cell. A
``failed`` record is replaced when the cell is computed again; that read-check-replace
holds an exclusive lock on ``records/<suite>/.locks/<key>.lock`` (``flock``, POSIX), so
two sweeps retrying the same failed cell cannot overwrite the one that succeeded.

A :class:`Store` parses and validates each record file once: it remembers the record by
path, keyed by the file's inode, modification time and size, so asking again costs one
``stat`` and a file published or replaced since (a new inode) is read afresh.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from harness.errors import StoreError
from harness.results import RunRecord


def atomic_write_text(path: Path, text: str, *, overwrite: bool = True) -> bool:
    """Write ``text`` to ``path`` via a temp file in the same folder and a rename.

    With ``overwrite=False`` an existing file is left alone and False is returned.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Store:
    """Run records under one output folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        #: path -> ((inode, mtime_ns, size) when read, the record read); see :meth:`_load`.
        self._known: dict[Path, tuple[tuple[int, int, int], RunRecord]] = {}

    def record_path(self, suite: str, key: str) -> Path:
        return self.root / "records" / suite / f"{key}.json"

    def artifact_dir(self, key: str) -> Path:
        return self.root / "artifacts" / key

    def _load(self, path: Path) -> RunRecord | None:
        """The record at ``path`` (None if there is none), parsed once per version of the file.

        The file's (inode, mtime, size) is taken before it is read, so a file replaced while
        being read is read again next time, never served stale.
        """
        try:
            st = path.stat()
        except FileNotFoundError:
            self._known.pop(path, None)
            return None
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
        known = self._known.get(path)
        if known is not None and known[0] == version:
            return known[1]
        rec = self._read(path)
        self._known[path] = (version, rec)
        return rec

    def get(self, suite: str, key: str) -> RunRecord | None:
        return self._load(self.record_path(suite, key))

    def status(self, suite: str, key: str) -> Literal["ok", "failed"] | None:
        """The recorded status of a cell, or None when it has no record."""
        rec = self.get(suite, key)
        return None if rec is None else rec.status

    def is_done(self, suite: str, key: str) -> bool:
        return self.status(suite, key) == "ok"

    @contextmanager
    def _locked(self, suite: str, key: str) -> Iterator[None]:
        """Exclusive lock of one cell's record across processes (no-op where flock is missing)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        lock = self.root / "records" / suite / ".locks" / f"{key}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def put(self, record: RunRecord) -> bool:
        """Publish a record. Returns False when an ``ok`` record of that cell already exists."""
        path = self.record_path(record.cell.suite, record.key)
        text = record.model_dump_json(indent=2)
        with self._locked(record.cell.suite, record.key):
            existing = self.get(record.cell.suite, record.key)  # under the lock; read again only if changed
            if existing is not None and existing.status == "ok":
                return False
            if existing is not None:  # a failed attempt: replace it
                return atomic_write_text(path, text, overwrite=True)
            return atomic_write_text(path, text, overwrite=False)

    def replace(self, record: RunRecord) -> None:
        """Replace a cell's record (``--force``); the old one is kept under ``.superseded/``."""
        path = self.record_path(record.cell.suite, record.key)
        with self._locked(record.cell.suite, record.key):
            if path.exists():
                stamp = record.provenance.started_at.replace(":", "")
                old = path.parent / ".superseded" / f"{record.key}.{stamp}.json"
                old.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, old)
            atomic_write_text(path, record.model_dump_json(indent=2), overwrite=True)

    def records(self, suite: str | None = None) -> Iterator[RunRecord]:
        """Every readable record (optionally of one suite); unreadable files are reported, never deleted."""
        base = self.root / "records"
        folders = [base / suite] if suite else sorted(p for p in base.glob("*") if p.is_dir())
        for folder in folders:
            for path in sorted(folder.glob("*.json")):
                try:
                    rec = self._load(path)
                except StoreError as e:
                    warnings.warn(str(e), stacklevel=2)
                    continue
                if rec is not None:  # None: moved away since the listing
                    yield rec

    def suites(self) -> list[str]:
        base = self.root / "records"
        return sorted(p.name for p in base.glob("*") if p.is_dir())

    @staticmethod
    def _read(path: Path) -> RunRecord:
        try:
            data = json.loads(path.read_text())
            rec = RunRecord.model_validate(data)
        except (OSError, json.JSONDecodeError, ValidationError) as e:
            raise StoreError(
                f"Run record {path} is unreadable ({type(e).__name__}). It was left in place; "
                "move it away to recompute that cell."
            ) from None
        if rec.key != path.stem or rec.cell.key() != rec.key:
            raise StoreError(
                f"Run record {path} does not match its content hash. It was left in place; "
                "move it away to recompute that cell."
            )
        return rec
