"""Suite "sae": SAEBench-style evaluation of dictionary learners (Karvonen et al., arXiv 2503.09532).

Per row (a dictionary learner) and seed: residual-stream activations of the cell's model are
harvested from the ``corpus`` (default: the embedded world's text), the learner is trained with
the shared trainer (:func:`harness.sae.train_sae`), and then scored on held-out documents:
sparsity and reconstruction (L0, MSE, explained variance, cosine, l2 ratio), downstream
faithfulness with the reconstruction spliced into the forward pass (CE-loss recovered, KL score),
latent usage (alive fraction, dense fractions, density histogram), sparse probing on the
``probe_sets`` (default: the world's class sets), absorption and SCR / TPP (``scr_tpp_set``).
Every data field defaults to the world (:mod:`harness.datasets`). Formulas, sources and our
choices: README.md. Heavy code lives in the submodules.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from harness import hookimpl
from harness.config import PluginConfig, key_neutral
from harness.datasets import DatasetRef, dataset_field
from harness.evaluation.capability import CapabilityConfig
from harness.metric_inputs import SAEInputs
from harness.metric_selection import SelectsMetrics
from harness.protocols import Metric, ReportedMetric, Suite
from harness.results import MetricValue, SuiteOutput

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import CellContext

SAEBENCH = "arXiv:2503.09532"

#: Budgets of the two presets (fields a spec leaves at None).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"train_tokens": 32768, "epochs": 2, "eval_tokens": 8192, "sweep_values": [8, 128],
              "penalty_factors": [0.25, 4.0],
              "probe_train_examples": 400, "probe_test_examples": 400,
              "scr_tpp_train_examples": 800, "scr_tpp_test_examples": 800, "absorption_vocab_words": 2000},
    "full": {"train_tokens": 262144, "epochs": 2, "eval_tokens": 32768, "sweep_values": [8, 16, 64, 128],
             "penalty_factors": [0.125, 0.5, 2.0, 8.0],
             "probe_train_examples": 1000, "probe_test_examples": 1000,
             "scr_tpp_train_examples": 1600, "scr_tpp_test_examples": 1600, "absorption_vocab_words": 8000},
}  # fmt: skip

class _Scalar(ReportedMetric):
    """Reported: the suite computes the value with :mod:`.core` in its shared evaluation pass
    (``value(v, n=..., stderr=...)``)."""

    scope = "sae"
    paper = SAEBENCH


class L0(_Scalar):
    name = "sae_l0"
    description = "Mean number of non-zero latents per held-out token (sparsity; lower = sparser)."
    higher_is_better = False
    descriptive = True  # the sparsity axis of SAEBench's sparsity-fidelity trade-off, set by k / the L1 coefficient
    unit = "latents"


class MSE(_Scalar):
    name = "sae_mse"
    description = "Mean squared reconstruction error per dimension on held-out tokens."
    higher_is_better = False


class ExplainedVariance(_Scalar):
    name = "sae_explained_variance"
    description = (
        "1 - sum_t ||x_t - x_hat_t||^2 / sum_t ||x_t - mean(x)||^2 over held-out tokens (variance explained "
        "around the per-dimension mean; SAELens' current `explained_variance`)."
    )
    higher_is_better = True


class ExplainedVarianceSAEBench(_Scalar):
    name = "sae_explained_variance_saebench"
    description = (
        "SAEBench core's explained variance (SAELens `explained_variance_legacy`): the per-token ratio "
        "1 - ||x_t - x_hat_t||^2 / ||x_t - mean(x)||^2, averaged over tokens."
    )
    higher_is_better = True


class CosSim(_Scalar):
    name = "sae_cossim"
    description = "Mean cosine similarity between each token's activation and its reconstruction."
    higher_is_better = True


class L2Ratio(_Scalar):
    name = "sae_l2_ratio"
    description = "Mean ||x_hat|| / ||x|| per token (shrinkage; 1 = none; above 1 overshoots). Descriptive."
    higher_is_better = True
    descriptive = True  # best at 1, not at an extreme: a diagnostic, not a score


class CELossRecovered(ReportedMetric):
    """Reported from the suite's spliced forward passes (:meth:`report`)."""

    name = "sae_ce_loss_recovered"
    description = (
        "(CE_zero_ablation - CE_sae) / (CE_zero_ablation - CE_clean): next-token loss recovered when the "
        "reconstruction replaces the hook point (1 = lossless, 0 = as bad as zeroing it)."
    )
    paper = SAEBENCH
    higher_is_better = True
    scope = "sae"

    def report(self, clean: float, with_sae: float, ablated: float, *, n: int | None = None,
               stderr: float | None = None) -> MetricValue:
        """From the mean CE of the clean, SAE-spliced and zero-ablated forward passes."""
        from .core import recovered_score

        return self.value(recovered_score(float(clean), float(with_sae), float(ablated)), n=n, stderr=stderr)


