"""The data roles a suite (or metric) can ask for, each a small contract, and their items.

* :class:`TextCorpus` - documents, streamed (SAE training and evaluation, harvesting,
  layer-wise effective features, held-out loss, retain perplexity, fine-tuning text);
* :class:`LabelledText` - text with a label and an optional second (spurious) label
  (sparse probing; SCR / TPP pair the label with a spurious correlate, as SAEBench pairs
  profession with gender in bias_in_bios);
* :class:`QASet` - question, answer aliases and an optional tag (a split or familiarity
  level), as INSIDE uses TriviaQA, CoQA, Natural Questions and SQuAD;
* :class:`SequenceSet` - token or text sequences to label by k-extractability (Pile
  memorisation sets), with an optional given label;
* :class:`EntityAttributes` - entities with a value per attribute and prompt templates per
  attribute (RAVEL's schema as SAEBench ships it: ``entity_attributes`` + ``attribute_to_prompts``),
  for the ``sae_ravel`` metric.

A dataset plugin (:class:`harness.datasets.Dataset`) returns one object per role it
provides; suites only see these contracts. Only the standard library is imported here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "test"]

__all__ = [
    "ROLES",
    "EntityAttributes",
    "EntityItem",
    "LabelledExample",
    "LabelledText",
    "QAItem",
    "QASet",
    "SequenceItem",
    "SequenceSet",
    "Split",
    "TextCorpus",
    "role_class",
]


@dataclass(frozen=True)
class LabelledExample:
    """One text with its label (and, for SCR / TPP, its spurious label)."""

    text: str
    label: str
    spurious: str | None = None


@dataclass(frozen=True)
class QAItem:
    """One question with its accepted answers; ``tag`` is a split or familiarity level (or None)."""

    question: str
    answers: tuple[str, ...]
    tag: str | None = None


@dataclass(frozen=True)
class SequenceItem:
    """One sequence, as text or token ids; ``label`` (e.g. "memorised" / "control") when the data gives it."""

    text: str | None = None
    tokens: tuple[int, ...] | None = None
    label: str | None = None


@dataclass(frozen=True)
class EntityItem:
    """One entity and its attribute values (``(attribute, value)`` pairs; an entity may lack some
    attributes); ``split`` is the data's own split or frequency tag (the world's fact split), or None."""

    entity: str
    values: tuple[tuple[str, str], ...]
    split: str | None = None

    def value(self, attribute: str) -> str | None:
        """The entity's value of ``attribute`` (None = it has none)."""
        return dict(self.values).get(attribute)


#: Where the entity goes in a prompt template (SAEBench's RAVEL templates: ``"%s is a city in the country of"``).
ENTITY_SLOT = "%s"


class TextCorpus(ABC):
    """Documents, streamed."""

    role = "corpus"

    @abstractmethod
    def texts(self, start: int = 0) -> Iterator[str]:
        """The documents from document index ``start`` on (a suite reads train and held-out text
        as two ranges of one stream); may be unbounded."""


class LabelledText(ABC):
    """Labelled texts with a train and a test split."""

    role = "labelled"
    #: The class set's name shown on boards (e.g. "topic", "bias_in_bios_set1").
    name: str

    @property
    @abstractmethod
    def labels(self) -> list[str]:
        """The label names in a fixed order (a suite numbers classes by this order)."""

    @abstractmethod
    def examples(self, split: Split, n: int | None = None, seed: int = 0) -> list[LabelledExample]:
        """At most ``n`` examples of ``split`` (None = all), drawn reproducibly from ``seed``."""

    @property
    def has_spurious(self) -> bool:
        """True when the examples carry a spurious label (needed by SCR / TPP)."""
        return False


class QASet(ABC):
    """Questions with answer aliases."""

    role = "qa"

    @abstractmethod
    def items(self) -> list[QAItem]:
        """Every question, in a fixed order."""


class SequenceSet(ABC):
    """Sequences to label by k-extractability."""

    role = "sequences"

    @abstractmethod
    def items(self) -> list[SequenceItem]:
        """Every sequence, in a fixed order."""


class EntityAttributes(ABC):
    """Entities with attribute values, and prompt templates per attribute (RAVEL): a template holds
    :data:`ENTITY_SLOT` (``%s``) once, where the entity goes; the value is expected to follow the
    prompt after a space (``"Paris is a city in the country of"`` -> ``" France"``)."""

    role = "entity_attributes"
    #: The data set's name shown on boards.
    name: str

    @abstractmethod
    def templates(self) -> dict[str, list[str]]:
        """Attribute -> its prompt templates (at least one each), attributes in a fixed order."""

    @abstractmethod
    def entities(self) -> list[EntityItem]:
        """Every entity, in a fixed order."""

    @property
    def attributes(self) -> list[str]:
        """The attributes with templates, in order."""
        return list(self.templates())


#: role name -> its contract
ROLES: dict[str, type] = {"corpus": TextCorpus, "labelled": LabelledText, "qa": QASet, "sequences": SequenceSet,
                          "entity_attributes": EntityAttributes}


def role_class(role: str) -> type:
    """The contract of ``role``; an unknown role is an error naming the known ones."""
    if role not in ROLES:
        from harness.errors import HarnessError, did_you_mean

        raise HarnessError(f'Unknown data role "{role}".{did_you_mean(role, ROLES)} Roles: {", ".join(ROLES)}.')
    return ROLES[role]
