"""Torch implementation of the "vsae_topk" learner (formulas: METHODS.md section 1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.sae.base import SAEBase
from harness.sae.kernels import dense_from_sparse, normalized_auxk_loss, ramp, sparse_decode

from . import VSAETopK


class VSAETopKSAE(SAEBase, VSAETopK):
    architecture = "topk"

    @property
    def learned(self) -> bool:
        return self.config.variance == "learned"

    def build(self) -> None:
        if self.learned:
            self.W_enc_logvar = nn.Parameter(torch.empty(self.d_in, self.d_sae))
            self.b_enc_logvar = nn.Parameter(torch.empty(self.d_sae))
            self.extra_weights = ("W_enc_logvar", "b_enc_logvar")  # type: ignore[misc]

    @torch.no_grad()
    def reset_parameters(self, gen: torch.Generator) -> None:
        super().reset_parameters(gen)
        if self.learned:
            w = torch.empty(self.d_sae, self.d_in)
            bound = (6 / ((1 + 0.01**2) * self.d_in)) ** 0.5  # kaiming_uniform_(a=0.01), as the authors
            w.uniform_(-bound, bound, generator=gen)
            self.W_enc_logvar.copy_(w.t())
            self.b_enc_logvar.fill_(self.config.log_var_init)

    def _x_in(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.b_dec if self.config.apply_b_dec_to_input else x

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(mu, log_var clamped to [-6, 2] or None for fixed variance)."""
        xi = self._x_in(x)
        pre = (xi @ self.W_enc + self.b_enc).float()
        mu = torch.relu(pre) if self.config.mu_activation == "relu" else pre
        lv = None
        if self.learned:
            lv = (xi @ self.W_enc_logvar + self.b_enc_logvar).float().clamp(-6.0, 2.0)
        return mu, lv

    def sample_z(self, mu: torch.Tensor, lv: torch.Tensor | None, step: int) -> torch.Tensor:
        if not (self.training and self.config.sample):
            return mu
        gen = torch.Generator(device=mu.device).manual_seed(self.seed * 1_000_003 + 7919 * step + 1)
        eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
        return mu + (eps if lv is None else eps * torch.exp(0.5 * lv))

    def topk_abs(self, z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = z.abs().topk(k, dim=-1, sorted=False).indices
        return z.gather(-1, idx), idx

    def kl(self, mu: torch.Tensor, lv: torch.Tensor | None, z: torch.Tensor, idx: torch.Tensor | None = None):
        """Batch-mean KL: learned 0.5 sum(mu^2 + s^2 - 1 - log s^2) (mu clamped to [-10, 10]);
        fixed 0.5 sum z^2 (z clamped to [-10, 10]); summed over ``idx`` only when given."""
        if lv is not None:
            per = 0.5 * (mu.clamp(-10, 10).pow(2) + lv.exp() - 1 - lv)
        else:
            per = 0.5 * z.clamp(-10, 10).pow(2)
        if idx is not None:
            per = per.gather(-1, idx)
        return per.sum(-1).mean()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        mu, _ = self.moments(x.reshape(-1, self.d_in))
        v, i = self.topk_abs(mu, self.config.k)
        return dense_from_sparse(v, i, self.d_sae).reshape(*lead, self.d_sae)

    def decode_topk(self, vals: torch.Tensor, idx: torch.Tensor, bias: bool = True) -> torch.Tensor:
        b = self.b_dec if bias else None
        if self.use_sparse(idx.shape[-1]):
            return sparse_decode(vals, idx, self.W_dec, b)
        out = dense_from_sparse(vals, idx, self.d_sae) @ self.W_dec
        return out + b if b is not None else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        mu, _ = self.moments(x.reshape(-1, self.d_in))
        v, i = self.topk_abs(mu, self.config.k)
        return self.decode_topk(v, i).reshape(*lead, self.d_in)

    def loss(self, x: torch.Tensor, step: int, total_steps: int) -> tuple[torch.Tensor, dict[str, Any]]:
        mu, lv = self.moments(x)
        z = self.sample_z(mu, lv, step)
        vals, idx = self.topk_abs(z, self.config.k)
        x_hat = self.decode_topk(vals, idx)
        e = x.float() - x_hat.float()
        mse = e.pow(2).sum(-1).mean()
        kl = self.kl(mu, lv, z, idx if self.config.kl_scope == "topk" else None)
        loss = mse + self.config.kl_coeff * ramp(step, total_steps, self.config.kl_warmup_fraction) * kl
        logs: dict[str, Any] = {"mse": mse.detach(), "kl": kl.detach()}
        if self.config.auxk_alpha > 0:
            dead = self.dead_mask()
            n_dead = int(dead.sum())
            if n_dead:
                dead_idx = dead.nonzero().squeeze(1)
                av, ai = self.topk_abs(z[:, dead_idx], min(n_dead, self.config.k_aux or self.d_in // 2))
                auxk = normalized_auxk_loss(e, sparse_decode(av, dead_idx[ai], self.W_dec))
                loss = loss + self.config.auxk_alpha * auxk
                logs["auxk"] = auxk.detach()
        with torch.no_grad():
            active = vals != 0
            self.record_firing(idx, active, x.shape[0])
            logs["l0"] = active.sum(-1).float().mean()
            logs["sse"] = e.pow(2).sum()
            logs["sst"] = (x.float() - x.float().mean(0)).pow(2).sum()
        return loss, logs

    @torch.no_grad()
    def fold_input_scale(self, scale: float) -> None:
        super().fold_input_scale(scale)
        if self.learned:
            self.W_enc_logvar.mul_(scale)

    def saelens_cfg(self) -> dict[str, Any]:
        cfg = super().saelens_cfg()
        k = self.config.k
        cfg.update(k=k, activation_fn_str="topk", activation_fn_kwargs={"k": k})
        return cfg
