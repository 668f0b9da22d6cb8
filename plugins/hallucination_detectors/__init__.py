"""Hallucination detectors (metric plugins) and the suite "hallucination_detection".

Detector protocol (third-party detectors join by declaring the same): a computed Metric with
``scope = "generations"``, class attribute ``detector = True`` and a method ``score_answers(answers)``
mapping ONE question's K sampled answers (:class:`harness.metric_inputs.SampledAnswers`: ``texts``,
``embeddings`` ``[K, d]`` middle-layer hidden states, ``token_logprobs``) to a float oriented "higher =
more likely a hallucination"; its ``compute(GenerationsInputs)`` is the mean score over the questions.
The suite finds detectors by name in the metrics registry (``detectors`` config; default = every
registered metric with ``detector = True``), scores every question with each, and computes
``hallucination_rate`` and ``hallucination_auroc`` from :class:`~harness.metric_inputs.GenerationsInputs`.

Names: the ``hd_`` prefix keeps them apart from the older ``hallucination`` plugin's metrics.
The maths is in :mod:`.scores` (numpy), the sampler in :mod:`.sampling` (torch), imported lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.datasets import DatasetRef, dataset_field
from harness.metric_inputs import GenerationsInputs, SampledAnswers
from harness.metric_selection import SelectsMetrics, extra_metric_names, keep
from harness.protocols import Metric, ReportedMetric, Suite
from harness.results import MetricValue, SuiteOutput
from harness.stats import binomial_stderr, mean_stderr

from .questions import QA_PROMPT, WORLD_SPLITS, qa_prompt_problems

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import CellContext


def _questions(inputs: GenerationsInputs, metric: str) -> Sequence[SampledAnswers]:
    if not inputs.samples:
        raise ValueError(f"detector {metric!r} needs GenerationsInputs.samples (K sampled answers per question); got none.")
    return inputs.samples


class _Detector(Metric):
    scope = "generations"
    detector: ClassVar[bool] = True
    higher_is_better = True  # the raw score; detectors are ranked by hallucination_auroc
    descriptive = True
    #: Field of :class:`SampledAnswers` the score reads.
    needs: ClassVar[str] = "embeddings"
    #: Function of :mod:`.scores` computing the score; the detector's config fields are its keyword arguments.
    score_fn: ClassVar[str]

    def score(self, x: Any) -> float:
        from . import scores

        return float(getattr(scores, self.score_fn)(x, **self.config.model_dump()))

    def score_answers(self, answers: SampledAnswers) -> float:
        """The score of ONE question's K sampled answers."""
        return self.score(getattr(answers, self.needs))

    def compute(self, inputs: GenerationsInputs) -> MetricValue:
        qs = _questions(inputs, self.name)
        vals = [self.score_answers(q) for q in qs]
        return self.value(sum(vals) / len(vals), key=inputs.key, n=len(vals))


class EigenScore(_Detector):
    name = "hd_eigenscore"
    description = "INSIDE EigenScore (1/K) log det(Z^T J Z/(d-1) + alpha I) of K answers' middle-layer embeddings (exact)."
    paper = "arXiv:2402.03744"
    unit = "nats"

    class Config(PluginConfig):
        alpha: float = Field(1e-3, gt=0, description="Regulariser alpha added to the covariance (INSIDE: 1e-3).")
    score_fn = "eigenscore"


class EfficientEigenScore(_Detector):
    name = "hd_efficient_eigenscore"
    description = "Efficient EigenScore (SeND): Chebyshev moments x Hutchinson probes estimate of the EigenScore."
    paper = "arXiv:2410.15460"
    unit = "nats"

    class Config(PluginConfig):
        alpha: float = Field(1e-3, gt=0, description="Regulariser alpha added to the covariance.")
        n_probes: int = Field(20, ge=1, description="Hutchinson probe vectors N_z (paper: 20).")
        n_moments: int = Field(20, ge=2, description="Chebyshev moments M (paper: 20).")
        seed: int = Field(0, description="Seed of the probes and the power iteration.")
    score_fn = "efficient_eigenscore"