class _MatchedL0(_Scalar):
    """Reported: the cell's curve (own point + swept points) read off at ``matched_l0`` (:mod:`.matched`)."""

    higher_is_better = True


class CELossRecoveredAtL0(_MatchedL0):
    name = "sae_ce_loss_recovered_at_l0"
    description = (
        "CE-loss recovered at the matched L0 (config matched_l0, default 32): the cell's L0 vs CE-loss-recovered "
        "curve (its configured setting and the sweep_values retrainings) interpolated linearly in log L0 "
        "(SAEBench compares SAEs at fixed L0); no value outside the curve's L0 range."
    )


class ExplainedVarianceAtL0(_MatchedL0):
    name = "sae_explained_variance_at_l0"
    description = (
        "Explained variance at the matched L0 (config matched_l0), interpolated in log L0 on the cell's curve "
        "as sae_ce_loss_recovered_at_l0."
    )


class KLScore(ReportedMetric):
    """Reported from the suite's spliced forward passes (:meth:`report`)."""

    name = "sae_kl_score"
    description = (
        "(KL_zero_ablation - KL_sae) / KL_zero_ablation, with KL(clean next-token distribution || edited) "
        "per token: 1 = the spliced model predicts exactly like the clean one."
    )
    paper = SAEBENCH
    higher_is_better = True
    scope = "sae"

    def report(self, with_sae: float, ablated: float, *, n: int | None = None, stderr: float | None = None) -> MetricValue:
        """From the mean KL(clean || edited) of the SAE-spliced and zero-ablated forward passes."""
        from .core import recovered_score

        return self.value(recovered_score(0.0, float(with_sae), float(ablated)), n=n, stderr=stderr)


class AliveFraction(Metric):
    name = "sae_alive_fraction"
    description = "Fraction of latents that fire (non-zero) on at least one held-out token."
    paper = SAEBENCH
    higher_is_better = True
    descriptive = True  # a latent-frequency statistic SAEBench reports, not one it scores
    scope = "sae"

    def compute(self, inputs: SAEInputs) -> MetricValue:
        from .core import alive_fraction, latent_density

        d = latent_density(inputs.sae, inputs.activations)
        return self.value(alive_fraction(d), n=int(d.numel()))


class DenseFraction(Metric):
    name = "sae_dense_fraction"
    description = (
        "Fraction of latents firing on more than a threshold share of held-out tokens (keys '>1%' and '>10%'); "
        "dense latents are usually uninterpretable."
    )
    paper = SAEBENCH
    higher_is_better = False
    descriptive = True  # a latent-frequency statistic SAEBench reports, not one it scores
    scope = "sae"

    class Config(PluginConfig):
        thresholds: list[float] = Field(
            [0.01, 0.1], min_length=1, description="Shares of the held-out tokens a dense latent fires on (one key each)."
        )

    def compute(self, inputs: SAEInputs) -> list[MetricValue]:
        from .core import dense_fraction, latent_density

        d = latent_density(inputs.sae, inputs.activations)
        return [self.value(dense_fraction(d, t), key=f">{t * 100:g}%", n=int(d.numel())) for t in self.config.thresholds]


class SparseProbing(ReportedMetric):
    """Reported from the suite's probes (:meth:`report`)."""

    name = "sae_sparse_probing"
    description = (
        "Held-out accuracy of logistic-regression probes on the top-k latents (by mean difference, keys "
        "'<class set>/k<k>') or on the raw residual stream ('<class set>/residual'), mean-pooled over tokens; "
        "mean over balanced one-vs-rest tasks."
    )
    paper = SAEBENCH
    higher_is_better = True
    scope = "sae"
    chance = 0.5

    def report(self, score: Any, *, key: str) -> MetricValue:
        """From a :class:`.probing.ProbeScore` (accuracy, stderr over tasks, test examples)."""
        return self.value(score.accuracy, key=key, stderr=score.stderr, n=score.n_test, chance=0.5)


