"""Toy models of superposition (Elhage et al. 2022), trained as a batch of independent models.

Model k maps features x [n] to hidden h = W_k x [m] and back: x' = ReLU(W_k^T h + b_k).
Feature i has importance ``decay**i``; each feature is zero with probability S_k (its
sparsity) and U[0, 1] otherwise. Loss: importance-weighted MSE, sum over features, mean
over the batch; models are independent (separate parameters), so one Adam over the stacked
parameters trains them all at once. Optional dropout on h (training only) for the dropout
sweep. Ground truth: features whose embedding column has norm ``||W_i|| > threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ToyBatch:
    """K trained toy models: W [K, m, n], b [K, n], feature probabilities [K], dropout [K]."""

    W: torch.Tensor
    b: torch.Tensor
    feature_prob: torch.Tensor
    dropout: torch.Tensor
    importance: torch.Tensor
    final_loss: torch.Tensor

    @property
    def n_models(self) -> int:
        return self.W.shape[0]

    def represented(self, threshold: float = 0.5) -> torch.Tensor:
        """Ground-truth count per model: features with ||W_i|| > threshold."""
        return (self.W.norm(dim=1) > threshold).sum(-1)

    def column_norms(self) -> torch.Tensor:
        return self.W.norm(dim=1)

    def sample_features(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """x [K, n, n_features] with each model's sparsity."""
        return sample_features(self.feature_prob, n, self.W.shape[2], generator)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """h [K, B, m] for features x [K, B, n] (eval mode: no dropout)."""
        return torch.einsum("kmn,kbn->kbm", self.W, x)


def sample_features(feature_prob: torch.Tensor, batch: int, n_features: int, generator: torch.Generator) -> torch.Tensor:
    k = feature_prob.shape[0]
    # One uniform u per entry: the feature is on when u < p, and then u / p ~ U[0, 1].
    p = feature_prob.view(k, 1, 1)
    u = torch.rand(k, batch, n_features, generator=generator)
    return torch.where(u < p, u / p, torch.zeros((), dtype=u.dtype))


def train_toy_models(
    feature_prob: torch.Tensor,
    *,
    n_features: int = 20,
    n_hidden: int = 5,
    importance_decay: float = 0.7,
    dropout: torch.Tensor | None = None,
    steps: int = 3000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
) -> ToyBatch:
    """Train one toy model per entry of ``feature_prob`` (= 1 - sparsity), all at once."""
    gen = torch.Generator().manual_seed(seed)
    k = feature_prob.shape[0]
    feature_prob = feature_prob.float()
    dropout = torch.zeros(k) if dropout is None else dropout.float()
    importance = importance_decay ** torch.arange(n_features, dtype=torch.float32)
    std = (2.0 / (n_hidden + n_features)) ** 0.5  # Xavier-normal, as in Elhage et al.'s notebook
    W = (torch.randn(k, n_hidden, n_features, generator=gen) * std).requires_grad_()
    b = torch.zeros(k, n_features, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr)
    keep = (1.0 - dropout).view(k, 1, 1)
    use_dropout = bool((dropout > 0).any())
    loss_k = torch.zeros(k)
    for step in range(steps):
        x = sample_features(feature_prob, batch_size, n_features, gen)
        h = torch.bmm(x, W.transpose(1, 2))
        if use_dropout:
            mask = (torch.rand(h.shape, generator=gen) < keep).float()
            h = h * mask / keep.clamp_min(1e-6)
        out = torch.relu(torch.baddbmm(b[:, None, :], h, W))
        per_model = ((x - out).pow(2) * importance).sum(-1).mean(-1)  # [K]
        opt.zero_grad(set_to_none=True)
        per_model.sum().backward()
        opt.step()
        if step >= steps - 50:
            loss_k += per_model.detach() / 50
    return ToyBatch(W.detach(), b.detach(), feature_prob, dropout, importance, loss_k)


#: Toy batches already trained in this process, by everything that determines them (at most _SHARED_MAX).
_SHARED: dict[tuple[Any, ...], ToyBatch] = {}
_SHARED_MAX = 4


def train_toy_models_shared(feature_prob: torch.Tensor, **kwargs: Any) -> ToyBatch:
    """:func:`train_toy_models`, trained once per process for the same arguments: every row of a seed trains
    the identical toy batch (its own generator seeded by ``seed``; no global RNG is read), so later rows reuse
    the first row's. The batch is never modified by its readers; ``HARNESS_NO_SHARE=1`` turns the reuse off."""
    import os

    dropout = kwargs.get("dropout")
    key = (
        tuple(feature_prob.float().tolist()),
        None if dropout is None else tuple(dropout.float().tolist()),
        tuple(sorted((k, v) for k, v in kwargs.items() if k != "dropout")),
    )
    if os.environ.get("HARNESS_NO_SHARE") == "1":
        return train_toy_models(feature_prob, **kwargs)
    if key not in _SHARED:
        while len(_SHARED) >= _SHARED_MAX:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = train_toy_models(feature_prob, **kwargs)
    return _SHARED[key]
