"""Rows with named columns -> the data roles: the shared half of the ``local`` and ``hf`` providers.

A provider supplies a function returning an iterator of row dicts (for a split) and a
:class:`Columns` config saying which column is what; :func:`open_rows` returns the role
object. Column names may be dotted paths into nested values (``answer.aliases`` for
TriviaQA, ``answers.text`` for SQuAD). Bad data is a :class:`HarnessError` that names the
column field and the fix.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import Field

from harness.config import PluginConfig, key_neutral
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
from harness.errors import HarnessError

Rows = Callable[[str], Iterator[dict[str, Any]]]
"""``rows(split)`` -> row dicts of ``split`` ("train" or "test")."""


class Columns(PluginConfig):
    """Which column holds what (dotted paths reach into nested values)."""

    text_column: str = Field("text", description="Text of a document / labelled example / sequence.")
    label_column: str = Field("label", description="Label of a labelled example (LabelledText).")
    spurious_column: str | None = Field(None, description="Second label (the spurious correlate of SCR / TPP, e.g. "
                                                          "gender in bias_in_bios); None = none.")
    label_names: list[str] | None = Field(None, description="Names of integer labels in order (0 -> first); None = "
                                                            "the data set's own names, or the values as text.")
    question_column: str = Field("question", description="Question of a QA item.")
    answers_column: str = Field("answers", description="Accepted answers of a QA item: a list of strings or one string.")
    tag_column: str | None = Field(None, description="Split / familiarity tag of a QA item; None = untagged.")
    tokens_column: str | None = Field(None, description="Token ids of a sequence (instead of its text); None = "
                                                        "use text_column.")
    sequence_label_column: str | None = Field(None, description="Given label of a sequence (e.g. memorised / control).")
    # entity_attributes role (RAVEL; added after the cell keys of local / hf data were fixed, so key-neutral)
    entity_column: str = Field("entity", json_schema_extra=key_neutral(),
                               description="entity_attributes role: the entity's name (e.g. a city).")
    attributes_column: str = Field(
        "attributes", json_schema_extra=key_neutral(),
        description="entity_attributes role: a mapping attribute -> value per row (SAEBench's entity_attributes "
        "JSON, one entity a row); unused when attribute_columns is set.")
    attribute_columns: list[str] | None = Field(
        None, json_schema_extra=key_neutral(),
        description="entity_attributes role: flat columns holding the values, each named by its attribute (a csv); "
        "None = read attributes_column.")
    templates: dict[str, list[str]] | None = Field(
        None, json_schema_extra=key_neutral(),
        description="entity_attributes role (required there): attribute -> prompt templates, each with one '%s' "
        "where the entity goes (SAEBench's attribute_to_prompts), e.g. {country: ['%s is a city in the country "
        "of']}; the value follows the prompt after a space.")
    limit: int | None = Field(None, ge=1, description="Read at most this many rows; None = all.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="LabelledText without a test split: this fraction of "
                                                              "the rows (a seeded split) is the test split.")


def get_path(row: dict[str, Any], path: str, field: str, where: str) -> Any:
    """``row[path]`` following dots; a missing column names ``field`` and the row's columns."""
    value: Any = row
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            cols = ", ".join(sorted(map(str, row))) or "(none)"
            raise HarnessError(f'{where}: column "{path}" ({field}) not found; the rows have columns: {cols}. '
                               f"Fix: set config.{field} to one of them.")
    return value


def _take(rows: Iterator[dict[str, Any]], limit: int | None) -> Iterator[dict[str, Any]]:
    return itertools.islice(rows, limit) if limit else rows


class RowsCorpus(TextCorpus):
    def __init__(self, rows: Rows, cols: Columns, where: str) -> None:
        self._rows, self._cols, self._where = rows, cols, where

    def texts(self, start: int = 0) -> Iterator[str]:
        empty = True
        for row in itertools.islice(_take(self._rows("train"), self._cols.limit), start, None):
            text = get_path(row, self._cols.text_column, "text_column", self._where)
            if not isinstance(text, str):
                raise HarnessError(f'{self._where}: column "{self._cols.text_column}" (text_column) holds '
                                   f"{type(text).__name__}, not text. Fix: point text_column at a text column.")
            empty = False
            if text.strip():
                yield text
        if empty and start == 0:
            raise HarnessError(f"{self._where}: no documents. Fix: point the dataset at a non-empty file or split.")