class SCR(_Scalar):
    name = "sae_scr"
    description = (
        "Spurious correlation removal (key 'top<N>'): a probe trained where topic and pronoun fully correlate is "
        "re-scored after zero-ablating the N latents most attributed to the concept it over-relies on; "
        "(acc_ablated - acc_biased) / (acc_oracle - acc_biased), mean over topic pairs (1 = ablation removes the "
        "spurious signal as well as retraining on unbiased data, 0 = no effect)."
    )
    higher_is_better = True


class TPP(_Scalar):
    name = "sae_tpp"
    description = (
        "Targeted probe perturbation (key 'top<N>'): accuracy drop of topic i's probe when the N latents most "
        "attributed to topic i are zero-ablated, minus the mean drop of the other topics' probes; mean over topics."
    )
    higher_is_better = True


class _Absorption(ReportedMetric):
    """Reported: a mean over letters from the suite's :class:`.absorption.AbsorptionResult` (:meth:`report`);
    stderr over letters."""

    scope = "sae"
    paper = SAEBENCH
    attr: ClassVar[str]
    sd_attr: ClassVar[str]

    def report(self, result: Any) -> MetricValue:
        r = result
        n = int(r.n_letters)
        se = float(getattr(r, self.sd_attr)) / math.sqrt(n) if n > 1 else 0.0
        return self.value(float(getattr(r, self.attr)), stderr=se, n=n)


class AbsorptionFraction(_Absorption):
    name = "sae_absorption_fraction"
    description = (
        "Feature absorption on first-letter spelling (SAEBench): per probe-true-positive test word, the share of "
        "the ground-truth letter-probe projection carried by up to 3 probe-aligned non-main latents instead of the "
        "letter's main latents; mean over words per letter, then over letters (0 = no absorption)."
    )
    higher_is_better = False
    attr, sd_attr = "mean_absorption_fraction", "std_absorption_fraction"


class AbsorptionFullRate(_Absorption):
    name = "sae_absorption_full_rate"
    description = (
        "Full-absorption rate (SAEBench): share of probe-true-positive words on which no main latent fires and a "
        "single probe-aligned latent carries >= 40% of the probe projection; mean over letters."
    )
    higher_is_better = False
    attr, sd_attr = "full_absorption_rate", "std_full_absorption_rate"


class SplitFeatures(_Absorption):
    name = "sae_split_features"
    description = (
        "Mean number of main (split) latents per letter: the k-sparse probe grows while its test F1 improves by "
        "more than 0.03 (SAEBench feature splitting; 1 = one latent per letter)."
    )
    higher_is_better = False
    descriptive = True  # splitting grows with dictionary width; the absorption metrics are the scores
    unit = "latents"
    attr, sd_attr = "mean_split_features", "std_split_features"


METRICS = (
    CELossRecoveredAtL0, ExplainedVarianceAtL0, CELossRecovered, KLScore, ExplainedVariance,
    ExplainedVarianceSAEBench, MSE, L0, CosSim, L2Ratio,
    AliveFraction, DenseFraction, SparseProbing, SCR, TPP, AbsorptionFraction, AbsorptionFullRate, SplitFeatures,
)  # fmt: skip


