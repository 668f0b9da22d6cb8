"""Torch implementation of the "matryoshka_batchtopk" learner.

Training, for a batch ``x`` [n, d_in] and prefix lengths ``w_1 < ... < w_L = d_sae``:

    f        = BatchTopK_{k n}(ReLU((x - b_dec) W_enc + b_enc))          (one selection, whole dictionary)
    x_hat_l  = f[:, :w_l] W_dec[:w_l] + b_dec                            (level l: the first w_l latents)
    L_l      = mean_t ||x_t - x_hat_l,t||^2
    loss     = sum_l L_l  (or mean_l L_l)  +  auxk_alpha * AuxK(x - x_hat_L)

which is SAELens 6's ``MatryoshkaBatchTopKTrainingSAE.training_forward_pass`` (its base MSE is
L_L; each inner level adds its L_l). Inference: ``f = ReLU(pre) * 1[ReLU(pre) > theta]`` with one
estimated threshold theta, saved as a SAELens ``jumprelu`` SAE as SAELens does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from harness.sae.base import SAEBase
from harness.sae.threshold import BatchThreshold
from harness.sae.kernels import normalized_auxk_loss, sparse_decode

from . import MatryoshkaBatchTopK


class MatryoshkaBatchTopKSAE(BatchThreshold, SAEBase, MatryoshkaBatchTopK):
    architecture = "jumprelu"  # SAELens saves trained Matryoshka BatchTopK SAEs as JumpReLU with the threshold

    def build(self) -> None:
        self.widths: tuple[int, ...] = self.config.resolve_widths(self.d_sae)
        self.register_buffer("threshold", torch.tensor(-1.0))

    def select(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pre, vals, flat): pre-activations [n, d_sae] (float32) and the k * n largest ReLU values of
        the batch (BatchTopK) with their indices into the flattened [n * d_sae] pre-activations."""
        pre = self.encode_pre(x).float()
        vals, flat = torch.relu(pre).flatten().topk(self.config.k * x.shape[0], sorted=False)
        return pre, vals, flat

    def dense(self, vals: torch.Tensor, flat: torch.Tensor, n: int) -> torch.Tensor:
        """The selected values as dense latents [n, d_sae]."""
        return vals.new_zeros(n * self.d_sae).scatter(0, flat, vals).view(n, self.d_sae)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        if self.training or self.threshold < 0:
            _, vals, flat = self.select(x)
            f = self.dense(vals, flat, x.shape[0])
        else:
            pre = torch.relu(self.encode_pre(x))
            f = pre * (pre > self.threshold).to(pre.dtype)
        return f.reshape(*lead, self.d_sae)

    def prefix_reconstructions(self, vals: torch.Tensor, flat: torch.Tensor, n: int) -> torch.Tensor:
        """``x_hat_l`` for every level, [L, n, d_in]: running sums over the latent groups
        ``[w_{l-1}, w_l)``, so the last is the full reconstruction ``f W_dec + b_dec``.

        Sparse path (``use_sparse(k)``): one ``embedding_bag`` with a bag per (group, token), cost
        ~ n k d_in; dense path: one [n, w_l - w_{l-1}] x [w_l - w_{l-1}, d_in] product per group."""
        levels = len(self.widths)
        if self.use_sparse(self.config.k):
            rows, cols = flat // self.d_sae, flat % self.d_sae
            bounds = torch.tensor(self.widths[:-1], device=cols.device, dtype=cols.dtype)
            key = torch.bucketize(cols, bounds, right=True) * n + rows  # bag = (group, token)
            order = torch.argsort(key, stable=True)
            counts = torch.bincount(key, minlength=levels * n)
            offsets = torch.cumsum(counts, 0) - counts
            parts = F.embedding_bag(cols[order], self.W_dec, offsets, mode="sum",
                                    per_sample_weights=vals[order].to(self.W_dec.dtype)).view(levels, n, self.d_in)
        else:
            f = self.dense(vals, flat, n)
            edges = (0, *self.widths)
            parts = torch.stack([f[:, a:b] @ self.W_dec[a:b] for a, b in zip(edges, edges[1:], strict=False)])
        return parts.cumsum(0) + self.b_dec

    def auxk(self, pre: torch.Tensor, e: torch.Tensor) -> torch.Tensor | None:
        """The AuxK loss (unweighted) of the dead latents, or None when none is dead."""
        dead = self.dead_mask()
        n_dead = int(dead.sum())  # one host sync per step; AuxK needs the count
        if not n_dead:
            return None
        k_aux = self.config.k_aux or self.d_in // 2
        dead_idx = dead.nonzero().squeeze(1)
        av, ai = pre[:, dead_idx].topk(min(n_dead, k_aux), dim=-1, sorted=False)
        if self.config.auxk_loss == "normalized":
            return normalized_auxk_loss(e, sparse_decode(torch.relu(av), dead_idx[ai], self.W_dec))
        # SAELens: raw dead pre-activations, the residual's squared error, scaled down when few are dead
        e_hat = sparse_decode(av, dead_idx[ai], self.W_dec)
        return min(n_dead / k_aux, 1.0) * (e_hat.float() - e.detach()).pow(2).sum(-1).mean()

    def loss(self, x: torch.Tensor, step: int, total_steps: int) -> tuple[torch.Tensor, dict[str, Any]]:
        n = x.shape[0]
        pre, vals, flat = self.select(x)
        x = x.float()
        errors = x - self.prefix_reconstructions(vals, flat, n).float()
        level_mse = errors.pow(2).sum(-1).mean(-1)  # [L]
        e, mse = errors[-1], level_mse[-1]
        loss = level_mse.sum() if self.config.prefix_loss == "sum" else level_mse.mean()
        logs: dict[str, Any] = {"mse": mse.detach()}
        for w, m in zip(self.widths[:-1], level_mse[:-1], strict=True):
            logs[f"mse_prefix_{w}"] = m.detach()
        if self.config.auxk_alpha > 0:
            aux = self.auxk(pre, e)
            if aux is not None:
                loss = loss + self.config.auxk_alpha * aux
                logs["auxk"] = aux.detach()
        with torch.no_grad():
            active = vals > 0
            self.record_firing(flat % self.d_sae, active, n)
            logs["l0"] = active.sum().float() / n
            logs["sse"] = e.pow(2).sum()
            logs["sst"] = (x - x.mean(0)).pow(2).sum()
            self.update_threshold(vals, active, step, total_steps)
        return loss, logs