class Perplexity(_Detector):
    name = "hd_perplexity"
    description = "Mean perplexity of the K sampled answers (baseline detector)."
    unit = "perplexity"
    needs = "token_logprobs"
    score_fn = "perplexity"


class PredictiveEntropy(_Detector):
    name = "hd_predictive_entropy"
    description = "Length-normalised predictive entropy of the K sampled answers (baseline detector)."
    paper = "arXiv:2002.07650"
    unit = "nats / token"
    needs = "token_logprobs"
    score_fn = "predictive_entropy"


class LexicalSimilarity(_Detector):
    name = "hd_lexical_similarity"
    description = "Negated mean pairwise ROUGE-L F1 between the K sampled answers (baseline detector)."
    unit = "-ROUGE-L"
    needs = "texts"
    score_fn = "lexical_similarity"


DETECTORS = (EigenScore, EfficientEigenScore, Perplexity, PredictiveEntropy, LexicalSimilarity)


class HallucinationAUROC(Metric):
    name = "hallucination_auroc"
    description = "AUROC of a detector's score for predicting that the greedy answer is wrong (key = detector)."
    higher_is_better = True
    scope = "generations"
    unit = "AUROC"
    chance = 0.5

    def compute(self, inputs: GenerationsInputs) -> list[MetricValue]:
        """One value per detector in ``inputs.scores`` (bootstrap stderr, 200 resamples, seed 0); none when
        the labels hold one class (the AUROC is undefined: the suite notes why)."""
        from .splits import auroc_value, undefined_reason

        if not inputs.scores:
            raise ValueError("hallucination_auroc needs GenerationsInputs.scores (detector name -> score per question).")
        y = inputs.labels
        if undefined_reason(y):
            return []
        out = []
        for name, s in inputs.scores.items():
            a, se = auroc_value(s, y)
            out.append(self.value(a, key=name, stderr=se, n=len(s)))
        return out


class HallucinationAUROCWithin(Metric):
    name = "hallucination_auroc_within"
    description = (
        "AUROC of a detector within one question split (key = detector:split): what it sees beyond how "
        "familiar the question is."
    )
    higher_is_better = True
    scope = "generations"
    unit = "AUROC"
    chance = 0.5
    #: Which values of :func:`.splits.within_split` this metric reports: the splits, or their mean.
    mean: ClassVar[bool] = False

    def compute(self, inputs: GenerationsInputs) -> list[MetricValue]:
        """Per detector in ``inputs.scores`` and split in ``inputs.tags``: the AUROC over that split's
        questions (left out where a split holds one label class; bootstrap stderr)."""
        from .splits import within_split

        if not inputs.scores:
            raise ValueError(f"{self.name} needs GenerationsInputs.scores (detector -> score per question).")
        if not inputs.tags:
            raise ValueError(f"{self.name} needs GenerationsInputs.tags (one split per question); questions "
                             "without tags have no within-split AUROC: leave the metric out.")
        out = []
        for name, s in inputs.scores.items():
            values, _ = within_split(s, inputs.labels, inputs.tags)
            out += [self.value(a, key=name if self.mean else f"{name}:{tag}", stderr=se, n=n)
                    for tag, (a, se, n) in values.items() if (tag == "mean") == self.mean]
        return out


class HallucinationAUROCWithinMean(HallucinationAUROCWithin):
    name = "hallucination_auroc_within_mean"
    description = ("Mean over the question splits of a detector's AUROC within each split (key = detector; splits "
                   "with one label class left out); chance 0.5 for a detector that detects familiarity only.")
    mean = True


