"""The embedded default: a procedurally generated world and a Pythia-style model suite.

Public API (no torch import at package import time)::

    from harness.zoo import World, build_zoo, zoo_info, zoo_model_path, list_zoo_models

    world = World(seed=0)               # facts, canaries, controls, probing_examples(), documents()
    path = zoo_model_path("zoo-160")   # -> folder for AutoModelForCausalLM.from_pretrained
    path = zoo_model_path("zoo-160", "step92")
    rows = zoo_info()                   # sizes, params, tokens, per-task accuracy, canaries

lm-eval task files live in :data:`TASKS_DIR` (``TaskManager(include_path=str(TASKS_DIR))``),
indexed by ``TASKS_DIR / "harness_tasks.json"``. See ``harness/zoo/README.md``.
"""

from __future__ import annotations

from harness.zoo.build import build_zoo
from harness.zoo.info import (
    CHECKPOINTS_DIR,
    ZooModelNotFoundError,
    list_revisions,
    list_zoo_models,
    model_record,
    zoo_info,
    zoo_model_path,
)
from harness.zoo.tasks import TASKS_DIR, load_task_docs, read_index
from harness.zoo.world import WORLD_VERSION, Canary, Document, Fact, ProbeExample, World

__all__ = [
    "CHECKPOINTS_DIR",
    "TASKS_DIR",
    "WORLD_VERSION",
    "Canary",
    "Document",
    "Fact",
    "ProbeExample",
    "World",
    "ZooModelNotFoundError",
    "build_zoo",
    "list_revisions",
    "list_zoo_models",
    "load_task_docs",
    "model_record",
    "read_index",
    "zoo_info",
    "zoo_model_path",
]
