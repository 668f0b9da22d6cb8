"""The toy-model checks: F vs ground truth over a sparsity sweep, and F vs dropout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from harness_plugins.effective_features.counter import EffectiveFeatureCounter, entropy_of_mass

from .fitting import batches, fit_learner, make_learner
from .toy import ToyBatch


@dataclass
class SaeBudget:
    samples: int
    epochs: int
    batch_size: int
    lr: float | None


def features_through_learner(
    toys: ToyBatch, method: Any, budget: SaeBudget, seed: int, indices: list[int] | None = None
) -> tuple[list[float], list[dict[str, float]]]:
    """For each toy model: sample hidden activations, train a fresh learner, count F on them."""
    gen = torch.Generator().manual_seed(seed + 1)
    idx = list(range(toys.n_models)) if indices is None else indices
    x = toys.sample_features(budget.samples, gen)[idx]
    h = torch.bmm(x, toys.W[idx].transpose(1, 2))  # [K, samples, m]
    F, logs = [], []
    for j in range(len(idx)):
        learner = make_learner(method, h.shape[-1], seed=seed + j)
        logs.append(fit_learner(learner, h[j], epochs=budget.epochs, batch_size=budget.batch_size, lr=budget.lr, seed=seed + j))
        counter = EffectiveFeatureCounter(n_neurons=h.shape[-1])
        with torch.no_grad():
            for xb in batches(h[j]):
                counter.update(learner.encode(xb))
        F.append(counter.result().F)
    return F, logs


def features_from_weights(toys: ToyBatch) -> list[float]:
    """F with p_i proportional to the embedding column norms ||W_i|| (no dictionary)."""
    return [math.exp(entropy_of_mass(norms)) for norms in toys.column_norms()]


def normalized(h: torch.Tensor) -> torch.Tensor:
    """``h`` scaled so that E||x||^2 = d (as the layer-wise profile does; a tied SAE's l1 is scale-dependent)."""
    return h * (h.shape[1] / h.pow(2).sum(1).mean().clamp_min(1e-12)).sqrt()


def features_of(h: torch.Tensor, method: Any, budget: SaeBudget, seed: int) -> tuple[float, dict[str, float]]:
    """F of activations ``h`` [samples, N] through a fresh learner like ``method`` (None: the neuron
    basis), trained on ``budget.samples`` of them (all when fewer) and counted on all of them."""
    h = normalized(h.float())
    learner = make_learner(method, h.shape[-1], seed=seed)
    train = h[torch.randperm(h.shape[0], generator=torch.Generator().manual_seed(seed))[: budget.samples]]
    logs = fit_learner(learner, train, epochs=budget.epochs, batch_size=budget.batch_size, lr=budget.lr, seed=seed)
    counter = EffectiveFeatureCounter(n_neurons=h.shape[-1])
    with torch.no_grad():
        for xb in batches(h):
            counter.update(learner.encode(xb))
    return counter.result().F, logs