class FamiliarityAUROC(Metric):
    name = "familiarity_auroc"
    description = (
        "Reference, not a detector: pooled AUROC of the score 'the question's split' (each question scored by its "
        "split's hallucination rate, the best a split-only score can do); within each split it is 0.5."
    )
    higher_is_better = True
    descriptive = True  # a reference for the detectors' pooled AUROC, not a score of the model
    scope = "generations"
    unit = "AUROC"
    chance = 0.5

    def compute(self, inputs: GenerationsInputs) -> list[MetricValue]:
        """The pooled AUROC of :func:`.splits.familiarity_scores` (none when the labels hold one class)."""
        from .splits import auroc_value, familiarity_scores, undefined_reason

        if not inputs.tags:
            raise ValueError("familiarity_auroc needs GenerationsInputs.tags (one split per question).")
        if undefined_reason(inputs.labels):
            return []
        a, se = auroc_value(familiarity_scores(inputs.labels, inputs.tags), inputs.labels)
        return [self.value(a, key=inputs.key, stderr=se, n=len(inputs.labels))]


class EESRelativeError(ReportedMetric):
    """Reported: the suite compares EES with the exact EigenScore on every question it scored."""

    name = "ees_relative_error"
    description = "Mean relative error |EES - exact| / |exact| of the Efficient EigenScore over the cell's questions."
    higher_is_better = False
    descriptive = True  # the estimator's accuracy at its configured moments, not a score of the model
    scope = "generations"
    unit = "fraction"


class DetectorMs(ReportedMetric):
    """Reported: the suite times each detector (``value(1000 * seconds / n, key=detector, n=n)``)."""

    name = "hallucination_detector_ms"
    description = "Detector compute time per question (K samples), milliseconds (key = detector)."
    higher_is_better = False
    descriptive = True  # a cost that depends on the machine and its load, reported next to the scores
    scope = "generations"
    unit = "ms"


class HallucinationRate(Metric):
    name = "hallucination_rate"
    description = "Fraction of questions whose greedy answer (normalised) differs from the true answer."
    higher_is_better = False
    scope = "generations"
    unit = "fraction"

    def compute(self, inputs: GenerationsInputs) -> MetricValue:
        y = [float(v) for v in inputs.labels]
        n = len(y)
        if n == 0:
            raise ValueError("hallucination_rate needs at least one question (GenerationsInputs.labels is empty).")
        p = sum(y) / n
        return self.value(p, key=inputs.key, stderr=binomial_stderr(p, n), n=n)


def generations_inputs(qs: Sequence[Any], *, seed: int, device: str, key: str | None = None,
                       scores: dict[str, list[float]] | None = None, tags: Sequence[str] = ()) -> GenerationsInputs:
    """:class:`GenerationsInputs` of sampled questions (:class:`.sampling.QuestionSamples`), with their
    split ``tags`` (one per question, or none)."""
    return GenerationsInputs(
        prompts=[q.prompt for q in qs], answers=[q.greedy for q in qs], truths=[q.truth for q in qs],
        labels=[int(q.hallucinated) for q in qs],
        samples=[SampledAnswers(texts=q.texts, embeddings=q.embeddings, token_logprobs=q.token_logprobs) for q in qs],
        scores=scores or {}, key=key, tags=tuple(tags), seed=seed, device=device,
    )  # fmt: skip


PRESETS: dict[str, dict[str, int]] = {
    "quick": {"questions_per_split": 30, "k": 8},
    "full": {"questions_per_split": 130, "k": 16},
}


