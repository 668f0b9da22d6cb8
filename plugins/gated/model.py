"""Torch implementation of the "gated" learner (paper section 3, eqs. 5-9; SAELens names).

    xc       = x - b_dec                           (when apply_b_dec_to_input)
    pi_gate  = xc W_enc + b_gate                   (W_gate = W_enc; b_gate is SAEBase's b_enc)
    pi_mag   = xc (W_enc * exp(r_mag)) + b_mag     (= (xc W_enc) * exp(r_mag) + b_mag: one matmul)
    f        = 1[pi_gate > 0] * ReLU(pi_mag)       (the Heaviside gate passes no gradient)
    x_hat    = f W_dec + b_dec
    loss     = ||x - x_hat||^2 + lambda * sum_i ReLU(pi_gate)_i ||W_dec_i|| + ||x - x_hat_frozen(ReLU(pi_gate))||^2

``x_hat_frozen(g) = g sg(W_dec) + sg(b_dec)`` (sg = stop-gradient); squared norms are summed over
d_in and averaged over the batch, as every harness learner and SAELens.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.sae.base import SAEBase
from harness.sae.kernels import ramp

from . import Gated


class GatedSAE(SAEBase, Gated):
    architecture = "gated"
    extra_weights = ("r_mag", "b_mag")

    def build(self) -> None:
        self.r_mag = nn.Parameter(torch.zeros(self.d_sae))
        self.b_mag = nn.Parameter(torch.zeros(self.d_sae))

    def default_lr(self) -> float:
        """3e-3 (constant): at the shared rule's lr the gate cannot close within a short budget (README)."""
        return 3e-3

    @torch.no_grad()
    def reset_parameters(self, gen: torch.Generator) -> None:
        """SAEBase's (unit decoder rows, W_enc = W_dec^T, zero biases) and r_mag = b_mag = 0 (SAELens, paper)."""
        super().reset_parameters(gen)
        self.r_mag.zero_()
        self.b_mag.zero_()

    @property
    def b_gate(self) -> torch.Tensor:
        """The gate bias (stored as ``b_enc``: the gate path is SAEBase's ``encode_pre``)."""
        return self.b_enc

    def paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pi_gate, pi_mag): the gate and magnitude pre-activations, one shared matmul."""
        xc = x - self.b_dec if self.config.apply_b_dec_to_input else x
        z = xc @ self.W_enc
        return z + self.b_enc, z * self.r_mag.exp() + self.b_mag

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pi_gate, pi_mag = self.paths(x)
        return (pi_gate > 0).to(pi_mag.dtype) * torch.relu(pi_mag)

    def loss(self, x: torch.Tensor, step: int, total_steps: int) -> tuple[torch.Tensor, dict[str, Any]]:
        pi_gate, pi_mag = self.paths(x)
        pi_gate, pi_mag = pi_gate.float(), pi_mag.float()
        f = (pi_gate > 0).to(pi_mag.dtype) * torch.relu(pi_mag)
        x = x.float()
        e = x - self.decode(f).float()
        mse = e.pow(2).sum(-1).mean()
        gate = torch.relu(pi_gate)
        l1 = (gate * self.W_dec.norm(dim=-1)).sum(-1).mean()
        W, b = (self.W_dec.detach(), self.b_dec.detach()) if self.config.aux_frozen_decoder else (self.W_dec, self.b_dec)
        aux = (x - (gate @ W + b).float()).pow(2).sum(-1).mean()
        lam = self.config.l1_coefficient * ramp(step, total_steps, self.config.l1_warmup_fraction)
        with torch.no_grad():
            active = f > 0
            self.update_firing(active.any(0), x.shape[0])
            logs = {"mse": mse.detach(), "l1": l1.detach(), "aux_recon": aux.detach(),
                    "l0": active.sum(-1).float().mean(), "sse": e.pow(2).sum(),
                    "sst": (x - x.mean(0)).pow(2).sum()}
        return mse + lam * l1 + aux, logs

    # -- SAELens layout: the gate bias is saved as b_gate, there is no b_enc ------------------------
    def weights_to_save(self) -> dict[str, torch.Tensor]:
        w = super().weights_to_save()
        w["b_gate"] = w.pop("b_enc")
        return w

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        tensors = dict(tensors)
        if "b_gate" in tensors:
            tensors["b_enc"] = tensors.pop("b_gate")
        missing = [n for n in ("r_mag", "b_mag") if n not in tensors]
        if missing:
            raise ValueError(f"{type(self).__name__}: the weights file lacks {missing} (a gated SAE saves W_enc, "
                             "b_gate, r_mag, b_mag, W_dec and b_dec).")
        super().load_weights(tensors)