class RowsLabelled(LabelledText):
    def __init__(self, rows: Rows, cols: Columns, where: str, name: str, has_test: bool,
                 names: Callable[[], list[str] | None] = lambda: None) -> None:
        self._rows, self._cols, self._where, self.name = rows, cols, where, name
        self._has_test, self._names = has_test, names
        self._splits: dict[str, list[LabelledExample]] | None = None

    def _label(self, value: Any, field: str, names: list[str] | None) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise HarnessError(f"{self._where}: {field} values must be text or numbers, got {type(value).__name__}. "
                               f"Fix: point config.{field} at a label column.")
        if isinstance(value, int) and names is not None:
            if not 0 <= value < len(names):
                raise HarnessError(f"{self._where}: label {value} in {field} is outside label_names "
                                   f"({len(names)} names). Fix: list a name for every label id.")
            return names[value]
        return str(value)

    def _read(self, split: str) -> list[LabelledExample]:
        c, names = self._cols, self._cols.label_names or self._names()
        out = []
        for row in _take(self._rows(split), c.limit):
            text = get_path(row, c.text_column, "text_column", self._where)
            label = self._label(get_path(row, c.label_column, "label_column", self._where), "label_column", names)
            spur = None
            if c.spurious_column:
                spur = self._label(get_path(row, c.spurious_column, "spurious_column", self._where),
                                   "spurious_column", None)
            out.append(LabelledExample(str(text), label, spur))
        return out

    def _load(self) -> dict[str, list[LabelledExample]]:
        if self._splits is not None:
            return self._splits
        train = self._read("train")
        if not train:
            raise HarnessError(f"{self._where}: no examples. Fix: point the dataset at a non-empty file or split.")
        if self._has_test:
            test = self._read("test")
        else:
            order = list(range(len(train)))
            random.Random(0).shuffle(order)
            n_test = max(1, round(len(train) * self._cols.test_fraction))
            held = set(order[:n_test])
            test = [e for i, e in enumerate(train) if i in held]
            train = [e for i, e in enumerate(train) if i not in held]
        labels = sorted({e.label for e in train})
        if len(labels) < 2:
            raise HarnessError(f'{self._where}: label_column "{self._cols.label_column}" has one class '
                               f"({labels[0] if labels else 'none'}) in the training split; a probe needs at least "
                               "two. Fix: choose a column with two or more labels, or more rows (limit).")
        unseen = sorted({e.label for e in test} - set(labels))
        if unseen:
            raise HarnessError(f"{self._where}: the test split has labels the training split lacks: "
                               f"{', '.join(unseen[:5])}. Fix: use splits with the same label set (or test_fraction).")
        if not test:
            raise HarnessError(f"{self._where}: the test split is empty. Fix: add test rows or raise test_fraction.")
        self._splits = {"train": train, "test": test}
        return self._splits

    @property
    def labels(self) -> list[str]:
        return sorted({e.label for e in self._load()["train"]})

    @property
    def has_spurious(self) -> bool:
        return self._cols.spurious_column is not None

    def examples(self, split: Split, n: int | None = None, seed: int = 0) -> list[LabelledExample]:
        if split not in ("train", "test"):
            raise HarnessError(f'split "{split}": expected "train" or "test".')
        rows = self._load()[split]
        if n is None or n >= len(rows):
            return list(rows)
        return random.Random(seed).sample(rows, n)


class RowsQA(QASet):
    def __init__(self, rows: Rows, cols: Columns, where: str) -> None:
        self._rows, self._cols, self._where = rows, cols, where

    def items(self) -> list[QAItem]:
        c, out = self._cols, []
        for row in _take(self._rows("train"), c.limit):
            q = get_path(row, c.question_column, "question_column", self._where)
            a = get_path(row, c.answers_column, "answers_column", self._where)
            answers = (a,) if isinstance(a, str) else tuple(str(x) for x in a) if isinstance(a, (list, tuple)) else None
            if not answers or not all(s.strip() for s in answers):
                raise HarnessError(f'{self._where}: question "{str(q)[:60]}" has no answer in "{c.answers_column}" '
                                   "(answers_column: a string or a list of strings). Fix: point answers_column at the "
                                   "answers (e.g. answer.aliases for TriviaQA, answers.text for SQuAD).")
            tag = str(get_path(row, c.tag_column, "tag_column", self._where)) if c.tag_column else None
            out.append(QAItem(str(q), answers, tag))
        if not out:
            raise HarnessError(f"{self._where}: no questions. Fix: point the dataset at a non-empty file or split.")
        return out


