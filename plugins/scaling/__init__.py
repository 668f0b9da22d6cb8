"""Suite "scaling": capability ceilings across model sizes and training checkpoints.

Reconstruction of "capability ceilings" (arXiv 2510.21866): per model (one cell), per task,
log-likelihood accuracy (real lm-eval), generation exact match, cross-entropy on the gold
answers and on held-out world text; per model with a swap partner, accuracy with attention
patterns swapped in from that partner (plugin ``attention_swap``). Once all cells are
recorded, :meth:`ScalingSuite.summarize` writes the cross-model results: the headline
"knowledge plateau vs procedural scaling" table with confidence-competence gap ratios, and
the plots (accuracy / loss vs parameters, accuracy across checkpoints).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from harness import hookimpl
from harness.config import PluginConfig
from harness.datasets import DatasetRef, dataset_field
from harness.evaluation.folders import TaskFolders, task_folders_field
from harness.metric_inputs import ModelInputs
from harness.protocols import Metric, ReportedMetric, Suite
from harness.results import MetricValue, SuiteOutput
from harness.stats import binomial_stderr, combined_stderr, mean_stderr

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import CellContext

PAPER = "arXiv:2510.21866"
#: Budgets of the presets; a field left at None takes its value from the chosen preset.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"limit": 40, "heldout_docs": 60},
    "full": {"limit": None, "heldout_docs": 300},
}


class ScalingAccuracy(ReportedMetric):
    """Reported from the suite's lm-eval run (:meth:`report`)."""

    name = "scaling_acc"
    description = "Log-likelihood multiple-choice accuracy of one task (key = task; real lm-eval `acc`)."
    paper = PAPER
    higher_is_better = True
    scope = "model"
    unit = "accuracy"

    def report(self, eval_result: Any, tasks: Sequence[str], chance: Mapping[str, float | None] | None = None
               ) -> list[MetricValue]:
        """One value per task of an lm-eval result, with its ``acc_stderr`` and chance level."""
        chances = chance or {}
        out = []
        for task in tasks:
            r = eval_result.tasks[task]
            if r.get("acc") is None:
                raise ValueError(f'scaling_acc: task "{task}" reported no "acc" (it has {sorted(r.metrics)}).')
            out.append(self.value(r.get("acc"), key=task, stderr=r.get("acc_stderr"), n=r.n_samples,
                                  chance=chances.get(task)))
        return out


def _mean_of(metric: ReportedMetric, vals: Sequence[MetricValue], key: str | None = None) -> MetricValue:
    k = len(vals)
    chances = [v.chance for v in vals]
    chance = sum(chances) / k if all(c is not None for c in chances) else None  # type: ignore[arg-type]
    return metric.value(sum(v.value for v in vals) / k, key=key, stderr=combined_stderr([v.stderr for v in vals]),
                        n=sum(v.n or 0 for v in vals), chance=chance)


class ScalingAccuracyMean(ReportedMetric):
    """Reported: the mean of the suite's scaling_acc values (:meth:`report`)."""

    name = "scaling_acc_mean"
    description = "Unweighted mean of scaling_acc over the suite's tasks."
    paper = PAPER
    higher_is_better = True
    scope = "model"
    unit = "accuracy"

    def report(self, per_task: Sequence[MetricValue]) -> MetricValue:
        """Mean of the scaling_acc values; stderr sqrt(sum se^2) / k when every task has one."""
        return _mean_of(self, per_task)


class ScalingKindAccuracy(ReportedMetric):
    """Reported: means of the suite's scaling_acc values per task kind (:meth:`report`)."""

    name = "scaling_kind_acc"
    description = "Mean scaling_acc over the tasks of one kind (key = knowledge / procedural / linguistic / ...)."
    paper = PAPER
    higher_is_better = True
    scope = "model"
    unit = "accuracy"

    def report(self, per_task: Sequence[MetricValue], kinds: Mapping[str, str]) -> list[MetricValue]:
        """One mean per kind (``kinds``: task -> kind), sorted by kind."""
        groups: dict[str, list[MetricValue]] = defaultdict(list)
        for v in per_task:
            groups[kinds[v.key]].append(v)  # type: ignore[index]
        return [_mean_of(self, vs, key=kind) for kind, vs in sorted(groups.items())]


