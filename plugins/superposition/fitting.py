"""A small, generic training loop for any registered dictionary learner, and the neuron basis.

Only the DictionaryLearner contract is used: ``create(d_in, config, seed=)``, ``loss(x, step,
total_steps)``, ``encode``. Adam with the learner config's ``lr`` when it has one. This loop
is deliberately independent of the shared SAE trainer (harness/sae) so that the measurement
does not move when that trainer changes.
"""

from __future__ import annotations

from typing import Any

import torch


class NeuronBasis:
    """The identity "dictionary": latents are |x| per neuron (F <= n_neurons, psi <= 1)."""

    name = "neuron_basis"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


def make_learner(method: Any, d_in: int, seed: int) -> Any:
    """A fresh learner of the same class and config as ``method`` (None: the neuron basis)."""
    if method is None:
        return NeuronBasis()
    learner = method.create(d_in, seed=seed)
    if not hasattr(learner, "parameters"):
        raise TypeError(f'Dictionary learner "{method.name}" is not a torch.nn.Module; the superposition suite trains it.')
    return learner


def fit_learner(
    learner: Any,
    data: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float | None,
    seed: int,
) -> dict[str, float]:
    """Train ``learner`` on rows of ``data`` [N, d_in] (shuffled each epoch); returns last logs."""
    if isinstance(learner, NeuronBasis):
        return {}
    cfg_lr = getattr(getattr(learner, "config", None), "lr", None)
    default_lr = getattr(learner, "default_lr", None)
    lr = lr or cfg_lr or (default_lr() if callable(default_lr) else 1e-3)
    opt = torch.optim.Adam(learner.parameters(), lr=float(lr))
    # Optional hooks, called when a learner has them (the names the shared SAE base uses):
    # data-dependent init, decoder-norm constraint, per-step bookkeeping.
    hooks = {h: getattr(learner, h, None) for h in ("init_from_data", "remove_parallel_gradient", "normalize_decoder", "after_step")}
    gen = torch.Generator().manual_seed(seed)
    n = data.shape[0]
    steps_per_epoch = max(1, -(-n // batch_size))
    total = epochs * steps_per_epoch
    logs: dict[str, float] = {}
    if hooks["init_from_data"]:
        with torch.no_grad():
            hooks["init_from_data"](data[torch.randperm(n, generator=gen)[:batch_size]])
    if hooks["normalize_decoder"]:
        hooks["normalize_decoder"]()
    learner.train()
    step = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            loss, logs = learner.loss(data[order[i : i + batch_size]], step, total)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if hooks["remove_parallel_gradient"]:
                hooks["remove_parallel_gradient"]()
            opt.step()
            if hooks["normalize_decoder"]:
                hooks["normalize_decoder"]()
            if hooks["after_step"]:
                hooks["after_step"](step, total)
            step += 1
    learner.eval()
    return {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) or getattr(v, "numel", lambda: 0)() == 1}


def batches(data: torch.Tensor, size: int = 1024):
    for i in range(0, data.shape[0], size):
        yield data[i : i + size]
