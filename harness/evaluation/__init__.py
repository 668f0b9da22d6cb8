"""lm-eval bridge: score in-memory HF causal LMs (optionally under an intervention) on
local or standard lm-eval tasks through the real lm-eval, with a model-aware result cache.

Importing this package is cheap; torch, transformers and lm_eval load on first use.
"""

from __future__ import annotations

from harness.evaluation.bridge import NamedIntervention, evaluate_tasks, intervention_id
from harness.evaluation.cache import CacheKey, ResultCache, model_fingerprint, tokenizer_fingerprint
from harness.evaluation.generation import ExactMatchItem, generate_exact_match, normalise_answer
from harness.evaluation.tasks import (
    ZOO_TASKS_DIR,
    LocalTask,
    TaskLoadError,
    UnknownTaskError,
    default_include_paths,
    list_local_tasks,
)
from harness.evaluation.types import EvalResult, TaskResult

__all__ = [
    "ZOO_TASKS_DIR",
    "CacheKey",
    "EvalResult",
    "ExactMatchItem",
    "LocalTask",
    "NamedIntervention",
    "ResultCache",
    "TaskLoadError",
    "TaskResult",
    "UnknownTaskError",
    "default_include_paths",
    "evaluate_tasks",
    "generate_exact_match",
    "intervention_id",
    "list_local_tasks",
    "model_fingerprint",
    "normalise_answer",
    "tokenizer_fingerprint",
]
