"""The published documents of a leaderboard: one :class:`LeaderboardDoc` per suite.

``leaderboards/<suite>.json`` is a :class:`LeaderboardDoc`; its JSON schema is published
next to it (``leaderboards/schema/leaderboard.schema.json``). This module imports nothing
of the harness, so the renderers (Markdown, site) depend on it alone.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

LEADERBOARD_SCHEMA_VERSION = 1
REFERENCE_LABEL = "base model"


class ValueDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mean: float
    stderr: float | None = Field(description="Standard error (over seeds, or within the cell for one seed).")
    ci_low: float | None = Field(description="Lower end of the 95% interval (mean - 1.96 se).")
    ci_high: float | None = Field(description="Upper end of the 95% interval.")
    n_seeds: int
    normalised: float | None = Field(None, description="(mean - chance) / (1 - chance) when a chance level exists.")
    delta_vs_reference: float | None = Field(None, description="mean minus the reference row's mean (same model).")


class ColumnDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="metric or metric[key].")
    metric: str
    key: str | None
    higher_is_better: bool | None = Field(description="From the metric's declaration; None if not registered.")
    unit: str
    chance: float | None = None


class RowDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int | None
    tied: bool = Field(description="True when the 95% interval overlaps a neighbour's: the rank is shared.")
    label: str
    method: str | None
    method_config: dict[str, Any] | None
    model: str
    seeds: list[int]
    status: Literal["ok", "partial", "failed"]
    failures: list[str]
    win_rate: float | None = Field(description="Mean head-to-head win rate across metrics (ties = half).")
    values: dict[str, ValueDoc]
    provenance: dict[str, Any]


class LeaderboardDoc(BaseModel):
    """The published JSON of one suite's leaderboard."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = LEADERBOARD_SCHEMA_VERSION
    suite: str
    suite_version: str | None
    description: str
    primary_metric: str | None
    ranked_within: Literal["model", "all"]
    generated_at: str
    harness_version: str
    columns: list[ColumnDoc]
    rows: list[RowDoc]
    plots: dict[str, str] = Field(default_factory=dict, description="Plot name -> path relative to the site.")
    summary: str | None = Field(
        None, description="Markdown of the suite's results across cells (Suite.summarize), if it has any."
    )