class HallucinationDetectionSuite(Suite):
    name = "hallucination_detection"
    description = (
        "Questions (the zoo world's facts, frequent/rare/heldout, or a QA set: qa); greedy answer judged against "
        "the answer aliases; every detector scores K sampled answers; AUROC for predicting a wrong answer, pooled "
        "and within each split, next to the familiarity-only reference (the split label alone)."
    )
    paper = "arXiv:2402.03744"
    method_kinds = ()
    include_baseline = True
    metrics = ("hallucination_auroc", "hallucination_auroc_within_mean", "hallucination_auroc_within",
               "familiarity_auroc", "hallucination_detector_ms", "ees_relative_error", "hallucination_rate")
    version = "2"  # within-split AUROC, familiarity reference, EES error; undefined AUROCs left out with a note
    default_seeds = (0, 1, 2)
    default_models = ("zoo:zoo-96",)

    class Config(SelectsMetrics):
        metric_scope = "generations"  # registered computed generations metrics are columns (metrics: include/exclude)

        @classmethod
        def not_extra(cls, metric_cls: type[Any]) -> bool:
            """Detectors (``detector = True``) are scored through hallucination_auroc, not as columns."""
            return bool(getattr(metric_cls, "detector", False))

        preset: Literal["quick", "full"] = Field(
            "quick", description="'quick' (30 questions per split, K=8; seconds) or 'full' (130 per split, K=16)."
        )
        questions_per_split: int | None = Field(None, ge=2, description="Questions from each split; None = preset.")
        k: int | None = Field(None, ge=2, description="Sampled answers per question; None = preset.")
        qa: DatasetRef = dataset_field(
            "qa", "Questions with answer aliases and an optional tag column (the split); default: the world's facts."
        )
        qa_prompt: str = Field(
            QA_PROMPT, description="Prompt of a user QA set's question ({question} is replaced; the world's facts are "
            "prompts already)."
        )
        splits: tuple[str, ...] | None = Field(
            None, description="Splits (tags) asked; None = the world's frequent, rare and heldout facts, or every tag "
            "of a user QA set (an untagged set: every question, no split columns)."
        )
        temperature: float = Field(1.0, gt=0, description="Sampling temperature of the K answers.")
        max_new_tokens: int = Field(4, ge=1, description="Tokens generated per answer (cut at '.' / newline).")
        pooling: Literal["last", "mean"] = Field("last", description="Embedding: last answer token or mean over them.")
        detectors: tuple[str, ...] | None = Field(
            None, description="Detector metric names; None = every registered metric with detector = True."
        )
        ees_moments: int = Field(
            20, ge=2, description="Chebyshev moments M of hd_efficient_eigenscore (paper: 20). Its error against the "
            "exact EigenScore falls with M (ees_relative_error; on zoo-96, K = 8: 0.15 at M = 20, 0.03 at 80)."
        )

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """``qa_prompt`` must format with ``{question}``."""
        return qa_prompt_problems(config.qa_prompt)

    def run(self, cell: CellContext) -> SuiteOutput:
        import dataclasses
        import random
        from collections import Counter

        from .questions import open_qa, sample_per_tag, tags_asked, user_questions, world_questions
        from .sampling import sample_prompts
        from .splits import auroc_notes

        cfg = cell.suite_config
        n_q = cfg.questions_per_split or PRESETS[cfg.preset]["questions_per_split"]
        k = cfg.k or PRESETS[cfg.preset]["k"]
        rng = random.Random(cell.seed)
        qa, world = open_qa(cell, cfg.qa)
        if world is not None:  # the world's facts, sampled as before the data sets existed
            questions = world_questions(world, cfg.splits or WORLD_SPLITS, n_q, rng)
        else:
            every = user_questions(qa, cfg.qa_prompt)
            questions = sample_per_tag(every, tags_asked(every, cfg.splits), n_q, rng)
        tags = [q.tag for q in questions] if questions and questions[0].tag is not None else []
        qs = sample_prompts(cell.load_model(), [q.prompt for q in questions], [q.answers for q in questions], k=k,
                            temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, pooling=cfg.pooling,
                            seed=cell.seed, progress=cell.progress)
        labels = [int(q.hallucinated) for q in qs]
        inputs = generations_inputs(qs, seed=cell.seed, device=cell.device, tags=tags)
        scores, ms = _score_detectors(cell, inputs)
        inputs = dataclasses.replace(inputs, scores=scores)
        rate = cell.compute_metrics(inputs, keep(cfg, ["hallucination_rate"]))
        split_metrics = ["hallucination_auroc_within_mean", "hallucination_auroc_within", "familiarity_auroc"]
        aurocs = cell.compute_metrics(inputs, keep(cfg, ["hallucination_auroc", *(split_metrics if tags else [])]))
        out = [*rate, *aurocs, *ms, *_ees_error(cell, inputs)]
        out += cell.compute_metrics(inputs, extra_metric_names(cfg, cell.registries))  # a third party's metrics
        details = {"questions": len(qs), "k": k, "hallucinated": sum(labels), "splits": dict(Counter(tags)),
                   "d": int(qs[0].embeddings.shape[1]) if qs else None,
                   "examples": [{"prompt": q.prompt, "truth": q.truth, "greedy": q.greedy, "samples": q.texts}
                                for q in qs[:: max(1, len(qs) // 6)]]}
        return SuiteOutput(metrics=out, details=details, notes=auroc_notes(labels, tags))

    @classmethod
    def summarize(cls, records: list[Any], out_dir: Any) -> str | None:
        """Per model: the detectors as rows (pooled and within-split AUROC, time) with the
        familiarity-only reference as an unranked row, and EES's error and time against exact."""
        from .summary import detector_table

        return detector_table(records)


def _detector(cell: CellContext, name: str) -> Any:
    """An instance of detector ``name``; hd_efficient_eigenscore with the suite's ``ees_moments``."""
    if name == EfficientEigenScore.name:
        return cell.registries.metrics.get(name)({"n_moments": cell.suite_config.ees_moments})
    det = cell.metric(name)
    if not callable(getattr(det, "score_answers", None)):
        raise TypeError(f'detector "{name}" has no score_answers(answers) method (the detector protocol: '
                        "one question's SampledAnswers -> float).")
    return det


def _score_detectors(cell: CellContext, inputs: GenerationsInputs) -> tuple[dict[str, list[float]], list[MetricValue]]:
    """Every configured detector's score per question, and its time per question (``hallucination_detector_ms``,
    wall time of scoring all questions after one untimed warm-up call)."""
    import time

    cfg, reg = cell.suite_config, cell.registries.metrics
    own = [d.name for d in DETECTORS]
    names = cfg.detectors or own + sorted(n for n in reg.names() if n not in own and getattr(reg.get(n), "detector", False))
    scores: dict[str, list[float]] = {}
    ms: list[MetricValue] = []
    ms_m, n = cell.metric("hallucination_detector_ms"), len(inputs.samples)
    for name in dict.fromkeys(names):  # each detector once (its AUROC is keyed by name)
        det = _detector(cell, name)
        if inputs.samples:  # one untimed call: first-call costs (imports, LAPACK set-up) are not per question
            det.score_answers(inputs.samples[0])
        t0 = time.perf_counter()
        scores[name] = [float(det.score_answers(a)) for a in inputs.samples]
        ms.append(ms_m.value(1000.0 * (time.perf_counter() - t0) / n, key=name, n=n))
    return scores, ms


def _ees_error(cell: CellContext, inputs: GenerationsInputs) -> list[MetricValue]:
    """``ees_relative_error``: |EES - exact| / |exact| per question (same alpha), averaged; none without EES."""
    from .scores import eigenscore

    ees = inputs.scores.get(EfficientEigenScore.name)
    if ees is None:
        return []
    alpha = _detector(cell, EfficientEigenScore.name).config.alpha
    exact = [eigenscore(a.embeddings, alpha=alpha) for a in inputs.samples]
    rel = [abs(e - x) / abs(x) for e, x in zip(ees, exact) if x != 0.0]
    if not rel:
        return []
    return [cell.metric("ees_relative_error").value(sum(rel) / len(rel), stderr=mean_stderr(rel), n=len(rel))]


@hookimpl
def register_metrics(register):
    for cls in (*DETECTORS, HallucinationAUROC, HallucinationAUROCWithin, HallucinationAUROCWithinMean,
                FamiliarityAUROC, DetectorMs, EESRelativeError,
                HallucinationRate):
        register(cls)


@hookimpl
def register_suites(register):
    register(HallucinationDetectionSuite)
