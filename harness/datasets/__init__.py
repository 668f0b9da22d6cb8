"""Datasets as plugins: every suite reads its data by role, the generated world by default.

Roles (:mod:`harness.datasets.roles`), each a small contract:

* ``"corpus"`` -> :class:`TextCorpus`: ``texts(start=0)`` streams documents from index ``start``;
* ``"labelled"`` -> :class:`LabelledText`: ``examples(split, n=None, seed=0)`` gives
  :class:`LabelledExample` (``text``, ``label``, ``spurious``) of ``"train"`` / ``"test"``;
  ``labels`` (fixed order), ``name`` (the class set's name on boards), ``has_spurious``;
* ``"qa"`` -> :class:`QASet`: ``items()`` gives :class:`QAItem` (``question``, ``answers``, ``tag``);
* ``"sequences"`` -> :class:`SequenceSet`: ``items()`` gives :class:`SequenceItem`
  (``text`` or ``tokens``, ``label``);
* ``"entity_attributes"`` -> :class:`EntityAttributes`: ``templates()`` (attribute -> prompt
  templates with ``%s`` for the entity) and ``entities()`` giving :class:`EntityItem`
  (``entity``, ``values``, ``split``): RAVEL's data, for ``sae_ravel``.

Providers (plugin kind ``dataset``, hook ``register_datasets``, base :class:`Dataset`):
``world`` (every role; the default), ``local`` (jsonl, json, csv, parquet, txt with a column
mapping), ``hf`` (``datasets.load_dataset``) and presets of SAEBench's and INSIDE's data sets
(:mod:`harness.datasets.presets`). ``harness datasets`` lists them.

A config names data with a :class:`DatasetRef` field made by :func:`dataset_field`;
in a cell, ``cell.data(cfg.corpus, "corpus")`` (or :func:`open_role`) opens it. The core
checks data fields at plan time and keys cells by the data's identity (:mod:`harness.datasets.ref`).
The world's role objects carry ``.world`` (the :class:`harness.zoo.World`) for world-only extras;
:func:`is_world` tells whether a ref is the world.
"""

from __future__ import annotations

from harness.datasets.base import Dataset
from harness.datasets.ref import (
    DatasetRef,
    dataset_field,
    dataset_fields,
    dataset_identities,
    dataset_problems,
    is_world,
    key_dump,
    open_dataset,
    open_role,
)
from harness.datasets.roles import (
    ROLES,
    EntityAttributes,
    EntityItem,
    LabelledExample,
    LabelledText,
    QAItem,
    QASet,
    SequenceItem,
    SequenceSet,
    TextCorpus,
)

__all__ = [
    "ROLES",
    "Dataset",
    "DatasetRef",
    "EntityAttributes",
    "EntityItem",
    "LabelledExample",
    "LabelledText",
    "QAItem",
    "QASet",
    "SequenceItem",
    "SequenceSet",
    "TextCorpus",
    "dataset_field",
    "dataset_fields",
    "dataset_identities",
    "dataset_problems",
    "is_world",
    "key_dump",
    "open_dataset",
    "open_role",
]
