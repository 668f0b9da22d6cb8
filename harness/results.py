"""Typed results: metric values, a suite's output for one cell, and the run record."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RECORD_SCHEMA_VERSION = 1


class MetricValue(BaseModel):
    """One number produced by a metric (optionally for a sub-key such as a task or class set)."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(description="Registered metric name; its declaration gives direction and unit.")
    key: str | None = Field(None, description="Sub-key, e.g. an lm-eval task or a probing class set.")
    value: float = Field(description="The value (finite).")
    stderr: float | None = Field(None, description="Standard error of the value within the cell, if known.")
    n: int | None = Field(None, description="Number of samples behind the value.")
    chance: float | None = Field(None, description="Chance level of this value (e.g. 1/choices), if one exists.")

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"metric value must be finite, got {v}")
        return v

    @property
    def column(self) -> str:
        return f"{self.metric}[{self.key}]" if self.key else self.metric


class SuiteOutput(BaseModel):
    """What a suite returns for one cell."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[MetricValue] = Field(description="Values of the suite's declared metrics.")
    artifacts: dict[str, str] = Field(
        default_factory=dict, description="Name -> path (relative to the store) of plots, checkpoints, tables."
    )
    details: dict[str, Any] = Field(default_factory=dict, description="Extra JSON-serialisable details.")
    versions: dict[str, str] = Field(
        default_factory=dict, description="Versions of what was scored, e.g. lm-eval task versions."
    )
    notes: list[str] = Field(
        default_factory=list,
        description="Why a value is missing (e.g. an AUROC undefined because every answer is wrong): one "
        "sentence each, naming the column; shown under the board.",
    )


class CellKey(BaseModel):
    """Everything that determines a cell's result; its canonical JSON hash is the record key.

    (A cell is one (suite, method or baseline, model, seed); :class:`harness.cell.PlannedCell`
    is a key plus the validated objects to compute it; :class:`harness.context.CellContext` is
    what a suite receives while computing it.)"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    suite_version: str
    suite_config: dict[str, Any]
    method: str | None = Field(description="Method plugin name; None = the unmodified model (baseline row).")
    method_kind: str | None
    method_config: dict[str, Any] | None
    model: str = Field(description="Model reference: source:name[@revision].")
    model_fingerprint: str = Field(description="Fingerprint given by the model source (commit or weight hash).")
    seed: int
    dtype: str
    extra_metrics: list[str] = Field(default_factory=list, description="Model-scope metrics added by the spec.")
    plugins: dict[str, str] = Field(
        default_factory=dict,
        description="Versions of the third-party plugins that take part (distribution -> version; a one-file "
        "plugin -> sha256 of its file): a new version recomputes the cell. Built-ins are covered by the suite "
        "version, as before.",
    )

    datasets: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Identity of every data field not at its default (field path -> provider, path, revision, "
        "content hash; harness.datasets.ref): changed data recomputes the cell. Default (world) data is covered "
        "by the suite version, as before.",
    )

    task_dirs: dict[str, str] = Field(
        default_factory=dict,
        description="Local lm-eval task folders the suite config names (include paths, `harness run --tasks-dir`) "
        "-> sha256 of their files: a changed task YAML or data file recomputes the cell.",
    )

    def key(self) -> str:
        data = self.model_dump(mode="json")
        for empty in ("plugins", "datasets", "task_dirs"):  # cells without them keep the keys they always had
            if not data[empty]:
                data.pop(empty)
        return content_hash(data)


class Provenance(BaseModel):
    """Where and how a record was produced (README.md, section "What `harness run` does")."""

    model_config = ConfigDict(extra="allow")

    harness_version: str
    git_hash: str | None
    packages: dict[str, str]
    device: str
    python: str
    platform: str
    started_at: str
    finished_at: str
    wall_time_s: float


class RunRecord(BaseModel):
    """One immutable JSON file per cell."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = RECORD_SCHEMA_VERSION
    key: str = Field(description="sha256 of the cell's canonical JSON.")
    cell: CellKey
    label: str = Field(description="Row label for leaderboards.")
    status: Literal["ok", "failed"]
    output: SuiteOutput | None = None
    error: dict[str, str] | None = Field(None, description="type, message, traceback of a failed cell.")
    provenance: Provenance


def content_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()
