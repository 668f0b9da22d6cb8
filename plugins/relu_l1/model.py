"""Torch implementation of the "relu_l1" learner."""

from __future__ import annotations

from typing import Any

import torch

from harness.sae.base import SAEBase
from harness.sae.kernels import ramp

from . import ReluL1


class ReluL1SAE(SAEBase, ReluL1):
    architecture = "standard"

    def default_lr(self) -> float:
        return 5e-5

    def loss(self, x: torch.Tensor, step: int, total_steps: int) -> tuple[torch.Tensor, dict[str, Any]]:
        f = torch.relu(self.encode_pre(x)).float()
        x_hat = self.decode(f)
        e = x.float() - x_hat.float()
        mse = e.pow(2).sum(-1).mean()
        l1 = (f * self.W_dec.norm(dim=-1)).sum(-1).mean()
        lam = self.config.l1_coefficient * ramp(step, total_steps, self.config.l1_warmup_fraction)
        with torch.no_grad():
            active = f > 0
            self.update_firing(active.any(0), x.shape[0])
            logs = {"mse": mse.detach(), "l1": l1.detach(), "l0": active.sum(-1).float().mean(),
                    "sse": e.pow(2).sum(), "sst": (x.float() - x.float().mean(0)).pow(2).sum()}
        return mse + lam * l1, logs
