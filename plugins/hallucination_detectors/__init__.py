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
from harness.metric_inputs import GenerationsInputs, SampledAnswers
from harness.metric_selection import SelectsMetrics, extra_metric_names, keep
from harness.protocols import Metric, ReportedMetric, Suite
from harness.results import MetricValue, SuiteOutput
from harness.stats import auroc, auroc_stderr, binomial_stderr

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
        """One value per detector in ``inputs.scores`` (bootstrap stderr, 200 resamples, seed 0)."""
        if not inputs.scores:
            raise ValueError("hallucination_auroc needs GenerationsInputs.scores (detector name -> score per question).")
        y = inputs.labels
        return [self.value(auroc(s, y), key=name, stderr=auroc_stderr(s, y), n=len(s)) for name, s in inputs.scores.items()]


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
                       scores: dict[str, list[float]] | None = None) -> GenerationsInputs:
    """:class:`GenerationsInputs` of sampled questions (:class:`.sampling.QuestionSamples`)."""
    return GenerationsInputs(
        prompts=[q.prompt for q in qs], answers=[q.greedy for q in qs], truths=[q.truth for q in qs],
        labels=[int(q.hallucinated) for q in qs],
        samples=[SampledAnswers(texts=q.texts, embeddings=q.embeddings, token_logprobs=q.token_logprobs) for q in qs],
        scores=scores or {}, key=key, seed=seed, device=device,
    )  # fmt: skip


PRESETS: dict[str, dict[str, int]] = {
    "quick": {"questions_per_split": 30, "k": 8},
    "full": {"questions_per_split": 130, "k": 16},
}


class HallucinationDetectionSuite(Suite):
    name = "hallucination_detection"
    description = (
        "Questions about the zoo world's facts (frequent/rare/heldout); greedy answer judged against the "
        "truth; every detector scores K sampled answers; AUROC for predicting a wrong answer."
    )
    paper = "arXiv:2402.03744"
    method_kinds = ()
    include_baseline = True
    metrics = ("hallucination_auroc", "hallucination_detector_ms", "hallucination_rate")
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
        splits: tuple[str, ...] = Field(("frequent", "rare", "heldout"), description="World fact splits asked.")
        temperature: float = Field(1.0, gt=0, description="Sampling temperature of the K answers.")
        max_new_tokens: int = Field(4, ge=1, description="Tokens generated per answer (cut at '.' / newline).")
        pooling: Literal["last", "mean"] = Field("last", description="Embedding: last answer token or mean over them.")
        detectors: tuple[str, ...] | None = Field(
            None, description="Detector metric names; None = every registered metric with detector = True."
        )

    def run(self, cell: CellContext) -> SuiteOutput:
        import dataclasses
        import random
        import time

        from harness.zoo import World

        from .sampling import sample_facts

        cfg = cell.suite_config
        n_q = cfg.questions_per_split or PRESETS[cfg.preset]["questions_per_split"]
        k = cfg.k or PRESETS[cfg.preset]["k"]
        world, rng = World(seed=0), random.Random(cell.seed)
        facts = []
        for split in cfg.splits:
            pool = world.facts_by_split(split)
            facts += rng.sample(pool, min(n_q, len(pool)))
        qs = sample_facts(cell.load_model(), facts, k=k, temperature=cfg.temperature,
                          max_new_tokens=cfg.max_new_tokens, pooling=cfg.pooling, seed=cell.seed,
                          progress=cell.progress)
        labels = [int(q.hallucinated) for q in qs]
        reg = cell.registries.metrics
        own = [d.name for d in DETECTORS]
        names = cfg.detectors or own + sorted(
            n for n in reg.names() if n not in own and getattr(reg.get(n), "detector", False)
        )
        inputs = generations_inputs(qs, seed=cell.seed, device=cell.device)
        scores: dict[str, list[float]] = {}
        ms: list[MetricValue] = []
        ms_m = cell.metric("hallucination_detector_ms")
        for name in dict.fromkeys(names):  # each detector once (its AUROC is keyed by name)
            det = cell.metric(name)
            if not callable(getattr(det, "score_answers", None)):
                raise TypeError(f'detector "{name}" has no score_answers(answers) method (the detector protocol: '
                                "one question's SampledAnswers -> float).")
            t0 = time.perf_counter()
            scores[name] = [float(det.score_answers(a)) for a in inputs.samples]
            dt = time.perf_counter() - t0
            ms.append(ms_m.value(1000.0 * dt / len(qs), key=name, n=len(qs)))
        inputs = dataclasses.replace(inputs, scores=scores)
        rate = cell.compute_metrics(inputs, keep(cfg, ["hallucination_rate"]))
        aurocs = cell.compute_metrics(inputs, keep(cfg, ["hallucination_auroc"]))
        out = [*rate, *(v for pair in zip(aurocs, ms) for v in pair)] if aurocs else [*rate, *ms]
        out += cell.compute_metrics(inputs, extra_metric_names(cfg, cell.registries))  # a third party's metrics
        details = {"questions": len(qs), "k": k, "hallucinated": sum(labels),
                   "examples": [{"prompt": q.prompt, "truth": q.truth, "greedy": q.greedy, "samples": q.texts}
                                for q in qs[:: max(1, len(qs) // 6)]]}
        return SuiteOutput(metrics=out, details=details)


@hookimpl
def register_metrics(register):
    for cls in (*DETECTORS, HallucinationAUROC, DetectorMs, HallucinationRate):
        register(cls)


@hookimpl
def register_suites(register):
    register(HallucinationDetectionSuite)
