"""Capability cost of a method: lm-eval zero-shot accuracy with and without it, and the delta.

:func:`score_capability` is the one place a suite turns lm-eval scores into capability
deltas. It scores a model on lm-eval tasks through :func:`harness.evaluation.evaluate_tasks`
twice - with the method (an intervention applied to the model, or a modified copy of the
model) and without it (the same model, or a given reference model) - and returns per-task
accuracy, the delta in percentage points and the mean delta, each with a standard error.

Standard errors: the bridge runs lm-eval without per-sample logs, so a delta's stderr is the
combined stderr of two independent proportions, ``100 * sqrt(se_method^2 + se_reference^2)``
(lm-eval's ``acc_stderr`` of each). The two runs score the same items, so the true (paired)
stderr is smaller where the runs agree: these intervals are conservative. A row without a
method (no intervention, no other model) is its own reference: delta 0 with stderr 0.

Both runs go through the bridge's result cache (:class:`harness.evaluation.cache.ResultCache`)
when ``cache_dir`` is given: its key is the model fingerprint, the intervention id (None for
none) and the task config (name, config hash, version, limit, num_fewshot, seed), so the
reference model is scored once for all rows and seeds of a run (:func:`cell_cache_dir`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.config import PluginConfig
from harness.evaluation.folders import TaskFolders
from harness.evaluation.tasks import StrPath
from harness.protocols import ReportedMetric

__all__ = [
    "CAPABILITY_METRICS",
    "CapabilityAcc",
    "CapabilityDelta",
    "CapabilityResult",
    "TaskCapability",
    "ZOO_CAPABILITY_TASKS",
    "capability_metrics",
    "capability_task_problems",
    "cell_cache_dir",
    "include_paths_with_zoo",
    "score_capability",
]

#: The zoo's zero-shot tasks (harness/zoo/tasks) the suites score by default.
ZOO_CAPABILITY_TASKS = (
    "zoo_agreement", "zoo_arithmetic", "zoo_facts_frequent", "zoo_facts_rare",
    "zoo_facts_heldout", "zoo_first_letter", "zoo_sequence",
)  # fmt: skip

TASKS_HELP = (
    "lm-eval tasks of the capability check (zero-shot accuracy with vs without the method): zoo tasks, lm-eval "
    "task names, or tasks in `capability_include_paths`; [] = skip it."
)
LIMIT_HELP = "At most this many documents per capability task; None = all."
INCLUDE_HELP = (
    "Extra folders of lm-eval task YAMLs for `capability_tasks` (the zoo's tasks are always available); "
    "`harness run --tasks-dir DIR` appends to it. Each folder's file contents enter the cell key."
)


class CapabilityConfig(PluginConfig):
    """The capability check's config fields, for a suite's ``Config`` to inherit (a suite with
    other defaults re-declares the field); :meth:`capability_problems` is its plan-time check."""

    capability_tasks: list[str] = Field(list(ZOO_CAPABILITY_TASKS), description=TASKS_HELP)
    capability_limit: int | None = Field(100, ge=1, description=LIMIT_HELP)
    capability_include_paths: TaskFolders = Field([], description=INCLUDE_HELP)

    def capability_problems(self) -> list[str]:
        return capability_task_problems("capability_tasks", self.capability_tasks, self.capability_include_paths,
                                        "capability_include_paths")


class TaskCapability(BaseModel):
    """One task: the method's accuracy, the reference's, and the delta (percentage points)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    acc: float = Field(description="Accuracy with the method (fraction).")
    acc_stderr: float | None = Field(description="lm-eval's stderr of `acc`.")
    reference_acc: float = Field(description="Accuracy of the reference (the model without the method).")
    reference_stderr: float | None
    n: int | None = Field(description="Documents scored (after the limit).")
    delta: float = Field(description="100 * (acc - reference_acc): percentage points.")
    delta_stderr: float | None = Field(description="Combined stderr of the delta in pp (0 for the reference itself).")


