"""Hallucination detectors (metric plugins) and the suite "hallucination_detection".

Detector protocol (third-party detectors join by declaring the same): a Metric with
``scope = "generations"`` and class attribute ``detector = True`` whose ``compute(inputs)`` maps ONE
question's K sampled answers to a float score oriented "higher = more likely a hallucination".
Inputs: ``embeddings`` (array ``[K, d]``: middle-layer hidden states of each answer), ``token_logprobs``
(K lists of the answer tokens' log-probs), ``texts`` (K answer strings); a detector reads what it needs.
The suite finds detectors by name in the metrics registry (``detectors`` config; default = every
registered metric with ``detector = True``).

Names: the ``hd_`` prefix keeps them apart from the older ``hallucination`` plugin's metrics.
The maths is in :mod:`.scores` (numpy), the sampler in :mod:`.sampling` (torch), imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.protocols import Metric, Suite
from harness.results import MetricValue, SuiteOutput


def _need(inputs: Mapping[str, Any], key: str, metric: str) -> Any:
    if key not in inputs:
        raise KeyError(f"detector {metric!r} needs input {key!r} (one question's K samples); got {sorted(inputs)}.")
    return inputs[key]


class _Detector(Metric):
    scope = "generations"
    detector: ClassVar[bool] = True
    higher_is_better = True  # the raw score; detectors are ranked by hallucination_auroc
    needs: ClassVar[str] = "embeddings"
    #: Function of :mod:`.scores` computing the score; the detector's config fields are its keyword arguments.
    score_fn: ClassVar[str]

    def score(self, x: Any) -> float:
        from . import scores

        return float(getattr(scores, self.score_fn)(x, **self.config.model_dump()))

    def compute(self, inputs: Mapping[str, Any]) -> MetricValue:
        x = _need(inputs, self.needs, self.name)
        return self.value(self.score(x), key=inputs.get("key"), n=len(x))


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

    def compute(self, inputs: Mapping[str, Any]) -> MetricValue:
        from .scores import auroc, bootstrap_stderr

        s, y = inputs["scores"], inputs["labels"]
        return self.value(auroc(s, y), key=inputs.get("key"), stderr=bootstrap_stderr(s, y), n=len(s))


class DetectorMs(Metric):
    name = "hallucination_detector_ms"
    description = "Detector compute time per question (K samples), milliseconds (key = detector)."
    higher_is_better = False
    scope = "generations"
    unit = "ms"

    def compute(self, inputs: Mapping[str, Any]) -> MetricValue:
        return self.value(1000.0 * inputs["seconds"] / inputs["n"], key=inputs.get("key"), n=inputs["n"])


class HallucinationRate(Metric):
    name = "hallucination_rate"
    description = "Fraction of questions whose greedy answer (normalised) differs from the true answer."
    higher_is_better = False
    scope = "generations"
    unit = "fraction"

    def compute(self, inputs: Mapping[str, Any]) -> MetricValue:
        y = [float(v) for v in inputs["labels"]]
        n = len(y)
        p = sum(y) / n
        return self.value(p, key=inputs.get("key"), stderr=(p * (1 - p) / n) ** 0.5, n=n)


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

    class Config(PluginConfig):
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

    def run(self, cell: Any) -> SuiteOutput:
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
        out = [cell.metric("hallucination_rate").compute({"labels": labels})]
        auroc_m, ms_m = cell.metric("hallucination_auroc"), cell.metric("hallucination_detector_ms")
        for name in names:
            det = cell.metric(name)
            t0 = time.perf_counter()
            s = [_as_float(det.compute({"embeddings": q.embeddings, "token_logprobs": q.token_logprobs,
                                        "texts": q.texts})) for q in qs]
            dt = time.perf_counter() - t0
            out.append(auroc_m.compute({"scores": s, "labels": labels, "key": name}))
            out.append(ms_m.compute({"seconds": dt, "n": len(qs), "key": name}))
        details = {"questions": len(qs), "k": k, "hallucinated": sum(labels),
                   "examples": [{"prompt": q.prompt, "truth": q.truth, "greedy": q.greedy, "samples": q.texts}
                                for q in qs[:: max(1, len(qs) // 6)]]}
        return SuiteOutput(metrics=out, details=details)


def _as_float(v: Any) -> float:
    return float(v.value if isinstance(v, MetricValue) else v)


@hookimpl
def register_metrics(register):
    for cls in (*DETECTORS, HallucinationAUROC, DetectorMs, HallucinationRate):
        register(cls)


@hookimpl
def register_suites(register):
    register(HallucinationDetectionSuite)
