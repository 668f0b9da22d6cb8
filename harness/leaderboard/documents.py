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
    seed_sd: float | None = Field(None, description="Between-seed sample standard deviation (n_seeds > 1), the "
                                                    "spread a reseed gives; stderr also counts within-cell error.")
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
    descriptive: bool = Field(
        False, description="A descriptive quantity (Metric.descriptive): shown, never ranked, never in win rates."
    )


class RowDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int | None
    tied: bool = Field(description="True when the board's tie test (LeaderboardDoc.tie_test) finds no difference "
                       "to a neighbour: the rank is shared.")
    label: str
    method: str | None
    method_config: dict[str, Any] | None
    model: str
    seeds: list[int]
    status: Literal["ok", "partial", "failed"]
    failures: list[str]
    win_rate: float | None = Field(
        description="Mean head-to-head win rate across the scored (non-descriptive) metrics (ties = half)."
    )
    values: dict[str, ValueDoc]
    provenance: dict[str, Any]
    reference: bool = Field(
        False, description="The unmodified model shown as a reference only (Suite.rank_reference False): "
        "rank and win rate None, not an opponent in win rates."
    )
    notes: list[str] = Field(
        default_factory=list, description="The records' notes (SuiteOutput.notes, e.g. why a value is undefined), "
        "prefixed with their seed."
    )


class MDDDoc(BaseModel):
    """Minimum detectable difference of a board's primary metric."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(description="The column (the board's primary metric).")
    value: float = Field(description="(z_0.975 + z_0.8) x se_diff: detected at 80% power, two-sided 5%.")
    se_diff: float = Field(description="Standard error of a difference between two rows (see basis).")
    basis: Literal["paired", "stderr"] = Field(
        description="paired: median over row pairs sharing >= 2 seeds of the paired test's standard error; "
        "stderr: sqrt(2) x the median standard error of the ranked rows' values."
    )
    n_seeds: int = Field(description="Most seeds behind one row's value of the metric.")
    definition: str = Field(description="The definition in words.")


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
    tie_test: str | None = Field(
        None, description="The test that decided the shared ranks (=) and the ties in win rates on this board."
    )
    mdd: MDDDoc | None = Field(None, description="Minimum detectable difference of the primary metric.")
    plots: dict[str, str] = Field(default_factory=dict, description="Plot name -> path relative to the site.")
    summary: str | None = Field(
        None, description="Markdown of the suite's results across cells (Suite.summarize), if it has any."
    )