class ScalingExactMatch(ReportedMetric):
    """Reported from the suite's greedy generations (:meth:`report`)."""

    name = "scaling_exact_match"
    description = (
        "Generation-based accuracy of one task (key = task): greedy decoding from the context must start with "
        "the gold answer's words (invalid generations count as wrong, which log-likelihood scoring hides)."
    )
    paper = PAPER
    higher_is_better = True
    scope = "generations"
    unit = "accuracy"

    def report(self, per_doc: Mapping[str, Sequence[bool]], chance: Mapping[str, float] | None = None
               ) -> list[MetricValue]:
        """``per_doc``: task -> [correct per doc]; binomial stderr (None for a single doc)."""
        out = []
        for task, hits in per_doc.items():
            n = len(hits)
            p = sum(hits) / n
            out.append(self.value(p, key=task, stderr=binomial_stderr(p, n) if n > 1 else None, n=n,
                                  chance=(chance or {}).get(task)))
        return out


class ScalingAnswerCE(ReportedMetric):
    """Reported from the suite's per-document answer cross-entropies (:meth:`report`)."""

    name = "scaling_answer_ce"
    description = "Cross-entropy (nats/token) of the gold answer given the context, mean over docs (key = task)."
    paper = PAPER
    higher_is_better = False
    scope = "model"
    unit = "nats/token"

    def report(self, per_doc: Mapping[str, Sequence[float]]) -> list[MetricValue]:
        """``per_doc``: task -> [per-doc mean nats/token]; stderr of the mean."""
        return [self.value(sum(xs) / len(xs), key=task, stderr=mean_stderr(xs), n=len(xs)) for task, xs in per_doc.items()]


class ScalingHeldoutLoss(Metric):
    name = "scaling_heldout_loss"
    description = (
        "Mean next-token loss (nats/token) on held-out text: world documents never trained on (the default), or "
        "the first documents of the configured corpus."
    )
    paper = PAPER
    higher_is_better = False
    scope = "model"
    unit = "nats/token"

    class Config(PluginConfig):
        n_docs: int = Field(60, ge=1, description="Held-out documents scored.")
        world_seed: int = Field(0, description="Seed of the embedded world whose held-out documents are scored "
                                               "(when `corpus` is the world without a seed of its own).")
        corpus: DatasetRef = dataset_field(
            "corpus", "Held-out text: the world (default; documents from index 50,000,000 on, never trained on) or "
            "any corpus (its first `n_docs` documents, each cut to the model's context).",
        )

    def corpus_ref(self) -> DatasetRef:
        """``corpus``, with ``world_seed`` as the seed of a world that names none."""
        from harness.datasets import is_world

        ref = self.config.corpus
        if is_world(ref):
            ref = ref.model_copy(update={"config": {"seed": self.config.world_seed, **ref.config}})
        return ref

    def compute(self, inputs: ModelInputs) -> MetricValue:
        from harness.datasets import open_role

        return self.score(inputs, open_role(self.corpus_ref(), "corpus"))

    def score(self, inputs: ModelInputs, corpus: Any) -> MetricValue:
        """The loss on ``corpus`` (a ``TextCorpus``; the suite opens :meth:`corpus_ref` with its cell's
        registries): the world's documents from its held-out index on, another corpus's first ones."""
        from itertools import islice

        from harness.errors import HarnessError
        from harness.zoo.evaluate import EVAL_LOSS_START, text_loss

        start = EVAL_LOSS_START if hasattr(corpus, "world") else 0
        texts = list(islice(corpus.texts(start), self.config.n_docs))
        if not texts:
            raise HarnessError(f"scaling_heldout_loss: corpus {self.config.corpus} has no documents. Fix: give a "
                               "corpus with held-out text, or heldout_docs: 0 to skip the held-out loss.")
        loaded = inputs.model
        loss, _ = text_loss(loaded.model, loaded.require_tokenizer(), texts)
        return self.value(loss, n=len(texts))


