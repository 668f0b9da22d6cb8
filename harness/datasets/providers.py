"""The built-in data providers (registered by :mod:`harness.datasets.builtin`): ``world`` (the embedded generated world, every role, the
default everywhere), ``local`` (jsonl, json, csv, parquet, txt files) and ``hf``
(``datasets.load_dataset``), plus the named presets of :mod:`harness.datasets.presets`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from harness.config import PluginConfig, key_dump
from harness.datasets.base import Dataset
from harness.datasets.roles import (
    ENTITY_SLOT,
    EntityAttributes,
    EntityItem,
    LabelledExample,
    LabelledText,
    QAItem,
    QASet,
    SequenceItem,
    SequenceSet,
    Split,
    TextCorpus,
)
from harness.datasets.tabular import Columns, get_path, open_rows, template_problems
from harness.errors import HarnessError

# --------------------------------------------------------------------------- world


class _WorldRole:
    def __init__(self, world: Any) -> None:
        self.world = world


class WorldCorpus(_WorldRole, TextCorpus):
    def texts(self, start: int = 0) -> Iterator[str]:
        for doc in self.world.documents(start=start):
            yield doc.text


class WorldLabelled(_WorldRole, LabelledText):
    """The world's probing sentences of one class set, pronoun as the spurious label (topic)."""

    def __init__(self, world: Any, class_set: str) -> None:
        super().__init__(world)
        self.name = class_set

    @property
    def labels(self) -> list[str]:
        return list(self.world.topics if self.name == "topic" else self.world.entity_types)

    @property
    def has_spurious(self) -> bool:
        return self.name == "topic"

    def examples(self, split: Split, n: int | None = None, seed: int = 0) -> list[LabelledExample]:
        # the sae suite's historical seeds: train sentences from 1000 + seed, test from 2000 + seed
        base = {"train": 1000, "test": 2000}[split]
        out = self.world.probing_examples(400 if n is None else n, kind=self.name, split="balanced", seed=base + seed)
        pron = ("she", "he")
        return [LabelledExample(e.text, e.label_name, pron[e.spurious] if e.spurious >= 0 else None) for e in out]


class WorldQA(_WorldRole, QASet):
    """Every fact of the world as a question (its prompt) with its answer; tag = its split."""

    def items(self) -> list[QAItem]:
        return [QAItem(f.prompt, (f.answer,), f.split) for f in self.world.facts]


class WorldSequences(_WorldRole, SequenceSet):
    """The world's canaries (label "canary") then its never-seen controls (label "control")."""

    def items(self) -> list[SequenceItem]:
        return ([SequenceItem(text=c.text, label="canary") for c in self.world.canaries]
                + [SequenceItem(text=c.text, label="control") for c in self.world.controls])


class WorldEntityAttributes(_WorldRole, EntityAttributes):
    """The world's relations as RAVEL attributes: each entity (city, person, element) has the value of its
    type's one relation (country, profession, colour), its canonical prompt is the template, and its tag
    is its fact split; entities in the world's fact order (Zipf rank, then the held-out ones)."""

    name = "world"

    def templates(self) -> dict[str, list[str]]:
        return {r.name: [r.prompt.replace("{e}", ENTITY_SLOT)] for r in self.world.relations.values()}

    def entities(self) -> list[EntityItem]:
        return [EntityItem(f.entity, ((f.relation, f.answer),), f.split) for f in self.world.facts]


class WorldDataset(Dataset):
    name = "world"
    description = ("The embedded generated world (harness.zoo.World): its document stream, probing class sets, "
                   "facts as questions, canaries and controls, relations as entity attributes. The default of every "
                   "suite.")
    roles = ("corpus", "labelled", "qa", "sequences", "entity_attributes")

    class Config(PluginConfig):
        seed: int = Field(0, ge=0, description="World seed (the zoo is trained on world 0).")
        class_set: Literal["topic", "entity_type"] = Field(
            "topic", description="labelled role: the class set (topic has the pronoun as its spurious label).")

    @cached_property
    def world(self) -> Any:
        from harness.zoo import World

        return World(seed=self.config.seed)

    def open(self, role: str) -> Any:
        if role == "corpus":
            return WorldCorpus(self.world)
        if role == "labelled":
            return WorldLabelled(self.world, self.config.class_set)
        if role == "qa":
            return WorldQA(self.world)
        if role == "entity_attributes":
            return WorldEntityAttributes(self.world)
        return WorldSequences(self.world)

    def identity(self) -> dict[str, Any]:
        from harness.zoo.world import WORLD_VERSION

        return {"dataset": "world", "world_version": WORLD_VERSION, "config": key_dump(self.config)}

    def describe(self) -> str:
        return f"world(seed={self.config.seed})"


# --------------------------------------------------------------------------- local files

_FORMATS = ("jsonl", "json", "csv", "parquet", "txt")


