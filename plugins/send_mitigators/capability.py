"""Capability cost of a hallucination mitigator: the fine-tuned copy vs the model it started from.

A mitigator returns a trained copy that keeps its base model's ``LoadedModel.fingerprint``;
:func:`harness.evaluation.capability.score_capability` then fingerprints the copy's own
weights, so each (mitigator, config, seed) gets its own cache entry while the base model is
scored once for every row and seed of the output folder.
"""

from __future__ import annotations

from typing import Any

from harness.results import MetricValue


def capability_values(cell: Any, model: Any, reference: Any | None) -> tuple[list[MetricValue], dict[str, Any]]:
    """``capability_acc`` / ``capability_delta`` of ``model`` against ``reference`` (None: ``model``
    is the un-fine-tuned model itself, the reference row)."""
    from harness.evaluation.capability import capability_metrics, cell_cache_dir, score_capability

    cfg = cell.suite_config
    result = score_capability(
        model, cfg.capability_tasks, reference=reference, limit=cfg.capability_limit,
        include_paths=cfg.capability_include_paths, cache_dir=cell_cache_dir(cell),
    )  # fmt: skip
    return capability_metrics(cell, result), result.details()
