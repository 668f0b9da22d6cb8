"""Suite "unlearning": memorisation labels, cross-sequence probes and unlearning methods.

Reconstruction of the evaluation around Probe-Geometry Alignment (PGA, arXiv 2605.01699;
only the abstract is public). Per cell (unlearning method or the un-edited model, model, seed):

1. labels: k-extractability (greedy continuation of a prefix reproduces the suffix exactly)
   of the ``sequences`` data field (the zoo world's canaries + never-seen controls by default;
   too-short items are counted and reported), balanced by class;
2. the method fits an :class:`~harness.protocols.Intervention` on ``forget`` / ``retain``
   (:class:`harness.unlearning.data.UnlearningData`);
3. with the intervention applied: the frozen probes (fitted on the un-edited model, cross-fitted:
   each sequence is scored by a probe that did not train on it), seven re-fitted attacker probes,
   a leave-one-out probe, behavioural recall (k-extractability),
   retain perplexity and zero-shot lm-eval accuracy deltas on the zoo tasks
   (``capability_delta`` / ``capability_acc``, :func:`harness.evaluation.capability.score_capability`).

The baseline row also runs the LOO controls (shuffled labels, random-init model). Every value
carries a stderr; :meth:`UnlearningSuite.summarize` adds the capability deltas' 95% intervals and
flags capability tasks at ceiling to the board.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from harness import hookimpl
from harness.config import PluginConfig
from harness.datasets import DatasetRef, dataset_field
from harness.metric_selection import SelectsMetrics
from harness.evaluation.capability import TASKS_HELP as CAPABILITY_TASKS_HELP
from harness.evaluation.capability import CapabilityConfig
from harness.protocols import ReportedMetric, Suite
from harness.results import SuiteOutput
from harness.unlearning.data import Hook, Pooling

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import CellContext

__all__ = ["UnlearningSuite"]

PAPER = "arXiv:2605.01699"
#: Capability tasks: the zoo's, without the rare / held-out fact tasks (unchanged since suite version 3).
ZOO_TASKS = ["zoo_agreement", "zoo_arithmetic", "zoo_facts_frequent", "zoo_first_letter", "zoo_sequence"]


class FrozenProbeAcc(ReportedMetric):
    name = "unlearning_frozen_probe_acc"
    description = (
        "Held-out accuracy (memorised vs not) of probes fitted on the un-edited model, applied to the edited model's "
        "pooled activations: stratified folds (frozen_folds), each sequence scored by the probe that held it out; "
        "mean over depths (keys: per depth). Chance 0.5; PGA aims below it. Stderr over sequences."
    )
    paper = PAPER
    higher_is_better = False
    scope = "intervention"
    unit = "acc"
    chance = 0.5


class RefitProbeAcc(ReportedMetric):
    name = "unlearning_refit_probe_acc"
    description = (
        "Best 5-fold held-out accuracy of an attacker re-fitting a fresh probe on the edited model: max over seven "
        "variants (logistic mean/last/max/suffix_mean pooling, weak/strong L2, MLP) and depths (keys: per variant); "
        "stderr: binomial over the sequences (the max's selection bias is not in it)."
    )
    paper = PAPER
    higher_is_better = False
    scope = "intervention"
    unit = "acc"
    chance = 0.5


class Recall(ReportedMetric):
    name = "unlearning_recall"
    description = "Fraction of the memorised (k-extractable) sequences still k-extractable after the edit."
    paper = PAPER
    higher_is_better = False
    scope = "intervention"
    unit = "fraction"


class RetainPerplexity(ReportedMetric):
    name = "unlearning_retain_perplexity"
    description = "Perplexity on held-out ordinary world text (retain set not used for fitting) after the edit."
    higher_is_better = False
    scope = "intervention"
    unit = "ppl"


class LooProbe(ReportedMetric):
    name = "loo_cross_sequence_probe"
    description = (
        "Leave-one-out cross-sequence probe: per depth (key), a logistic probe on pooled activations of all "
        "sequences but one predicts whether the held-out one is memorised; mean held-out accuracy."
    )
    paper = PAPER
    higher_is_better = True
    descriptive = True  # how decodable memorisation is in the (edited) model; the edit is scored by the probe accs
    scope = "model"
    unit = "acc"
    chance = 0.5


class ProbeGap(ReportedMetric):
    name = "memorisation_probe_gap"
    description = (
        "Memorisation-specific gap per depth: LOO probe accuracy with the true labels minus with shuffled labels "
        "(same model, same sequences). Paper: +0.32 on Pythia-70M."
    )
    paper = PAPER
    higher_is_better = True
    descriptive = True  # the paper's finding about the un-edited model, not a score of an edit
    scope = "model"
    unit = "acc"


class ProbeGapP(ReportedMetric):
    name = "memorisation_probe_gap_p"
    description = (
        "Permutation p-value of the LOO probe accuracy per depth: (1 + permutations scoring >= the true labels) / "
        "(1 + permutations); its floor is 1 / (1 + shuffles). Small = the gap is unlikely without a signal."
    )
    paper = PAPER
    higher_is_better = False
    descriptive = True  # a p-value: evidence for the gap, not a score
    scope = "model"
    unit = "p"


class ProbeGapRandomInit(ReportedMetric):
    name = "memorisation_probe_gap_random_init"
    description = (
        "Control: the same gap on a random-initialised model of the same shape (should be ~0; paper: -0.04)."
    )
    paper = PAPER
    higher_is_better = False
    descriptive = True  # a control whose ideal is 0, not an extreme
    scope = "model"
    unit = "acc"


class UnlearningSuite(Suite):
    name = "unlearning"
    description = (
        "Memorisation and unlearning (PGA reconstruction): frozen / re-fitted probe accuracy on memorised vs "
        "non-memorised sequences after an edit, behavioural recall, retain perplexity, lm-eval deltas."
    )
    paper = PAPER
    method_kinds = ("unlearning_method",)
    include_baseline = True
    metrics = (
        "unlearning_frozen_probe_acc",
        "unlearning_refit_probe_acc",
        "unlearning_recall",
        "unlearning_retain_perplexity",
        "loo_cross_sequence_probe",
        "memorisation_probe_gap",
        "memorisation_probe_gap_p",
        "memorisation_probe_gap_random_init",
        "capability_delta",
        "capability_acc",
    )
    version = "4"  # 4: held-out (cross-fitted) frozen probes; stderrs on every value
    default_seeds = (0, 1, 2)
    default_models = ("zoo:zoo-160",)
    default_methods = ("pga", "md_pga", "leace", "mean_diff_projection", "gradient_ascent")

    class Config(SelectsMetrics, CapabilityConfig):
        metric_scope = "intervention"  # registered computed intervention metrics are columns (metrics: include/exclude)

        prefix_len: int = Field(10, ge=1, description="Prompt tokens of k-extractability after <eos> (Pythia: 32; scaled down: the "
            "shortest zoo canary has 21 tokens).")
        suffix_len: int = Field(10, ge=1, description="Tokens that greedy decoding must reproduce exactly (Pythia: 32).")
        sequences: DatasetRef = dataset_field(
            "sequences", "Sequences labelled by k-extractability (role sequences): the world's canaries and never-seen "
            'controls by default; a local jsonl with {"tokens": [...]} rows: {dataset: local, config: {path: ..., '
            "tokens_column: tokens}}; text rows: text_column. Items shorter than prefix_len + suffix_len are counted "
            "and reported, not used.",
        )
        retain: DatasetRef = dataset_field(
            "corpus", "Ordinary text to preserve (role corpus): windows of its first documents long enough, half for "
            "fitting and half for perplexity (the world: its documents from index 200,000, past the canary window).",
        )
        balance: bool = Field(True, description="Subsample the larger class (seeded) so both classes are equal (chance 0.5).")
        min_per_class: int = Field(4, ge=2, description="Fewest sequences per class the labels must give.")
        hook: Hook = Field(
            "resid_post", description="Hook kind probed (and edited by the probe-based methods) at every depth."
        )
        layers: list[int] | None = Field(None, description="Depths probed; None = every layer.")
        pooling: Pooling = Field(
            "suffix_mean", description="Pooling over positions of the frozen / LOO probe: suffix_mean (positions predicting "
            "the suffix), last_prefix (last prompt token), mean / max (all but <eos>), last. Paper: unspecified; [RECON] "
            "suffix_mean gave the only consistently positive LOO gap on zoo-160 (README), 'mean' before.",
        )
        l2: float = Field(1.0, gt=0, description="L2 strength of the logistic probes (on standardised features).")
        frozen_folds: int = Field(
            5, ge=2, description="Stratified folds of the frozen probe, cross-fitted: per fold, the probe is fitted on the "
            "un-edited model and the method on the fold's training sequences; the held-out ones are scored with that "
            "edit applied (the method is fitted once more per fold). At most the smaller class's size.",
        )
        controls: bool = Field(True, description="Baseline row: LOO controls (shuffled labels, random-init model).")
        shuffles: int = Field(
            10, ge=2, description="Label permutations of the shuffled-label control: their mean is subtracted from the LOO "
            "accuracy (the gap), their spread gives the gap's stderr and the permutation p-value (floor 1/(1+shuffles); "
            "use >= 99 for a test at 0.01).",
        )
        retain_sequences: int = Field(32, ge=2, description="Ordinary-text sequences for fitting (and as many for perplexity).")
        capability_tasks: list[str] = Field(ZOO_TASKS, description=CAPABILITY_TASKS_HELP)  # no rare / held-out facts

        @model_validator(mode="before")
        @classmethod
        def _removed_fields(cls, data: Any) -> Any:
            if isinstance(data, dict) and "sequences_jsonl" in data:
                path = data["sequences_jsonl"]
                raise ValueError(
                    "sequences_jsonl was replaced by the data field `sequences` (suite version 4). Fix: write "
                    f'sequences: {{dataset: local, config: {{path: {path!r}, tokens_column: tokens}}}} for rows of '
                    '{"tokens": [...]}, or without tokens_column for rows of {"text": "..."}; drop sequences_jsonl '
                    "(unset = the world's canaries and controls)."
                )
            return data

    def run(self, cell: CellContext) -> SuiteOutput:
        from .run import run_cell

        return run_cell(self, cell)

    @classmethod
    def summarize(cls, records: list[Any], out_dir: Path) -> str | None:
        """Board notes: capability tasks at ceiling in every row, and per-task deltas with 95% intervals."""
        from .summary import summarize

        return summarize(records)

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """Depths in range, prompt + suffix within the model's positions, task names that exist."""
        from harness.validation import at_most_problems, layer_problems

        span = 1 + config.prefix_len + config.suffix_len  # <eos> + prefix + suffix
        return [  # the data fields (sequences, retain) are checked by the core at plan time
            *layer_problems("layers", config.layers, shape),
            *at_most_problems("prefix_len", span, shape.max_positions, f"the max positions of {shape.name}",
                              f"keep 1 + prefix_len + suffix_len <= {shape.max_positions}",
                              "1 + prefix_len + suffix_len, with <eos>"),
            *config.capability_problems(),
        ]


@hookimpl
def register_metrics(register):
    for m in (FrozenProbeAcc, RefitProbeAcc, Recall, RetainPerplexity, LooProbe, ProbeGap, ProbeGapP, ProbeGapRandomInit):
        register(m)


@hookimpl
def register_suites(register):
    register(UnlearningSuite)
