"""Typed results of the lm-eval bridge (pydantic, JSON round-trippable)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TaskResult(BaseModel):
    """lm-eval's numbers for one task (or group) and what identifies them."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="lm-eval task or group name.")
    metrics: dict[str, float | None] = Field(
        description=(
            'Metric -> value, as lm-eval reports them: "acc", "acc_stderr", "acc_norm", '
            '"acc_norm_stderr", ... (filter "none" dropped; other filters kept as "metric,filter"). '
            "A stderr lm-eval did not compute (bootstrap_iters=0) is None."
        )
    )
    higher_is_better: dict[str, bool] = Field(default_factory=dict, description="lm-eval's direction per metric.")
    n_samples: int | None = Field(description="Documents scored (after limit).")
    n_samples_total: int | None = Field(None, description="Documents in the split before limit.")
    num_fewshot: int | None = Field(None, description="Few-shot examples per prompt (lm-eval's n-shot).")
    version: Any = Field(None, description="Task version from lm-eval's results['versions'].")
    config_hash: str = Field(description="sha256 of the resolved task config and local data files.")
    cached: bool = Field(False, description="True when this result was read from the bridge's cache.")

    def get(self, metric: str) -> float | None:
        """A metric's value, e.g. ``result.get("acc")``."""
        return self.metrics.get(metric)


class EvalResult(BaseModel):
    """What :func:`harness.evaluation.evaluate_tasks` returns."""

    model_config = ConfigDict(extra="forbid")

    model_id: str
    intervention_id: str | None
    tasks: dict[str, TaskResult] = Field(description="Task (and group) name -> result.")
    lm_eval_version: str
    limit: int | float | None = None
    num_fewshot: int | None = None
    seed: int = 0
    wall_time_s: float = Field(0.0, description="Seconds spent in this call (near 0 when all cached).")

    def __getitem__(self, task: str) -> TaskResult:
        return self.tasks[task]

    @property
    def versions(self) -> dict[str, Any]:
        """Task -> version (the form run records keep)."""
        return {name: r.version for name, r in self.tasks.items()}

    @property
    def all_cached(self) -> bool:
        """True when no task had to be run."""
        return all(r.cached for r in self.tasks.values())


def parse_metrics(raw: dict[str, Any]) -> dict[str, float | None]:
    """lm-eval's ``results[task]`` block -> {metric: value}; ``"N/A"`` stderrs -> None."""
    out: dict[str, float | None] = {}
    for key, value in raw.items():
        if "," not in key:  # "alias", "name", "sample_len", ...
            continue
        metric, filt = key.split(",", 1)
        name = metric if filt == "none" else key
        if isinstance(value, bool) or not isinstance(value, int | float):
            out[name] = None
        else:
            out[name] = float(value) if math.isfinite(value) else None
    return out
