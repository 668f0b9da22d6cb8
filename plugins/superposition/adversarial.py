"""Adversarial training vs F: small MLP classifiers on scikit-learn's bundled digits (8x8, offline).

For each task (the first ``classes`` digits: 2 classes is the simple task, 10 the complex
one), each hidden width N and each training epsilon, an MLP (64 -> N ReLU -> classes) is
trained on clean batches (eps = 0) or on a mix of clean and FGSM / PGD adversarial batches
at eps (``clean_weight``; inputs in [0, 1], L-infinity). Per model: clean test accuracy,
robust test accuracy under PGD at the evaluation epsilons, and F of the hidden layer on every
clean image of the task through a fresh learner like the row's. Paper (Bereska et al. 2025): in an abundance regime (simple task,
ample capacity) adversarial training raises F; in a scarcity regime (complex task or little
capacity) it lowers F. The verdict per (task, width) is the sign of the relative change of F
from eps = 0 to the mean over the adversarially trained models (beyond +/- ``flat_band``:
abundance / scarcity, else flat); models whose clean accuracy fell to near chance are listed
as collapsed (their F describes a failed network).
"""

from __future__ import annotations

from typing import Any

import torch

from .experiment_configs import AdversarialConfig

from .sweeps import SaeBudget, features_of


def digits(classes: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train / test split of the digits 0..classes-1 (pixels / 16, in [0, 1])."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    keep = y < classes
    x, y = x[keep], y[keep]
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(test_fraction * x.shape[0]))
    return x[perm[n_test:]], y[perm[n_test:]], x[perm[:n_test]], y[perm[:n_test]]


class DigitsMLP(torch.nn.Module):
    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(64, width)
        self.out = torch.nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))

    def hidden_acts(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.hidden(x))


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size eps, clipped to [0, 1]."""
    return pgd(model, x, y, eps, steps=1, step_size=eps, random_start=False)


def pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int,
        step_size: float | None = None, random_start: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """L-inf PGD (Madry et al.): ``steps`` signed-gradient ascent steps, projected to the eps ball and [0, 1]."""
    if eps <= 0:
        return x
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    adv = x.clone()
    if random_start:
        adv = (adv + (torch.rand(x.shape, generator=generator) * 2 - 1) * eps).clamp(0, 1)
    was_training = model.training
    model.eval()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = torch.min(torch.max(adv + alpha * grad.sign(), x - eps), x + eps).clamp(0, 1)
    model.train(was_training)
    return adv.detach()


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).float().mean())


def train_classifier(cfg: AdversarialConfig, x: torch.Tensor, y: torch.Tensor, width: int, classes: int, eps: float,
                     seed: int) -> DigitsMLP:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = DigitsMLP(width, classes)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for _ in range(cfg.epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for i in range(0, x.shape[0], cfg.batch_size):
            xb, yb = x[order[i : i + cfg.batch_size]], y[order[i : i + cfg.batch_size]]
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            if eps > 0:
                adv = fgsm(model, xb, yb, eps) if cfg.attack == "fgsm" else pgd(model, xb, yb, eps, steps=cfg.pgd_steps, generator=gen)
                w = cfg.clean_weight
                loss = w * loss + (1 - w) * torch.nn.functional.cross_entropy(model(adv), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


def run_adversarial(cfg: AdversarialConfig, method: Any, *, sae_batch_size: int, sae_lr: float | None, seed: int) -> dict[str, Any]:
    """Rows per (classes, width, eps) and a verdict per (classes, width)."""
    rows: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    for c_i, k in enumerate(cfg.classes):
        xtr, ytr, xte, yte = digits(k, cfg.test_fraction, seed)
        for w_i, width in enumerate(cfg.widths):
            Fs = []
            for e_i, eps in enumerate(cfg.epsilons):
                s = seed * 10_000 + c_i * 1000 + w_i * 100 + e_i
                model = train_classifier(cfg, xtr, ytr, width, k, eps, s)
                gen = torch.Generator().manual_seed(s)
                robust = {str(ev): accuracy(model, pgd(model, xte, yte, ev, steps=cfg.pgd_steps, generator=gen), yte)
                          for ev in cfg.epsilons if ev > 0}
                with torch.no_grad():
                    h = model.hidden_acts(torch.cat([xtr, xte]))  # every image of the task, clean
                budget = SaeBudget(h.shape[0], cfg.sae_epochs, sae_batch_size, sae_lr)
                F, _ = features_of(h, method, budget, s)
                Fs.append(F)
                rows.append({"classes": k, "width": width, "train_eps": eps, "clean_acc": accuracy(model, xte, yte),
                             "robust_acc_pgd": robust, "F": F, "psi": F / width})
            change = sum(Fs[1:]) / len(Fs[1:]) / Fs[0] - 1.0
            regime = "abundance" if change > cfg.flat_band else "scarcity" if change < -cfg.flat_band else "flat"
            group = rows[-len(Fs):]
            collapsed = [r["train_eps"] for r in group if r["clean_acc"] < 1.5 / k]  # near chance: training failed
            verdicts.append({"classes": k, "width": width, "F_clean": Fs[0], "F_mean_adversarial": sum(Fs[1:]) / len(Fs[1:]),
                             "relative_change": change, "regime": regime, "collapsed_at_eps": collapsed})
    return {"rows": rows, "verdicts": verdicts}
