"""Streaming effective-feature count F = exp(H(p)) over latent activations (Bereska et al. 2025).

``p_i = sum_s |z_is| / sum_j sum_s |z_js|`` is the share of latent i in the total activation
mass; ``H = -sum_i p_i ln p_i`` (0 ln 0 = 0); ``F = exp(H)`` lies in ``[1, d_sae]``; the
superposition ratio is ``psi = F / n_neurons``. Only the per-latent mass is kept, so any
number of samples can be streamed through :meth:`EffectiveFeatureCounter.update`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["EffectiveFeatureCounter", "EffectiveFeatures", "effective_features", "entropy_of_mass"]


def entropy_of_mass(mass: torch.Tensor) -> float:
    """Shannon entropy (nats) of the distribution proportional to the non-negative ``mass``."""
    mass = mass.double()
    total = float(mass.sum())
    if total <= 0.0:
        return 0.0  # no activation at all: F = 1 by convention (nothing resolved)
    p = mass[mass > 0] / total
    return float(-(p * p.log()).sum())


@dataclass(frozen=True)
class EffectiveFeatures:
    """Result of a count: F, its entropy, psi (when the neuron count is known) and a trace."""

    F: float
    entropy: float
    n_samples: int
    n_latents: int
    n_neurons: int | None = None
    #: (samples seen, F at that point) at the requested checkpoints, plus the final count.
    convergence: tuple[tuple[int, float], ...] = field(default=())

    @property
    def psi(self) -> float | None:
        """Superposition ratio F / n_neurons (None when n_neurons is unknown)."""
        return self.F / self.n_neurons if self.n_neurons else None


class EffectiveFeatureCounter:
    """Accumulates per-latent activation mass; ``result()`` gives F at any time.

    ``update(z)`` takes latents ``[..., d_sae]`` (any leading shape; one sample per row of
    the flattened leading dims). ``checkpoints`` are sample counts at which F is recorded
    (at batch granularity: the first update whose running count reaches a checkpoint).
    """

    def __init__(self, n_neurons: int | None = None, checkpoints: Sequence[int] = ()) -> None:
        self.n_neurons = n_neurons
        self.checkpoints = sorted(int(c) for c in checkpoints)
        self.mass: torch.Tensor | None = None
        self.n_samples = 0
        self._trace: list[tuple[int, float]] = []
        self._next = 0

    def update(self, z: Any) -> EffectiveFeatureCounter:
        z = torch.as_tensor(z).detach()
        if z.ndim == 0:
            raise ValueError("update() needs latents [..., d_sae], got a scalar.")
        flat = z.reshape(-1, z.shape[-1])
        batch_mass = flat.abs().sum(0, dtype=torch.float64).cpu()
        if self.mass is None:
            self.mass = batch_mass
        elif self.mass.shape != batch_mass.shape:
            raise ValueError(f"latent width changed from {self.mass.shape[0]} to {batch_mass.shape[0]}.")
        else:
            self.mass += batch_mass
        self.n_samples += flat.shape[0]
        crossed = False
        while self._next < len(self.checkpoints) and self.n_samples >= self.checkpoints[self._next]:
            self._next += 1
            crossed = True
        if crossed:
            self._trace.append((self.n_samples, math.exp(entropy_of_mass(self.mass))))
        return self

    def update_all(self, batches: Iterable[Any]) -> EffectiveFeatureCounter:
        for z in batches:
            self.update(z)
        return self

    def result(self) -> EffectiveFeatures:
        if self.mass is None:
            raise ValueError("No latents seen: call update(z) at least once before result().")
        h = entropy_of_mass(self.mass)
        trace = list(self._trace)
        if not trace or trace[-1][0] != self.n_samples:
            trace.append((self.n_samples, math.exp(h)))
        return EffectiveFeatures(
            F=math.exp(h), entropy=h, n_samples=self.n_samples, n_latents=int(self.mass.shape[0]),
            n_neurons=self.n_neurons, convergence=tuple(trace),
        )  # fmt: skip


def effective_features(z: Any, n_neurons: int | None = None) -> EffectiveFeatures:
    """F of one tensor of latents ``[..., d_sae]`` held in memory (the batch computation)."""
    return EffectiveFeatureCounter(n_neurons).update(z).result()


def count_through(
    learner: Any,
    batches: Iterable[Any],
    *,
    n_neurons: int | None = None,
    checkpoints: Sequence[int] = (),
) -> EffectiveFeatures:
    """Stream input batches ``x`` through ``learner.encode`` (no grad) into a counter.

    ``learner`` is anything with ``encode(x) -> z`` (every registered dictionary learner); a
    learner that is a ``torch.nn.Module`` is put in eval mode for the count.
    """
    counter = EffectiveFeatureCounter(n_neurons, checkpoints)
    was_training = getattr(learner, "training", None)
    if was_training:
        learner.eval()
    try:
        with torch.no_grad():
            for x in batches:
                counter.update(learner.encode(x))
    finally:
        if was_training:
            learner.train()
    return counter.result()