class SAEBenchSuite(Suite):
    name = "sae"
    description = (
        "SAEBench-style evaluation of sparse dictionaries on a model's residual stream: sparsity, reconstruction, "
        "CE-loss recovered, KL score, latent density, sparse probing (trained per cell, scored on held-out text)."
    )
    paper = SAEBENCH
    method_kinds = ("dictionary_learner",)
    include_baseline = False
    metrics = (*(m.name for m in METRICS), "capability_delta", "capability_acc")
    version = "4"  # 4: ranked at a matched L0 (sae_ce_loss_recovered_at_l0); 3: autointerp / ground truth / RAVEL
    default_seeds = (0, 1, 2)
    default_models = ("zoo:zoo-96",)
    default_methods = ("topk", "vsae_topk", "batchtopk")  # the seed paper's pair plus one; relu_l1 needs a longer budget

    class Config(SelectsMetrics, CapabilityConfig):
        metric_scope = "sae"  # every registered computed sae-scope metric is a column (metrics: include/exclude)

        corpus: DatasetRef = dataset_field(
            "corpus",
            "Text the dictionaries are trained and evaluated on (documents train_start_doc.. and eval_start_doc.. of "
            "its stream); default: the embedded world's document stream.",
        )
        probe_sets: list[DatasetRef] = dataset_field(
            "labelled",
            "Labelled sets for sparse probing (board keys '<set name>/k<k>'); [] = the world's probe_class_sets.",
            default=[],
        )
        scr_tpp_set: DatasetRef = dataset_field(
            "labelled",
            "Labelled set with a binary spurious label (its config's spurious_column, e.g. gender in bias_in_bios) "
            "for SCR / TPP; default: the world's topic sentences with the pronoun as the spurious label.",
        )
        preset: Literal["quick", "full"] = Field(
            "quick",
            description="Budget: 'quick' (the default `harness run`: a few minutes for three rows on 2 CPU cores, k swept "
            "at 8 and 128) or 'full' (8x the training tokens, 4x the evaluation tokens, k swept at 8, 16, 64, 128). "
            "Fields left at None take the preset's value.",
        )
        hook_point: str = Field(
            "blocks.1.hook_resid_post", description="Hook point the dictionaries read and are spliced into."
        )
        train_tokens: int | None = Field(
            None, ge=256, description="Distinct activation tokens harvested for training; None = preset (32768 / 262144)."
        )
        epochs: int | None = Field(None, ge=1, description="Passes of the trainer over the training tokens; None = preset (2).")
        batch_size: int = Field(512, ge=1, description="Trainer batch (tokens per optimiser step).")
        normalize_activations: Literal["none", "expected_average_only_in"] = Field(
            "none", description="Trainer input normalisation (SAELens name); folded into the saved weights."
        )
        eval_tokens: int | None = Field(
            None, ge=64, description="Held-out tokens for the reconstruction and CE/KL metrics; None = preset (8192 / 32768)."
        )
        matched_l0: float = Field(
            32, gt=0, description="L0 at which learners are compared in the headline (sae_ce_loss_recovered_at_l0, "
            "the board's ranking metric): each cell's L0 vs fidelity curve, its configured setting plus the "
            "sweep_values retrainings, interpolated in log L0; a level outside a cell's curve gets no value."
        )
        bootstrap: int = Field(
            200, ge=0, description="Bootstrap resamples of the held-out contexts for the core metrics' stderr (0 = none)."
        )
        sweep_field: str = Field(
            "k", description="Learner config field swept for the Pareto plot (a learner without it that declares a "
            "`sparsity_field` is swept by penalty_factors instead; others skip the sweep)."
        )
        penalty_factors: list[float] | None = Field(  # added after the keys were fixed: out of the key at its default
            None, json_schema_extra=key_neutral(),
            description="For a learner without `sweep_field` whose class declares a `sparsity_field` (a penalty "
            "coefficient: gated, relu_l1, jumprelu, tied_sae): the multiples of the row's value it is retrained at, "
            "so that its L0 curve can reach matched_l0; None = preset (quick: 0.25, 4; full: 0.125, 0.5, 2, 8); "
            "[] = none.",
        )  # fmt: skip
        sweep_values: list[float] | None = Field(
            None,
            description="Values of `sweep_field` each row is retrained at (same activations and budget) for the L0 vs "
            "explained variance / CE-loss recovered Pareto plot; None = preset (quick: 8, 128; full: 8, 16, 64, 128); [] = none.",
        )
        train_start_doc: int = Field(
            0, ge=0, description="First corpus document of the training text (training reads up to eval_start_doc "
            "when that comes later)."
        )
        eval_start_doc: int = Field(
            200_000, ge=0, description="First corpus document of the held-out text (disjoint from the training "
            "text; a small corpus needs a smaller value, e.g. 80% of its documents)."
        )
        context_length: int = Field(128, ge=8, description="Tokens per model context (packed documents).")
        model_batch_size: int = Field(32, ge=1, description="Contexts per model forward pass.")
        probing: bool = Field(True, description="Run sparse probing.")
        probe_class_sets: list[Literal["topic", "entity_type"]] = Field(
            ["topic", "entity_type"], description="World class sets probed while probe_sets is [] (then the same as "
            "probe_sets: [{dataset: world, config: {class_set: ...}}, ...])."
        )
        probe_k: list[int] = Field([1, 2, 5], min_length=1, description="Numbers of latents the sparse probes use.")
        probe_train_examples: int | None = Field(
            None, ge=8, description="Probe training sentences per class set; None = preset (400 / 1000)."
        )
        probe_test_examples: int | None = Field(
            None, ge=8, description="Held-out probe sentences per class set; None = preset (400 / 1000)."
        )
        scr_tpp: bool = Field(True, description="Run the feature-independence metrics SCR and TPP (topic vs pronoun).")
        scr_tpp_n: list[int] = Field(
            [2, 5, 10, 20], min_length=1, description="Numbers N of latents zero-ablated for SCR / TPP (each <= d_sae)."
        )
        scr_tpp_train_examples: int | None = Field(
            None, ge=160, description="Balanced topic sentences drawn for the SCR / TPP probes; None = preset (800 / 1600)."
        )
        scr_tpp_test_examples: int | None = Field(
            None, ge=160,
            description="Balanced topic sentences drawn for scoring SCR / TPP (those also in the training draw are "
            "dropped); None = preset (800 / 1600).",
        )
        absorption: bool = Field(
            True, description="Run feature absorption on first-letter spelling: the world's spelling words when the "
            "corpus is the world, otherwise the single-token alphabetic words of the model's tokenizer (SAEBench)."
        )
        absorption_vocab_words: int | None = Field(  # added after the keys were fixed: out of the key at its default
            None, ge=8, json_schema_extra=key_neutral(), description="Corpus other than the world: at most this many tokenizer words are spelled (a "
            "seeded sample); None = preset (2000 / 8000)."
        )
        absorption_template: str = Field(
            " {word} starts with",
            description="Prompt per spelling word (must contain '{word}'); BOS is prepended and each word runs alone.",
        )
        absorption_token_pos: int = Field(
            -1, description="Prompt token whose activation is read (negative: from the end; -1 = the final token)."
        )
        absorption_test_fraction: float = Field(
            0.2, gt=0, lt=1, description="Share of each letter's words held out for k-sparse F1 and absorption."
        )
        absorption_min_train_words: int = Field(
            4, ge=1, description="Letters with fewer training words are left out of the probes and the means."
        )
        absorption_max_k: int = Field(10, ge=1, description="Largest k of the k-sparse probes (SAEBench max_k_value).")
        absorption_f1_jump_threshold: float = Field(
            0.03, ge=0, description="Test-F1 gain that adds a latent to a letter's main (split) latents (SAEBench)."
        )
        tsne: bool = Field(
            True, description="Save a t-SNE map of the alive decoder directions coloured by best-predicted class (needs probing)."
        )

        def budget(self, key: str) -> Any:
            """The field's value, or the preset's where it is None."""
            value = getattr(self, key)
            return PRESETS[self.preset][key] if value is None else value

        def probe_refs(self) -> list[DatasetRef]:
            """The labelled sets probed: ``probe_sets``, or the world's ``probe_class_sets`` when it is []."""
            if self.probe_sets:
                return list(self.probe_sets)
            return [DatasetRef(dataset="world", config={"class_set": c}) for c in self.probe_class_sets]

        @model_validator(mode="after")
        def _consistent_fields(self) -> Any:
            if self.train_start_doc == self.eval_start_doc:
                raise ValueError(
                    f"train_start_doc and eval_start_doc are both {self.eval_start_doc}: the held-out text would be "
                    "the training text. Fix: start the held-out documents after the training ones (e.g. eval_start_doc "
                    "at 80% of a local corpus's documents)."
                )
            default = type(self).model_fields["probe_class_sets"].get_default(call_default_factory=True)
            if self.probe_sets and self.probe_class_sets != default:
                raise ValueError(
                    "probe_sets and probe_class_sets are both set; probe_class_sets only applies while probe_sets is []. "
                    "Fix: drop probe_class_sets and list the world's sets in probe_sets "
                    "({dataset: world, config: {class_set: topic}})."
                )
            return self

    def run(self, cell: CellContext) -> SuiteOutput:
        from .run import run_cell

        return run_cell(self, cell)

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """The hook point must exist (and not be an attention pattern); contexts fit the model."""
        from harness.validation import at_most_problems, hook_point_problems

        problems = hook_point_problems("hook_point", config.hook_point, shape)
        if not problems and shape.width(config.hook_point) is None:
            problems.append(f"hook_point: {config.hook_point!r} is an attention pattern, not activations a "
                            "dictionary can read. Fix: use a resid/attn_out/mlp_out/mlp_post hook point.")
        return problems + at_most_problems(
            "context_length", config.context_length, shape.max_positions, f"the max positions of {shape.name}",
            f"use context_length <= {shape.max_positions}",
        ) + config.capability_problems()

    @classmethod
    def summarize(cls, records: list[Any], out_dir: Path) -> str | None:
        from .board import matched_l0_note, scr_tpp_spread
        from .pareto import summarize

        if not records:
            return None
        parts = [matched_l0_note(records), summarize(records, out_dir), scr_tpp_spread(records)]
        return "\n\n".join(p.strip() for p in parts if p) + "\n"


@hookimpl
def register_metrics(register):
    for m in METRICS:
        register(m)


@hookimpl
def register_suites(register):
    register(SAEBenchSuite)
