"""The torch side of ``example_threshold_sae``. SAEBase gives the parameters (W_enc [d_in, d_sae],
b_enc, W_dec [d_sae, d_in], b_dec: SAELens names), decode, initialisation, dead-latent tracking,
save / load and the trainer's hooks; a learner writes ``encode`` and ``loss``."""

from __future__ import annotations

import torch

from harness.sae.base import SAEBase

from .learner import ThresholdSAE


class ThresholdSAEImpl(SAEBase, ThresholdSAE):
    architecture = "standard"  # what SAELens reads from cfg.json (a ReLU encoder; the threshold is ours)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.encode_pre(x)  # (x - b_dec if configured) @ W_enc + b_enc
        return torch.relu(pre) * (pre > self.config.threshold)

    def loss(self, x: torch.Tensor, step: int, total_steps: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, logs); the trainer aggregates mse, l0 and sse / sst (explained variance)."""
        f = self.encode(x)
        e = x - self.decode(f)
        mse = e.pow(2).sum(-1).mean()
        loss = mse + self.config.l1_coefficient * f.abs().sum(-1).mean()
        with torch.no_grad():
            active = f > 0
            self.update_firing(active.any(0), x.shape[0])  # dead-latent bookkeeping
            logs = {"mse": mse.detach(), "l0": active.sum(-1).float().mean(),
                    "sse": e.pow(2).sum(), "sst": (x - x.mean(0)).pow(2).sum()}
        return loss, logs
