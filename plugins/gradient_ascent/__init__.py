"""Unlearning method "gradient_ascent": Behavioural unlearning: gradient ascent on the memorised suffixes plus a retain-text loss (a weight edit).

Fits on the suite's :class:`~harness.unlearning.data.UnlearningData`; :func:`fit_gradient_ascent`
returns a :class:`~harness.unlearning.erasure.WeightEdit`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.protocols import Intervention, UnlearningMethod
from harness.unlearning.data import UnlearningData
from harness.unlearning.erasure import WeightEdit, stable_id


def fit_gradient_ascent(
    model: Any, forget: UnlearningData, retain: UnlearningData, *, steps: int, lr: float,
    retain_weight: float, seed: int, ident: str,
) -> WeightEdit:
    """Ascend the suffix loss of the memorised (label 1) sequences and descend the loss on
    ``retain`` text, on a copy of the model; returns the changed parameters as a WeightEdit."""
    import copy

    import torch

    torch.manual_seed(seed)
    hf = copy.deepcopy(getattr(model, "model", model)).float().train()
    mem = forget.subset(1).tensor()
    ret = retain.tensor()
    p = forget.prefix_len + 1
    opt = torch.optim.Adam(hf.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        logits = hf(input_ids=mem, use_cache=False).logits[:, p - 1 : -1]
        f_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), mem[:, p:].reshape(-1))
        r_logits = hf(input_ids=ret, use_cache=False).logits[:, :-1]
        r_loss = torch.nn.functional.cross_entropy(r_logits.reshape(-1, r_logits.shape[-1]), ret[:, 1:].reshape(-1))
        (-f_loss + retain_weight * r_loss).backward()
        opt.step()
    return WeightEdit(id=ident, params={n: q.detach().clone() for n, q in hf.named_parameters()})


class GradientAscent(UnlearningMethod):
    name = "gradient_ascent"
    description = "Behavioural unlearning: gradient ascent on the memorised suffixes plus a retain-text loss (a weight edit)."
    paper = None

    class Config(PluginConfig):
        steps: int = Field(10, ge=1, description="Full-batch Adam steps.")
        lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
        retain_weight: float = Field(1.0, ge=0, description="Weight of the retain-text cross-entropy term.")

    def fit(self, model: Any, forget: Any, retain: Any, *, seed: int) -> Intervention:
        c = self.config
        ident = stable_id(self.name, c, seed, forget, model)
        return fit_gradient_ascent(model, forget, retain, steps=c.steps, lr=c.lr, retain_weight=c.retain_weight, seed=seed, ident=ident)


@hookimpl
def register_unlearning_methods(register):
    register(GradientAscent)