class CapabilityResult(BaseModel):
    """What :func:`score_capability` returns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_id: str
    reference_id: str
    intervention_id: str | None
    tasks: dict[str, TaskCapability]
    mean_delta: float = Field(description="Unweighted mean of the per-task deltas (pp).")
    mean_delta_stderr: float | None = Field(description="sqrt(sum delta_stderr^2) / tasks.")
    mean_acc: float = Field(description="Unweighted mean accuracy over the tasks, with the method.")
    mean_acc_stderr: float | None = Field(description="sqrt(sum acc_stderr^2) / tasks.")
    cached: bool = Field(description="True when no lm-eval run was needed (every result came from the cache).")

    def details(self) -> dict[str, Any]:
        """A compact, JSON-friendly summary for a record's details."""
        return {
            "model_id": self.model_id, "reference_id": self.reference_id, "intervention_id": self.intervention_id,
            "acc": {t: r.acc for t, r in self.tasks.items()},
            "reference_acc": {t: r.reference_acc for t, r in self.tasks.items()},
            "delta_pp": {t: r.delta for t, r in self.tasks.items()},
            "mean_delta_pp": self.mean_delta, "n": {t: r.n for t, r in self.tasks.items()},
            "stderr": "combined independent binomial (conservative; lm-eval per-sample results are not logged)",
        }  # fmt: skip


def include_paths_with_zoo(include_paths: Iterable[StrPath] = ()) -> list[Path]:
    """The zoo's task folder (when present) followed by ``include_paths``."""
    from harness.evaluation.tasks import default_include_paths

    out = list(default_include_paths())
    for p in include_paths:
        path = Path(p).expanduser().resolve()
        if path not in out:
            out.append(path)
    return out


def _unpack(model: Any, tokenizer: Any) -> tuple[Any, Any, str | None]:
    """(nn.Module, tokenizer, fingerprint or None) from a LoadedModel or a bare model."""
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(model, "require_tokenizer"):  # harness LoadedModel
        return inner, tokenizer or model.require_tokenizer(), getattr(model, "fingerprint", None)
    if tokenizer is None:
        raise TypeError("score_capability: a bare model needs `tokenizer=`; or pass a harness LoadedModel.")
    return model, tokenizer, None


def _acc(result: Any, task: str) -> tuple[float, float | None, int | None]:
    from harness.errors import HarnessError
    from harness.stats import binomial_stderr

    r = result.tasks[task]
    acc = r.get("acc")
    if acc is None:
        raise HarnessError(
            f'capability task "{task}" reports no "acc" metric (it has {sorted(r.metrics)}): capability deltas need '
            "a multiple-choice (loglikelihood) task. Fix: remove it from capability_tasks."
        )
    se = r.get("acc_stderr")
    if se is None and r.n_samples:
        se = binomial_stderr(acc, r.n_samples)
    return float(acc), se, r.n_samples


def score_capability(
    model: Any,
    tasks: Sequence[str],
    *,
    tokenizer: Any = None,
    intervention: Any = None,
    reference: Any = None,
    model_id: str | None = None,
    reference_id: str | None = None,
    limit: int | None = None,
    include_paths: Iterable[StrPath] = (),
    batch_size: int = 32,
    cache_dir: StrPath | None = None,
) -> CapabilityResult:
    """Zero-shot accuracy of ``model`` (with ``intervention`` active) on ``tasks`` vs a reference.

    Args:
        model: a harness ``LoadedModel`` (or a bare HF causal LM with ``tokenizer=``).
        tasks: lm-eval task names (zoo tasks, lm-eval's, or tasks under ``include_paths``).
        intervention: None, or what :func:`~harness.evaluation.evaluate_tasks` accepts (an
            ``Intervention`` with ``.apply(model)`` and a stable ``id``, or a ``NamedIntervention``).
        reference: the model without the method when it is another model (e.g. the base
            model of a fine-tuned copy; same tokenizer); None = ``model`` without the intervention.
        model_id / reference_id: cache ids of the weights; default: the LoadedModel's
            ``fingerprint`` when it has one, else a hash of the weights. A modified copy must not
            reuse its base model's id (``dataclasses.replace`` keeps it): pass its own or leave both None.
        limit: documents per task (None = all).
        include_paths: extra local task folders (the zoo's are always included).
        batch_size: lm-eval (HFLM) batch size.
        cache_dir: the bridge's result-cache folder (None = no cache).

    The scores are zero-shot with seed 0 (the seed does not change zero-shot loglikelihood
    scores, so every seed of a run shares the cached reference).
    """
    from harness.evaluation.bridge import evaluate_tasks, intervention_id
    from harness.stats import combined_stderr

    names = list(dict.fromkeys(tasks))
    paths = include_paths_with_zoo(include_paths)
    net, tok, fp = _unpack(model, tokenizer)
    if reference is not None:
        ref_net, _, ref_fp = _unpack(reference, tok)
        if model_id is None and ref_fp is not None and fp == ref_fp:
            fp = None  # a modified copy that kept its base model's fingerprint: hash its own weights
        ref_id = reference_id or ref_fp
    else:
        ref_net, ref_id = net, model_id or fp
    common = dict(include_paths=paths, limit=limit, num_fewshot=0, batch_size=batch_size, seed=0, cache_dir=cache_dir)
    ref = evaluate_tasks(ref_net, tok, names, model_id=ref_id, **common)
    self_reference = reference is None and intervention is None
    res = ref if self_reference else evaluate_tasks(net, tok, names, model_id=model_id or fp, intervention=intervention, **common)
    out: dict[str, TaskCapability] = {}
    for t in names:
        acc, se, n = _acc(res, t)
        racc, rse, _ = _acc(ref, t)
        if self_reference:
            dse: float | None = 0.0
        else:
            dse = 100 * math.sqrt(se**2 + rse**2) if se is not None and rse is not None else None
        out[t] = TaskCapability(task=t, acc=acc, acc_stderr=se, reference_acc=racc, reference_stderr=rse, n=n,
                                delta=100 * (acc - racc), delta_stderr=dse)
    deltas = [r.delta for r in out.values()]
    return CapabilityResult(
        model_id=res.model_id, reference_id=ref.model_id, intervention_id=intervention_id(intervention), tasks=out,
        mean_delta=sum(deltas) / len(deltas), mean_delta_stderr=combined_stderr([r.delta_stderr for r in out.values()]),
        mean_acc=sum(r.acc for r in out.values()) / len(out), mean_acc_stderr=combined_stderr([r.acc_stderr for r in out.values()]),
        cached=res.all_cached and ref.all_cached,
    )  # fmt: skip


