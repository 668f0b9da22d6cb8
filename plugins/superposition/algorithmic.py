"""Algorithmic task: multitask sparse parity, F per hidden layer against its neurons N.

Input: a one-hot task indicator (``tasks`` bits) followed by ``tasks x bits_per_task`` data
bits; the label is the parity of the active task's ``bits_per_task`` bits (the authors'
``MultiTaskSparseParityDataset`` family, rebuilt here). Every input pattern appears with
every task. An MLP of ``layers`` ReLU layers of width N is trained on a seeded 80% of the
patterns and tested on the rest; F of each hidden layer is counted on all patterns through a
fresh learner like the row's. Paper: algorithmic tasks leave no input sparsity to exploit,
so they show minimal superposition, psi = F / N <= 1 (F close to N).
"""

from __future__ import annotations

from typing import Any

import torch

from .experiment_configs import AlgorithmicConfig

from .sweeps import SaeBudget, features_of


def parity_data(tasks: int, bits_per_task: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (task, data pattern): x [tasks * 2^(tasks*bits), tasks + tasks*bits], y parity {0, 1}."""
    n_bits = tasks * bits_per_task
    if n_bits > 20:
        raise ValueError(f"superposition.algorithmic: tasks x bits_per_task = {n_bits} > 20 data bits would enumerate "
                         f"2^{n_bits} patterns. Fix: fewer tasks or bits_per_task.")
    codes = torch.arange(2**n_bits)
    bits = ((codes[:, None] >> torch.arange(n_bits - 1, -1, -1)) & 1).float()  # [P, n_bits]
    xs, ys = [], []
    for t in range(tasks):
        control = torch.zeros(bits.shape[0], tasks)
        control[:, t] = 1.0
        xs.append(torch.cat([control, bits], 1))
        ys.append(bits[:, t * bits_per_task : (t + 1) * bits_per_task].sum(1).long() % 2)
    return torch.cat(xs), torch.cat(ys)


class ParityMLP(torch.nn.Module):
    def __init__(self, d_in: int, width: int, layers: int) -> None:
        super().__init__()
        self.hidden = torch.nn.ModuleList(torch.nn.Linear(d_in if i == 0 else width, width) for i in range(layers))
        self.out = torch.nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hs = []
        for lin in self.hidden:
            x = torch.relu(lin(x))
            hs.append(x)
        return self.out(x), hs


def run_algorithmic(cfg: AlgorithmicConfig, method: Any, *, sae_batch_size: int, sae_lr: float | None, seed: int) -> list[dict[str, Any]]:
    """One row per (width, layer): N, F, psi, train / test accuracy of that width's MLP."""
    x, y = parity_data(cfg.tasks, cfg.bits_per_task)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(x.shape[0], generator=gen)
    n_test = int(cfg.test_fraction * x.shape[0])
    te, tr = perm[:n_test], perm[n_test:]
    budget = SaeBudget(cfg.sae_samples, cfg.sae_epochs, sae_batch_size, sae_lr)
    rows = []
    for w_i, width in enumerate(cfg.widths):
        torch.manual_seed(seed * 1000 + w_i)
        model = ParityMLP(x.shape[1], width, cfg.layers)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        for _ in range(cfg.steps):
            idx = tr[torch.randint(len(tr), (cfg.batch_size,), generator=gen)]
            loss = torch.nn.functional.cross_entropy(model(x[idx])[0], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            logits, hs = model(x)
            correct = (logits.argmax(-1) == y).float()
        train_acc = float(correct[tr].mean())
        test_acc = float(correct[te].mean()) if n_test else None
        for layer, h in enumerate(hs):
            F, _ = features_of(h, method, budget, seed + 100 * w_i + layer)
            rows.append({
                "width": width, "layer": layer, "N": width, "F": F, "psi": F / width,
                "alive_neurons": int((h.abs().sum(0) > 0).sum()), "train_acc": train_acc, "test_acc": test_acc,
            })  # fmt: skip
    return rows
