"""Grokking on modular addition: F of the hidden layer across training (Bereska et al. 2025, Sec. grokking).

An MLP reads (a, b) through a shared embedding, concatenates the two vectors, applies one
ReLU hidden layer and predicts (a + b) mod p. Trained full batch with AdamW and strong weight
decay on a fraction of the p^2 pairs, it first memorises the training pairs (train accuracy
1) and generalises to the held-out pairs only much later (grokking, Power et al. 2022). Every
``eval_every`` steps the hidden activations on all p^2 pairs are read through a fresh
learner like the row's and F counted; the paper reports a sharp feature consolidation (F
falls) at the generalisation transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .experiment_configs import GrokkingConfig

from .sweeps import SaeBudget, features_of


@dataclass
class GrokkingResult:
    steps: list[int] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    F: list[float] = field(default_factory=list)
    memorised_step: int | None = None
    generalised_step: int | None = None

    def summary(self, width: int) -> dict[str, Any]:
        """Readouts: F at memorisation / generalisation / end, and where F falls fastest."""
        out: dict[str, Any] = {"memorised_step": self.memorised_step, "generalised_step": self.generalised_step}

        def at(step: int | None) -> float | None:
            return None if step is None else self.F[self.steps.index(step)]

        out["F_at_memorisation"], out["F_at_generalisation"] = at(self.memorised_step), at(self.generalised_step)
        out["F_final"], out["F_max"] = self.F[-1], max(self.F)
        drops = [(self.F[i] - self.F[i + 1], self.steps[i + 1]) for i in range(len(self.F) - 1)]
        if drops:
            d, s = max(drops)
            out["largest_drop"], out["largest_drop_step"] = d, s
        m, g = self.memorised_step, self.generalised_step
        # Consolidation: F falls between memorisation and generalisation by more than 10%
        # of its value at memorisation.
        if m is not None and g is not None and out["F_at_memorisation"]:
            change = (out["F_at_generalisation"] - out["F_at_memorisation"]) / out["F_at_memorisation"]
            out["F_change_memorisation_to_generalisation"] = change
            out["consolidation"] = change < -0.1
        else:
            out["consolidation"] = None
        out["psi_final"] = self.F[-1] / width
        return out


def modular_data(p: int, train_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """a, b, (a + b) mod p over all p^2 pairs, and a seeded permutation's train indices / test indices."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.flatten(), b.flatten()
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n_train = max(1, int(train_fraction * p * p))
    return torch.stack([a, b], 1), (a + b) % p, perm[:n_train], perm[n_train:]


class ModularMLP(torch.nn.Module):
    def __init__(self, p: int, embed_dim: int, width: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(p, embed_dim)
        self.hidden = torch.nn.Linear(2 * embed_dim, width)
        self.out = torch.nn.Linear(width, p)

    def forward(self, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.hidden(self.embed(ab).flatten(1)))
        return self.out(h), h


def run_grokking(cfg: GrokkingConfig, method: Any, *, sae_batch_size: int, sae_lr: float | None, seed: int) -> GrokkingResult:
    """Train the modular-addition MLP; read accuracies and F every ``eval_every`` steps (and at the end)."""
    ab, y, tr, te = modular_data(cfg.modulus, cfg.train_fraction, seed)
    torch.manual_seed(seed)
    model = ModularMLP(cfg.modulus, cfg.embed_dim, cfg.width)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    budget = SaeBudget(ab.shape[0], cfg.sae_epochs, sae_batch_size, sae_lr)
    res = GrokkingResult()
    for step in range(cfg.steps + 1):
        if step % cfg.eval_every == 0 or step == cfg.steps:
            with torch.no_grad():
                logits, h = model(ab)
                correct = (logits.argmax(-1) == y).float()
            res.steps.append(step)
            res.train_acc.append(float(correct[tr].mean()))
            res.test_acc.append(float(correct[te].mean()) if len(te) else float("nan"))
            res.F.append(features_of(h, method, budget, seed)[0])  # one learner seed: readouts differ by the model only
            if res.memorised_step is None and res.train_acc[-1] >= cfg.memorised_at:
                res.memorised_step = step
            if res.generalised_step is None and res.test_acc[-1] >= cfg.generalised_at:
                res.generalised_step = step
        if step == cfg.steps:
            break
        logits, _ = model(ab[tr])
        loss = torch.nn.functional.cross_entropy(logits, y[tr])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return res