class ScalingSuite(Suite):
    name = "scaling"
    description = (
        "Capability ceilings (arXiv 2510.21866, reconstructed): accuracy, exact match and loss per task across "
        "model sizes and checkpoints; knowledge vs procedural tasks; attention-pattern swaps."
    )
    paper = PAPER
    method_kinds = ()
    include_baseline = True
    metrics = (
        "scaling_acc_mean",
        "scaling_kind_acc",
        "scaling_acc",
        "scaling_exact_match",
        "scaling_answer_ce",
        "scaling_heldout_loss",
        "attention_swap_acc",
    )
    version = "1"
    #: every zoo size at its final weights and at two intermediate checkpoints
    default_models = ("zoo:*", "zoo:*@step92", "zoo:*@step368")

    class Config(PluginConfig):
        preset: Literal["quick", "full"] = Field(
            "quick", description="Budget: 'quick' (40 docs per task; ~35-70 s for the 12 zoo cells on 2 CPU cores) or "
            "'full' (every doc). Fields left at None take the preset's value.",
        )
        tasks: list[str] | None = Field(
            None, description="lm-eval task names; None = every task of the embedded world (harness/zoo/tasks) "
            "and of `include_paths`.",
        )
        include_paths: TaskFolders = task_folders_field(
            "Extra folders of local lm-eval task YAMLs for `tasks` and `swap_tasks` (the zoo's tasks are always "
            "included); `harness run --tasks-dir DIR` appends to it. Each folder's file contents enter the cell key."
        )
        task_kinds: dict[str, str] = Field(
            default_factory=dict,
            description="Task -> kind (knowledge / procedural / ...), overriding the task metadata; needed for "
            "standard lm-eval tasks, e.g. {mmlu_high_school_mathematics: knowledge, arithmetic_2da: procedural}.",
        )
        limit: int | None = Field(None, ge=1, description="Docs per task (first N, as lm-eval's limit); None = preset.")
        heldout_docs: int | None = Field(
            None, ge=0, description="Held-out world documents for the held-out loss (0 = skip); None = preset.",
        )
        world_seed: int = Field(0, description="Seed of the generated world whose held-out text is scored (when "
                                               "`corpus` is the world without a seed of its own).")
        corpus: DatasetRef = dataset_field(
            "corpus", "Held-out text of scaling_heldout_loss: the world (default; documents never trained on) or any "
            "corpus (its first `heldout_docs` documents, each cut to the model's context), e.g. {dataset: local, "
            "config: {path: heldout.jsonl}}.",
        )
        exact_match: bool = Field(True, description="Also score by greedy generation (exact match of the answer).")
        prefix_eos: bool = Field(
            True, description="Precede each context by the EOS token for answer loss and generation, as every zoo "
            "training document is (lm-eval's log-likelihood scoring does not).",
        )
        batch_size: int = Field(64, ge=1, description="lm-eval batch size.")
        generation_batch_size: int = Field(128, ge=1, description="Prompts per greedy-generation batch.")
        swap_pairs: dict[str, str] = Field(
            default_factory=lambda: {"zoo:zoo-160": "zoo:zoo-160@step92"},
            description="Model A -> model B ([source:]name[@revision]): in A's cell, A runs with B's attention "
            "patterns (same tokeniser and head count needed). The zoo sizes have different head counts, so the "
            "default swaps checkpoints of one size. {} = no swaps.",
        )
        swap_tasks: list[str] = Field(
            ["zoo_arithmetic", "zoo_facts_frequent"], min_length=1, description="Tasks scored under the swap.",
        )
        swap_layers: list[int] | None = Field(
            None, description="Layers swapped one at a time (plus all of them together); None = every layer.",
        )
        swap_heads: list[int] | None = Field(None, description="Heads swapped within those layers; None = all.")

        @field_validator("swap_pairs")
        @classmethod
        def _refs(cls, v: dict[str, str]) -> dict[str, str]:
            from harness.config import ModelRef
            from harness.errors import SpecError

            for ref in (*v, *v.values()):
                try:
                    ModelRef.parse(ref)
                except SpecError as e:
                    raise ValueError(str(e)) from None
            return v

        def budget(self, key: str) -> Any:
            value = getattr(self, key)
            return PRESETS[self.preset][key] if value is None else value

    def run(self, cell: CellContext) -> SuiteOutput:
        from .run import run_cell

        return run_cell(self, cell)

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """Include folders exist; task names are in them, the zoo's or lm-eval's; swapped layers and heads
        are the model's."""
        from harness.evaluation.capability import capability_task_problems
        from harness.validation import layer_problems

        folders = config.include_paths
        problems = capability_task_problems("tasks", config.tasks or [], folders, "include_paths")
        if not any(p.startswith("include_paths:") for p in problems):
            problems += capability_task_problems("swap_tasks", config.swap_tasks, folders, "include_paths")
        problems += layer_problems("swap_layers", config.swap_layers, shape, negative=False)
        bad = [h for h in config.swap_heads or [] if not 0 <= h < shape.n_heads]
        if config.swap_heads == []:
            problems.append(f"swap_heads: empty list; allowed: heads in 0..{shape.n_heads - 1}. Fix: name at least "
                            "one, or leave it unset for all.")
        elif bad:
            problems.append(f"swap_heads: {bad} out of range: {shape.name} has {shape.n_heads} heads, allowed "
                            f"0..{shape.n_heads - 1}. Fix: use heads in 0..{shape.n_heads - 1}.")
        return problems

    @classmethod
    def summarize(cls, records: list[Any], out_dir: Path) -> str | None:
        from .summary import summarize

        return summarize(records, out_dir)


@hookimpl
def register_metrics(register):
    for metric in (ScalingAccuracy, ScalingAccuracyMean, ScalingKindAccuracy, ScalingExactMatch, ScalingAnswerCE,
                   ScalingHeldoutLoss):
        register(metric)


@hookimpl
def register_suites(register):
    register(ScalingSuite)
