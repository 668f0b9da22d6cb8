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

from harness.sae.base import SAEBase
from harness.sae.kernels import normalized_auxk_loss, sparse_decode

from . import MatryoshkaBatchTopK


class MatryoshkaBatchTopKSAE(SAEBase, MatryoshkaBatchTopK):
    architecture = "jumprelu"  # SAELens saves trained Matryoshka BatchTopK SAEs as JumpReLU with the threshold

    def build(self) -> None:
        self.widths: tuple[int, ...] = self.config.resolve_widths(self.d_sae)
        self.register_buffer("threshold", torch.tensor(-1.0))

    def select(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre, f): pre-activations [n, d_sae] (float32) and the BatchTopK latents (k * n kept in the batch)."""
        pre = self.encode_pre(x).float()
        n = x.shape[0]
        vals, flat = torch.relu(pre).flatten().topk(self.config.k * n, sorted=False)
        f = vals.new_zeros(n * self.d_sae).scatter(0, flat, vals).view(n, self.d_sae)
        return pre, f

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in)
        if self.training or self.threshold < 0:
            _, f = self.select(x)
        else:
            pre = torch.relu(self.encode_pre(x))
            f = pre * (pre > self.threshold).to(pre.dtype)
        return f.reshape(*lead, self.d_sae)

    def prefix_reconstructions(self, f: torch.Tensor) -> list[torch.Tensor]:
        """``x_hat_l`` for every level: the running sum over the groups ``[w_{l-1}, w_l)`` (one dense
        decode in all), so the last entry is the full reconstruction ``f W_dec + b_dec``."""
        out, recon, prev = [], self.b_dec, 0
        for w in self.widths:
            recon = recon + f[:, prev:w] @ self.W_dec[prev:w]
            out.append(recon)
            prev = w
        return out

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
        pre, f = self.select(x)
        x = x.float()
        errors = [x - r.float() for r in self.prefix_reconstructions(f)]
        level_mse = [err.pow(2).sum(-1).mean() for err in errors]
        e, mse = errors[-1], level_mse[-1]
        loss = torch.stack(level_mse).sum()
        if self.config.prefix_loss == "mean":
            loss = loss / len(level_mse)
        logs: dict[str, Any] = {"mse": mse.detach()}
        for w, m in zip(self.widths[:-1], level_mse[:-1], strict=True):
            logs[f"mse_prefix_{w}"] = m.detach()
        if self.config.auxk_alpha > 0:
            aux = self.auxk(pre, e)
            if aux is not None:
                loss = loss + self.config.auxk_alpha * aux
                logs["auxk"] = aux.detach()
        with torch.no_grad():
            active = f > 0
            self.update_firing(active.any(0), n)
            logs["l0"] = active.sum().float() / n
            logs["sse"] = e.pow(2).sum()
            logs["sst"] = (x - x.mean(0)).pow(2).sum()
            if step >= min(self.config.threshold_start_step, total_steps // 2) and bool(active.any()):
                m = f[active].min()
                beta = self.config.threshold_beta
                self.threshold.copy_(torch.where(self.threshold < 0, m, beta * self.threshold + (1 - beta) * m))
        return loss, logs

    def weights_to_save(self) -> dict[str, torch.Tensor]:
        thr = self.threshold.detach().float().clamp_min(0).cpu()
        return super().weights_to_save() | {"threshold": thr.expand(self.d_sae).contiguous(),
                                            "batchtopk_threshold": self.threshold.detach().cpu().reshape(1)}

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        tensors = dict(tensors)
        thr = tensors.pop("batchtopk_threshold", None)
        full = tensors.pop("threshold", None)
        super().load_weights(tensors)
        with torch.no_grad():
            if thr is not None:
                self.threshold.copy_(thr.reshape(()))
            elif full is not None:
                self.threshold.copy_(full.reshape(-1)[0])