def _format_of(path: Path, given: str) -> str:
    if given != "auto":
        return given
    suffix = path.suffix.lower().lstrip(".")
    if suffix in _FORMATS:
        return suffix
    if suffix in ("ndjson",):
        return "jsonl"
    raise HarnessError(f'{path}: cannot tell the format from the suffix ".{suffix}". Fix: set config.format to one of '
                       f"{', '.join(_FORMATS)}.")


def read_rows(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    """Row dicts of a local file (txt: one document per non-empty line, column ``text``)."""
    if fmt == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise HarnessError(f"{path}:{n}: not valid JSON ({e.msg}). Fix: one JSON object per line.") from None
                    if not isinstance(row, dict):
                        raise HarnessError(f"{path}:{n}: a JSON {type(row).__name__}, not an object. Fix: one JSON "
                                           'object per line, e.g. {"text": "..."}.')
                    yield row
    elif fmt == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise HarnessError(f'{path}: expected a JSON list of objects (or {{"data": [...]}}). Fix: write the rows '
                               "as a list, or use jsonl.")
        yield from data
    elif fmt == "csv":
        with path.open(encoding="utf-8", newline="") as fh:
            yield from csv.DictReader(fh)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
    else:  # txt
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield {"text": line.rstrip("\n")}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class LocalDataset(Dataset):
    name = "local"
    description = "A local file (jsonl, json, csv, parquet or txt: one document per line) with a column mapping."
    roles = ("corpus", "labelled", "qa", "sequences", "entity_attributes")

    class Config(Columns):
        path: str = Field(description="The file (relative to the working directory, or absolute).")
        format: Literal["auto", "jsonl", "json", "csv", "parquet", "txt"] = Field(
            "auto", description="File format; auto = from the suffix.")
        test_path: str | None = Field(None, description="labelled role: a file of test rows (same format and "
                                                        "columns); None = a seeded test_fraction split of `path`.")

    def _file(self, field: str) -> Path:
        return Path(os.path.expanduser(getattr(self.config, field)))

    def _rows(self, split: str) -> Iterator[dict[str, Any]]:
        field = "test_path" if split == "test" else "path"
        path = self._file(field)
        if not path.is_file():
            raise HarnessError(f"local dataset: config.{field} {path}: no such file. Fix: point {field} at an existing "
                               "file (relative paths are read from the working directory).")
        return read_rows(path, _format_of(path, self.config.format))

    def open(self, role: str) -> Any:
        return open_rows(role, self._rows, self.config, f"local dataset {self.config.path}", name=Path(self.config.path).stem,
                         has_test=self.config.test_path is not None)

    def problems(self, role: str) -> list[str]:
        out = template_problems(self.config) if role == "entity_attributes" else []
        for field in ("path", "test_path") if self.config.test_path else ("path",):
            path = self._file(field)
            if not path.is_file():
                out.append(f"config.{field} {path}: no such file. Fix: point {field} at an existing file.")
                continue
            if path.stat().st_size == 0:
                out.append(f"config.{field} {path}: the file is empty. Fix: point {field} at a file with rows.")
                continue
            try:
                fmt = _format_of(path, self.config.format)
                first = next(read_rows(path, fmt), None)
            except HarnessError as e:
                out.append(str(e))
                continue
            except (OSError, ValueError) as e:
                out.append(f"config.{field} {path}: cannot be read as {self.config.format} ({e}). Fix: check the file "
                           "and config.format.")
                continue
            if first is None:
                out.append(f"config.{field} {path}: no rows. Fix: point {field} at a file with rows.")
                continue
            out.extend(_column_problems(role, self.config, first, str(path)))
        return out

    def identity(self) -> dict[str, Any]:
        cfg = {k: v for k, v in key_dump(self.config).items() if k not in ("path", "test_path")}
        out: dict[str, Any] = {"dataset": "local", "file": Path(self.config.path).name, "config": cfg}
        for field in ("path", "test_path"):
            if getattr(self.config, field) and self._file(field).is_file():
                out[f"{field}_sha256"] = file_sha256(self._file(field))
        return out

    def describe(self) -> str:
        return f"local({Path(self.config.path).name})"


def _columns_for(role: str, cols: Columns) -> list[tuple[str, str]]:
    """(config field, column) pairs a role reads."""
    if role == "corpus":
        return [("text_column", cols.text_column)]
    if role == "labelled":
        out = [("text_column", cols.text_column), ("label_column", cols.label_column)]
        return out + ([("spurious_column", cols.spurious_column)] if cols.spurious_column else [])
    if role == "qa":
        out = [("question_column", cols.question_column), ("answers_column", cols.answers_column)]
        return out + ([("tag_column", cols.tag_column)] if cols.tag_column else [])
    if role == "entity_attributes":
        out = [("entity_column", cols.entity_column)]
        out += ([("attribute_columns", c) for c in cols.attribute_columns] if cols.attribute_columns
                else [("attributes_column", cols.attributes_column)])
        return out
    out = [("tokens_column", cols.tokens_column)] if cols.tokens_column else [("text_column", cols.text_column)]
    return out + ([("sequence_label_column", cols.sequence_label_column)] if cols.sequence_label_column else [])


def _column_problems(role: str, cols: Columns, row: dict[str, Any], where: str) -> list[str]:
    out = []
    for field, column in _columns_for(role, cols):
        try:
            get_path(row, column, field, where)
        except HarnessError as e:
            out.append(str(e))
    return out


# --------------------------------------------------------------------------- Hugging Face datasets


def network_hint() -> str:
    """The offline hint of :mod:`harness.network` (when offline mode is on) plus the local-file way out."""
    from harness.network import network_hint as offline_hint

    hint = offline_hint()
    local = "Without network access, save the data set to a file and use dataset `local`."
    return f"{hint} {local}" if hint else local


class HFDataset(Dataset):
    name = "hf"
    description = "A Hugging Face data set through datasets.load_dataset (path, config name, split, pinned revision)."
    roles = ("corpus", "labelled", "qa", "sequences", "entity_attributes")
    network = True

    class Config(Columns):
        path: str = Field(description="Hub name (e.g. Skylion007/openwebtext) or a local data set folder / script.")
        name: str | None = Field(None, description="The data set's config name (e.g. rc.nocontext); None = default.")
        split: str = Field("train", description="Split read (for labelled data: the training split).")
        test_split: str | None = Field(None, description="labelled role: the test split; None = a seeded "
                                                         "test_fraction split of `split`.")
        revision: str | None = Field(None, description="Pinned revision (commit or tag); None = latest (record it).")
        streaming: bool = Field(True, description="Stream rows instead of downloading the whole split.")
        data_files: str | list[str] | None = Field(None, description="data_files of load_dataset (e.g. a shard).")
        classes: list[str] | None = Field(None, description="labelled role: keep only rows whose label is one of "
                                                            "these (as text); None = all.")

    def _load(self, split: str) -> Any:
        try:
            import datasets
        except ImportError:  # pragma: no cover - datasets ships with lm-eval
            raise HarnessError("dataset hf needs the `datasets` package: pip install datasets.") from None
        c = self.config
        try:
            return datasets.load_dataset(c.path, c.name, split=split, revision=c.revision, streaming=c.streaming,
                                         data_files=c.data_files)
        except ValueError as e:
            if "split" in str(e).lower():
                raise HarnessError(f'hf dataset {c.path}: unknown split "{split}" ({e}). Fix: set config.split / '
                                   "test_split to one of the data set's splits.") from None
            raise HarnessError(f"hf dataset {c.path}: {e}. {network_hint()}") from None
        except Exception as e:  # noqa: BLE001 - connection errors of several libraries
            raise HarnessError(f"hf dataset {c.path} (config name {c.name}, split {split}, revision {c.revision}) "
                               f"could not be loaded: {type(e).__name__}: {str(e)[:300]}. {network_hint()}") from None

    def _rows(self, split: str) -> Iterator[dict[str, Any]]:
        name = self.config.test_split if split == "test" else self.config.split
        ds = self._load(name or self.config.split)
        names = self.config.label_names or self._label_names(ds)
        classes = set(self.config.classes) if self.config.classes else None
        for row in ds:
            if classes is not None:
                value = row.get(self.config.label_column)
                shown = names[value] if names and isinstance(value, int) and 0 <= value < len(names) else str(value)
                if shown not in classes and str(value) not in classes:
                    continue
            yield row

    def _label_names(self, ds: Any) -> list[str] | None:
        feats = getattr(ds, "features", None) or {}
        feat = feats.get(self.config.label_column) if hasattr(feats, "get") else None
        return list(feat.names) if feat is not None and hasattr(feat, "names") else None

    def open(self, role: str) -> Any:
        c = self.config
        name = self.describe() if self.name == "hf" else self.name  # a preset's class set is named by the preset
        return open_rows(role, self._rows, c, f"hf dataset {c.path}", name=name,
                         has_test=c.test_split is not None,
                         label_names=lambda: self._label_names(self._load(c.split)))

    def problems(self, role: str) -> list[str]:
        """Offline mode and not in the local cache: say so at plan time (no download is tried)."""
        from harness.network import offline_vars_set

        out = template_problems(self.config) if role == "entity_attributes" else []
        if not {"HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"} & set(offline_vars_set()) or Path(self.config.path).exists():
            return out
        try:
            import datasets

            datasets.load_dataset_builder(self.config.path, self.config.name, revision=self.config.revision,
                                          data_files=self.config.data_files)
        except Exception as e:  # noqa: BLE001
            return out + [f"hf dataset {self.config.path} is not in the local Hugging Face cache and offline mode is on "
                    f"({type(e).__name__}). {network_hint()}"]
        return out

    def identity(self) -> dict[str, Any]:
        return {"dataset": "hf", "config": key_dump(self.config)}

    def describe(self) -> str:
        return self.config.path.rpartition("/")[2] + (f"/{self.config.name}" if self.config.name else "")
