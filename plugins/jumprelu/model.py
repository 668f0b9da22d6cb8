"""Torch implementation of the "jumprelu" learner.

Pseudo-derivatives (paper eqs. 11-12, rectangle kernel K(u) = 1[|u| < 1/2]):
  d/dtheta JumpReLU(z; theta) = -(theta / eps) K((z - theta) / eps),  d/dz = H(z - theta)
  d/dtheta H(z - theta)       = -(1 / eps) K((z - theta) / eps),      d/dz = 0
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from harness.sae.base import SAEBase
from harness.sae.kernels import ramp

from . import JumpReLU


def _rect(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


def _reduce_to(g: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return g.reshape(-1, g.shape[-1]).sum(0).reshape(theta.shape)


class JumpReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, theta, eps):  # noqa: ANN001, ANN205
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        z, theta = ctx.saved_tensors
        eps = ctx.eps
        gz = (z > theta).to(g.dtype) * g
        gt = -(theta / eps) * _rect((z - theta) / eps) * g
        return gz, _reduce_to(gt, theta), None


class StepFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, theta, eps):  # noqa: ANN001, ANN205
        ctx.save_for_backward(z, theta)
        ctx.eps = eps
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        z, theta = ctx.saved_tensors
        gt = -(1.0 / ctx.eps) * _rect((z - theta) / ctx.eps) * g
        return torch.zeros_like(z), _reduce_to(gt, theta), None


class JumpReLUSAE(SAEBase, JumpReLU):
    architecture = "jumprelu"
    extra_weights = ("log_threshold",)

    def build(self) -> None:
        self.log_threshold = nn.Parameter(torch.full((self.d_sae,), math.log(self.config.threshold_init)))

    @torch.no_grad()
    def reset_parameters(self, gen: torch.Generator) -> None:
        super().reset_parameters(gen)
        self.log_threshold.fill_(math.log(self.config.threshold_init))

    def default_lr(self) -> float:
        return 7e-5

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.encode_pre(x)
        return pre * (pre > self.threshold).to(pre.dtype)

    def loss(self, x: torch.Tensor, step: int, total_steps: int) -> tuple[torch.Tensor, dict[str, Any]]:
        pre = self.encode_pre(x).float()
        theta, eps = self.threshold, self.config.bandwidth
        f = JumpReLUFn.apply(pre, theta, eps)
        x_hat = self.decode(f)
        e = x.float() - x_hat.float()
        mse = e.pow(2).sum(-1).mean()
        l0 = StepFn.apply(pre, theta, eps).sum(-1).mean()
        lam = self.config.l0_coefficient * ramp(step, total_steps, self.config.l0_warmup_fraction)
        with torch.no_grad():
            active = f != 0
            self.update_firing(active.any(0), x.shape[0])
            logs = {"mse": mse.detach(), "l0": l0.detach(), "sse": e.pow(2).sum(),
                    "sst": (x.float() - x.float().mean(0)).pow(2).sum()}
        return mse + lam * l0, logs

    def weights_to_save(self) -> dict[str, torch.Tensor]:
        return super().weights_to_save() | {"threshold": self.threshold.detach().cpu().contiguous()}

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        tensors = dict(tensors)
        thr = tensors.pop("threshold", None)
        if "log_threshold" not in tensors:
            if thr is None:
                raise ValueError("A jumprelu SAE needs 'threshold' or 'log_threshold' in its weights file.")
            tensors["log_threshold"] = thr.float().clamp_min(1e-30).log()
        super().load_weights(tensors)

    @classmethod
    def config_from_saelens(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        return super().config_from_saelens(cfg) | {"unit_norm_decoder": False}
