"""Torch implementation of the "batchtopk" learner."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from harness.sae.base import SAEBase
from harness.sae.threshold import BatchThreshold
from harness.sae.kernels import normalized_auxk_loss, sparse_decode

from . import BatchTopK


class BatchTopKSAE(BatchThreshold, SAEBase, BatchTopK):
    architecture = "jumprelu"  # SAELens stores a BatchTopK SAE as JumpReLU with its threshold

    def build(self) -> None:
        self.register_buffer("threshold", torch.tensor(-1.0))

    def select(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pre, vals, flat_idx): the k * n largest ReLU pre-activations of the batch."""
        pre = self.encode_pre(x).float()
        n = x.shape[0]
        vals, flat = torch.relu(pre).flatten().topk(self.config.k * n, sorted=False)
        return pre, vals, flat

    def decode_flat(self, vals: torch.Tensor, flat: torch.Tensor, n: int) -> torch.Tensor:
        if self.use_sparse(self.config.k):
            rows, cols = flat // self.d_sae, flat % self.d_sae
            order = torch.argsort(rows, stable=True)
            counts = torch.bincount(rows, minlength=n)
            offsets = torch.cumsum(counts, 0) - counts
            out = F.embedding_bag(cols[order], self.W_dec, offsets, mode="sum", per_sample_weights=vals[order])
            return out + self.b_dec
        f = vals.new_zeros(n * self.d_sae).scatter(0, flat, vals).view(n, self.d_sae)
        return self.decode(f)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        if self.training or self.threshold < 0:
            _, vals, flat = self.select(x)
            f = vals.new_zeros(x.shape[0] * self.d_sae).scatter(0, flat, vals).view(x.shape[0], self.d_sae)
        else:
            pre = torch.relu(self.encode_pre(x))
            f = pre * (pre > self.threshold).to(pre.dtype)
        return f.reshape(*lead, self.d_sae)

    def loss(self, x: torch.Tensor, step: int, total_steps: int) -> tuple[torch.Tensor, dict[str, Any]]:
        n = x.shape[0]
        pre, vals, flat = self.select(x)
        x_hat = self.decode_flat(vals, flat, n)
        e = x.float() - x_hat.float()
        mse = e.pow(2).sum(-1).mean()
        loss = mse
        logs: dict[str, Any] = {"mse": mse.detach()}
        if self.config.auxk_alpha > 0:
            dead = self.dead_mask()
            n_dead = int(dead.sum())
            if n_dead:
                dead_idx = dead.nonzero().squeeze(1)
                av, ai = pre[:, dead_idx].topk(min(n_dead, self.config.k_aux or self.d_in // 2), sorted=False)
                auxk = normalized_auxk_loss(e, sparse_decode(torch.relu(av), dead_idx[ai], self.W_dec))
                loss = loss + self.config.auxk_alpha * auxk
                logs["auxk"] = auxk.detach()
        with torch.no_grad():
            active = vals > 0
            self.record_firing(flat % self.d_sae, active, n)
            logs["l0"] = active.sum().float() / n
            logs["sse"] = e.pow(2).sum()
            logs["sst"] = (x.float() - x.float().mean(0)).pow(2).sum()
            self.update_threshold(vals, active, step, total_steps)
        return loss, logs
