"""SAEBench's detection scoring loop: sample alive latents, explain, predict, score (torch imported here)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .examples import LatentExamples, gather_examples, latent_activations
from .judges import BaselineJudge, HFChatJudge, Judge, OpenAIJudge


@dataclass(frozen=True)
class LatentScore:
    """One scored latent: its explanation, predictions and the two scores."""

    latent: int
    explanation: str
    predictions: tuple[bool, ...]
    labels: tuple[bool, ...]
    accuracy: float
    balanced_accuracy: float


@dataclass(frozen=True)
class DetectionResult:
    """Per-latent scores plus how many sampled latents had no usable examples or judge answer."""

    scores: tuple[LatentScore, ...]
    n_alive: int
    n_without_examples: int
    n_unparsed: int

    def mean(self, attr: str) -> float:
        return sum(getattr(s, attr) for s in self.scores) / len(self.scores)

    def stderr(self, attr: str) -> float | None:
        n = len(self.scores)
        if n < 2:
            return None
        m = self.mean(attr)
        return math.sqrt(sum((getattr(s, attr) - m) ** 2 for s in self.scores) / (n - 1) / n)


def detection_scores(predictions: list[bool], labels: list[bool]) -> tuple[float, float]:
    """``(accuracy, balanced accuracy)``: SAEBench's score is the accuracy over the scoring windows; the
    balanced accuracy is the mean of the true-positive and true-negative rates (chance 0.5 whatever the
    share of active windows; the rate of the one class present when the other is absent)."""
    if len(predictions) != len(labels) or not labels:
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} windows")
    acc = sum(p == y for p, y in zip(predictions, labels)) / len(labels)
    pos = [p for p, y in zip(predictions, labels) if y]
    neg = [not p for p, y in zip(predictions, labels) if not y]
    rates = [sum(r) / len(r) for r in (pos, neg) if r]
    return acc, sum(rates) / len(rates)


def make_judge(cfg: Any, decode: Any, device: str) -> Judge:
    """The judge ``cfg.judge`` names, with its settings."""
    if cfg.judge == "baseline":
        return BaselineJudge(cfg.baseline_tokens, decode)
    if cfg.judge == "openai":
        return OpenAIJudge(cfg.openai, decode, cfg.explanation_tokens, cfg.prediction_tokens)
    return HFChatJudge(cfg.hf_chat, decode, cfg.explanation_tokens, cfg.prediction_tokens, device=device)


def decoder_of(tokenizer: Any) -> Any:
    """Token id -> its text (the judge's view of a token)."""
    if tokenizer is None:
        return lambda t: f"<{t}>"
    return lambda t: tokenizer.decode([int(t)])


def sample_latents(latents: torch.Tensor, cfg: Any, gen: torch.Generator) -> tuple[list[int], int]:
    """``(sampled latents, number alive)``: alive = fires on more than ``min_firings`` held-out tokens."""
    firings = (latents > 0).flatten(0, 1).sum(0)
    alive = torch.nonzero(firings > cfg.min_firings).flatten()
    if alive.numel() <= cfg.n_latents:
        return alive.tolist(), int(alive.numel())
    pick = torch.randperm(alive.numel(), generator=gen)[: cfg.n_latents]
    return sorted(alive[pick].tolist()), int(alive.numel())


def run_detection(tokens: torch.Tensor, latents: torch.Tensor, judge: Judge, cfg: Any, seed: int) -> DetectionResult:
    """Score ``cfg.n_latents`` sampled alive latents of ``latents`` ``[N, T, d_sae]`` with ``judge``."""
    gen = torch.Generator().manual_seed(seed)
    chosen, n_alive = sample_latents(latents, cfg, gen)
    examples: list[LatentExamples] = []
    missing = 0
    for j in chosen:
        ex = gather_examples(tokens, latents[..., j], j, cfg, gen)
        if ex is None:
            missing += 1
        else:
            examples.append(ex)
    scores, unparsed = [], 0
    for ex in examples:
        explanation = judge.explain(ex.generation)
        predictions = judge.predict(explanation, ex.scoring)
        if predictions is None:
            unparsed += 1
            continue
        labels = [w.is_active for w in ex.scoring]
        acc, bal = detection_scores(predictions, labels)
        scores.append(LatentScore(ex.latent, explanation, tuple(predictions), tuple(labels), acc, bal))
    return DetectionResult(tuple(scores), n_alive, missing, unparsed)


def autointerp(inputs: Any, cfg: Any) -> DetectionResult:
    """Run the detection score on :class:`~harness.metric_inputs.SAEInputs` with config ``cfg``."""
    tokens, latents = latent_activations(inputs.model, inputs.sae, inputs.hook_point, list(inputs.token_batches))
    judge = make_judge(cfg, decoder_of(getattr(inputs.model, "tokenizer", None)), str(inputs.device))
    return run_detection(tokens, latents, judge, cfg, seed=cfg.seed + 1_000_003 * int(inputs.seed))