def cell_cache_dir(cell: Any) -> Path:
    """The run's lm-eval result cache: ``<output dir>/cache/lm_eval`` (next to ``records`` and
    ``artifacts``), shared by every cell, row and seed of the output folder."""
    return Path(cell.artifact_dir).parent.parent / "cache" / "lm_eval"


def capability_task_problems(field: str, tasks: Sequence[str], include_paths: Sequence[str], paths_field: str) -> list[str]:
    """Plan-time check: include folders exist; every task is in them, a zoo task, or an lm-eval task."""
    from harness.validation import task_problems

    missing = [p for p in include_paths if not Path(p).expanduser().is_dir()]
    if missing:
        return [f"{paths_field}: no folder {p!r}. Fix: give folders that hold lm-eval task YAML files." for p in missing]
    local: set[str] = set()
    if include_paths and tasks:
        from harness.evaluation.tasks import list_local_tasks

        local = {t.name for t in list_local_tasks([Path(p).expanduser() for p in include_paths])}
    return task_problems(field, [t for t in tasks if t not in local])


def capability_metrics(cell: Any, result: CapabilityResult) -> list[Any]:
    """The cell's ``capability_acc[<task>]`` / ``capability_acc[mean]`` (fraction) and
    ``capability_delta[<task>]`` / ``capability_delta[mean]`` (pp) values."""
    acc, delta = cell.metric("capability_acc"), cell.metric("capability_delta")
    out = []
    for t, r in result.tasks.items():
        out.append(acc.value(r.acc, key=t, stderr=r.acc_stderr, n=r.n))
        out.append(delta.value(r.delta, key=t, stderr=r.delta_stderr, n=r.n))
    out.append(acc.value(result.mean_acc, key="mean", stderr=result.mean_acc_stderr, n=len(result.tasks)))
    out.append(delta.value(result.mean_delta, key="mean", stderr=result.mean_delta_stderr, n=len(result.tasks)))
    return out


class CapabilityDelta(ReportedMetric):
    name = "capability_delta"
    description = (
        "Zero-shot lm-eval accuracy change (percentage points) of the model with the method vs without it "
        "(keys: per task, and `mean`); stderr: combined independent binomial (conservative)."
    )
    higher_is_better = True
    scope = "model"
    unit = "pp"


class CapabilityAcc(ReportedMetric):
    name = "capability_acc"
    description = (
        "Zero-shot lm-eval accuracy of the model with the method (keys: per task, and `mean`); on the row without a "
        "method it is the reference accuracy the deltas are taken against."
    )
    higher_is_better = True
    scope = "model"
    unit = "acc"


#: Names of the capability metrics (a suite lists them in its ``metrics``).
CAPABILITY_METRICS = ("capability_delta", "capability_acc")
