"""Local lm-eval task folders in suite configs: the field type, `--tasks-dir`, and their cell-key identity.

A suite config field of type :data:`TaskFolders` lists folders of lm-eval task YAMLs (and
their data) that the suite's lm-eval runs include (``TaskManager(include_path=...)``). Such
fields are found by type, so the core can treat them alike in every suite:

- ``harness run --tasks-dir DIR`` (repeatable) appends ``DIR`` to every ``TaskFolders``
  field of every planned suite (:func:`with_task_dirs`): the lm_eval and scaling suites'
  ``include_paths``, the capability check's ``capability_include_paths`` (sae, unlearning,
  hallucination).
- The cell key carries, besides the folder names in ``suite_config``, a content hash of each
  folder (:func:`folder_digest`: every file's relative path and bytes), in
  ``CellKey.task_dirs``; so a changed task YAML or data file recomputes the cell, and a
  config without folders keeps the key it always had (the field is omitted when empty).

Only ``hashlib`` / ``pathlib`` / pydantic are imported here: planning stays light.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from harness.errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from harness.config import RunSpec
    from harness.plugins import Registries

__all__ = [
    "TaskFolders",
    "config_task_dirs",
    "folder_digest",
    "task_folder_fields",
    "task_dirs_identity",
    "task_folders_field",
    "with_task_dirs",
]


class _TaskFoldersMarker:
    """Marks a ``list[str]`` config field as local lm-eval task folders (see :data:`TaskFolders`)."""

    def __repr__(self) -> str:
        return "TaskFolders"


_MARKER = _TaskFoldersMarker()
#: Type of a config field listing local lm-eval task folders (found by :func:`task_folder_fields`).
TaskFolders = Annotated[list[str], _MARKER]


def _empty(value: Any) -> bool:
    return not value


def task_folders_field(description: str) -> Any:
    """A :data:`TaskFolders` field defaulting to ``[]`` that is left out of the config's dump
    while empty: adding it to a suite's config keeps the suite's existing cell keys."""
    return Field(default_factory=list, description=description, exclude_if=_empty)


def task_folder_fields(config_cls: type[Any]) -> list[str]:
    """Names of the :data:`TaskFolders` fields of a pydantic config class, in declaration order."""
    fields = getattr(config_cls, "model_fields", {})
    return [name for name, info in fields.items() if any(m is _MARKER for m in info.metadata)]


def config_task_dirs(config: Any) -> list[str]:
    """Every folder a config's :data:`TaskFolders` fields name (first occurrence kept)."""
    out: list[str] = []
    for name in task_folder_fields(type(config)):
        for folder in getattr(config, name) or []:
            if folder not in out:
                out.append(folder)
    return out


#: Not part of a task folder's identity: caches Python and editors write next to the files.
_SKIPPED_PARTS = frozenset({"__pycache__", ".ipynb_checkpoints"})


def folder_digest(folder: str | Path, at: str = "lm-eval task folder") -> str:
    """``sha256:<hex>`` over every file under ``folder`` (relative path and bytes, sorted by
    path; hidden files and ``__pycache__`` skipped). Raises SpecError naming ``at`` for a
    missing folder."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SpecError(f"{at}: no folder {str(folder)!r}. Fix: give folders that hold lm-eval task YAML files "
                        "(and their data).")
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part in _SKIPPED_PARTS for part in rel.parts):
            continue
        h.update(rel.as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return "sha256:" + h.hexdigest()


def task_dirs_identity(config: Any, at: str = "suite config") -> dict[str, str]:
    """``{folder as given: folder_digest}`` for the folders a suite config names ({} for none);
    a missing folder raises SpecError naming ``at`` and the field."""
    out: dict[str, str] = {}
    for name in task_folder_fields(type(config)):
        for folder in getattr(config, name) or []:
            if folder not in out:
                out[folder] = folder_digest(folder, at=f"{at}.{name}")
    return out


def with_task_dirs(spec: RunSpec, registries: Registries, dirs: Sequence[str]) -> RunSpec:
    """``spec`` with ``dirs`` appended to every :data:`TaskFolders` field of every suite it plans
    (every registered suite when it names none); suites without such a field are unchanged."""
    from harness.config import ComponentSpec

    if not dirs:
        return spec
    missing = [d for d in dirs if not Path(d).expanduser().is_dir()]
    if missing:
        raise SpecError("; ".join(f"--tasks-dir {d}: no such folder" for d in missing)
                        + ". Fix: pass folders that hold lm-eval task YAML files.")
    suites = spec.suites or [ComponentSpec(name=n) for n in registries.suites.names()]
    out = []
    for s in suites:
        fields = task_folder_fields(registries.suites.get(s.name).Config)
        if not fields:
            out.append(s)
            continue
        config = dict(s.config)
        for name in fields:
            current = config.get(name) or []
            if isinstance(current, list):  # anything else: the suite's config validation names it
                config[name] = _extend(current, dirs)
        out.append(s.model_copy(update={"config": config}))
    return spec.model_copy(update={"suites": out})


def _extend(folders: Iterable[str], more: Iterable[str]) -> list[str]:
    out = [str(f) for f in folders]
    for d in more:
        if str(d) not in out:
            out.append(str(d))
    return out