class RowsSequences(SequenceSet):
    def __init__(self, rows: Rows, cols: Columns, where: str) -> None:
        self._rows, self._cols, self._where = rows, cols, where

    def items(self) -> list[SequenceItem]:
        c, out = self._cols, []
        for row in _take(self._rows("train"), c.limit):
            label = (str(get_path(row, c.sequence_label_column, "sequence_label_column", self._where))
                     if c.sequence_label_column else None)
            if c.tokens_column:
                toks = get_path(row, c.tokens_column, "tokens_column", self._where)
                if not isinstance(toks, (list, tuple)) or not all(isinstance(t, int) for t in toks):
                    raise HarnessError(f'{self._where}: column "{c.tokens_column}" (tokens_column) must hold lists of '
                                       "token ids. Fix: point tokens_column at token ids, or unset it to read text.")
                out.append(SequenceItem(tokens=tuple(toks), label=label))
            else:
                out.append(SequenceItem(text=str(get_path(row, c.text_column, "text_column", self._where)), label=label))
        if not out:
            raise HarnessError(f"{self._where}: no sequences. Fix: point the dataset at a non-empty file or split.")
        return out


def template_problems(cols: Columns) -> list[str]:
    """Problems of ``cols.templates`` for the entity_attributes role (config only: no rows read)."""
    t = cols.templates
    if not t:
        return ['config.templates is not set: the entity_attributes role needs prompt templates per attribute. Fix: '
                "set templates: {attribute: ['%s is a city in the country of', ...], ...} (two attributes or more)."]
    out = []
    for attr, ts in t.items():
        if not ts:
            out.append(f"config.templates.{attr}: no template. Fix: give at least one prompt template.")
        out.extend(f"config.templates.{attr}[{i}]: {tpl!r} holds '{ENTITY_SLOT}' {tpl.count(ENTITY_SLOT)} times, "
                   f"not once. Fix: put one '{ENTITY_SLOT}' where the entity goes."
                   for i, tpl in enumerate(ts) if tpl.count(ENTITY_SLOT) != 1)
    return out


class RowsEntityAttributes(EntityAttributes):
    def __init__(self, rows: Rows, cols: Columns, where: str, name: str) -> None:
        self._rows, self._cols, self._where, self.name = rows, cols, where, name

    def templates(self) -> dict[str, list[str]]:
        problems = template_problems(self._cols)
        if problems:
            raise HarnessError(f"{self._where}: {problems[0]}")
        return {a: list(ts) for a, ts in (self._cols.templates or {}).items()}

    def _values(self, row: dict[str, Any]) -> dict[str, Any]:
        c = self._cols
        if c.attribute_columns:
            return {a: get_path(row, a, "attribute_columns", self._where) for a in c.attribute_columns}
        values = get_path(row, c.attributes_column, "attributes_column", self._where)
        if isinstance(values, str):
            try:  # a csv cell holding SAEBench's JSON mapping
                values = json.loads(values)
            except ValueError:
                pass
        if not isinstance(values, dict):
            raise HarnessError(f'{self._where}: column "{c.attributes_column}" (attributes_column) holds '
                               f"{type(values).__name__}, not a mapping attribute -> value. Fix: write "
                               '{"country": "France", ...} there, or set attribute_columns to the value columns.')
        return values

    def entities(self) -> list[EntityItem]:
        c, attrs, out = self._cols, self.templates(), []
        for row in _take(self._rows("train"), c.limit):
            entity = get_path(row, c.entity_column, "entity_column", self._where)
            if not isinstance(entity, str) or not entity.strip():
                raise HarnessError(f'{self._where}: column "{c.entity_column}" (entity_column) holds {entity!r}, not '
                                   "an entity name. Fix: point entity_column at the entities' names.")
            values = self._values(row)
            pairs = tuple((a, str(values[a])) for a in attrs if values.get(a) not in (None, ""))
            out.append(EntityItem(entity, pairs))
        if not any(e.values for e in out):
            raise HarnessError(f"{self._where}: no entity has a value of the templates' attributes "
                               f"({', '.join(attrs)}). Fix: name the attributes in templates as the data does.")
        return out


def open_rows(role: str, rows: Rows, cols: Columns, where: str, *, name: str, has_test: bool,
              label_names: Callable[[], list[str] | None] = lambda: None) -> Any:
    """The ``role`` object over ``rows``."""
    if role == "corpus":
        return RowsCorpus(rows, cols, where)
    if role == "labelled":
        return RowsLabelled(rows, cols, where, name, has_test, label_names)
    if role == "qa":
        return RowsQA(rows, cols, where)
    if role == "sequences":
        return RowsSequences(rows, cols, where)
    if role == "entity_attributes":
        return RowsEntityAttributes(rows, cols, where, name)
    raise HarnessError(f'Unknown data role "{role}".')
