"""Suite "lm_eval": zero-shot lm-eval tasks through the real lm-eval library.

Default tasks: every local task of the embedded world (harness/zoo/tasks) and of the
``include_paths`` folders (``harness run --tasks-dir DIR`` adds one); any lm-eval task name
(piqa, arc_easy, ...) works where its data set can be fetched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.evaluation.folders import TaskFolders, task_folders_field
from harness.protocols import ReportedMetric, Suite
from harness.results import MetricValue, SuiteOutput
from harness.stats import combined_stderr

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import CellContext


class LmEvalAccuracy(ReportedMetric):
    """Reported from the suite's lm-eval run (:meth:`report`)."""

    name = "lm_eval_acc"
    description = "lm-eval accuracy of one task (key = task), with lm-eval's standard error."
    higher_is_better = True
    scope = "model"
    unit = "accuracy"

    def report(self, eval_result: Any, tasks: Sequence[str], *, field: str = "acc",
               chance: Mapping[str, float | None] | None = None) -> list[MetricValue]:
        """One value per task: lm-eval's ``field`` (acc / acc_norm) with its ``<field>_stderr``."""
        chances = chance or {}
        out = []
        for task in tasks:
            r = eval_result.tasks[task]
            value = r.get(field)
            if value is None:
                raise ValueError(f'lm-eval task "{task}" reported no "{field}" (it has: {sorted(r.metrics)}).')
            out.append(self.value(value, key=task, stderr=r.get(f"{field}_stderr"), n=r.n_samples,
                                  chance=chances.get(task)))
        return out


class LmEvalAccuracyMean(ReportedMetric):
    """Reported: the mean of the suite's lm_eval_acc values (:meth:`report`)."""

    name = "lm_eval_acc_mean"
    description = "Unweighted mean of lm_eval_acc over the suite's tasks (the Open LLM Leaderboard average)."
    higher_is_better = True
    scope = "model"
    unit = "accuracy"

    def report(self, per_task: Sequence[MetricValue]) -> MetricValue:
        """Mean of the per-task values; stderr sqrt(sum se^2) / k when every task has one."""
        k = len(per_task)
        mean = sum(v.value for v in per_task) / k
        stderr = combined_stderr([v.stderr for v in per_task])
        return self.value(mean, stderr=stderr, n=sum(v.n or 0 for v in per_task))


class LmEvalSuite(Suite):
    name = "lm_eval"
    description = (
        "Zero-shot lm-eval tasks (real lm-eval, log-likelihood multiple choice). Default: the embedded "
        "world's tasks (facts frequent / rare / held-out, arithmetic, procedural, agreement)."
    )
    metrics = ("lm_eval_acc_mean", "lm_eval_acc")
    version = "1"
    default_models = ("zoo:*",)  # every model of the embedded suite

    class Config(PluginConfig):
        tasks: list[str] | None = Field(
            None, description="lm-eval task names; None = every task of the embedded world (harness/zoo/tasks) "
            "and of `include_paths`.",
        )
        include_paths: TaskFolders = task_folders_field(
            "Extra folders of local lm-eval task YAMLs (the zoo's tasks are always included); `harness run "
            "--tasks-dir DIR` appends to it. Each folder's file contents enter the cell key."
        )
        metric: Literal["acc", "acc_norm"] = Field("acc", description="Which lm-eval accuracy to report.")
        limit: int | None = Field(None, ge=1, description="At most this many documents per task (None = all).")
        num_fewshot: int = Field(0, ge=0, description="Few-shot examples (0 = zero-shot).")
        batch_size: int = Field(32, ge=1, description="lm-eval batch size.")

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """Include folders exist; task names are in them, the embedded world's, or lm-eval's."""
        from harness.evaluation.capability import capability_task_problems

        return capability_task_problems("tasks", config.tasks or [], config.include_paths, "include_paths")

    def run(self, cell: CellContext) -> SuiteOutput:
        from harness.evaluation import evaluate_tasks, list_local_tasks
        from harness.evaluation.capability import include_paths_with_zoo

        cfg = self.config
        paths = include_paths_with_zoo(cfg.include_paths)
        local = {t.name: t for t in list_local_tasks(paths)}
        tasks = cfg.tasks or [n for n, t in local.items() if t.entry_kind == "task"]
        if not tasks:
            raise ValueError("No lm-eval tasks: the embedded world's task folder and include_paths hold none; "
                             "pass tasks: [...].")
        loaded = cell.load_model()
        result = evaluate_tasks(
            loaded.model,
            loaded.require_tokenizer(),
            tasks,
            include_paths=paths,
            limit=cfg.limit,
            num_fewshot=cfg.num_fewshot,
            batch_size=cfg.batch_size,
            seed=cell.seed,
            model_id=loaded.fingerprint,
        )
        chance = {n: local[n].chance for n in tasks if n in local}
        per_task = cell.metric("lm_eval_acc").report(result, tasks, field=cfg.metric, chance=chance)
        mean = cell.metric("lm_eval_acc_mean").report(per_task)
        return SuiteOutput(
            metrics=[mean, *per_task],
            versions={t: str(v) for t, v in result.versions.items()} | {"lm_eval": result.lm_eval_version},
            details={
                "n_samples": {t: result.tasks[t].n_samples for t in tasks},
                "task_kind": {n: local[n].kind for n in tasks if n in local},
            },
        )


@hookimpl
def register_metrics(register):
    from harness.evaluation.capability import CapabilityAcc, CapabilityDelta

    register(LmEvalAccuracy)
    register(LmEvalAccuracyMean)
    register(CapabilityDelta)  # reported by the sae, unlearning and hallucination suites
    register(CapabilityAcc)


@hookimpl
def register_suites(register):
    register(LmEvalSuite)
