"""Torch implementation of the "topk" learner."""

from __future__ import annotations

from typing import Any

import torch

from harness.sae.base import SAEBase
from harness.sae.kernels import dense_from_sparse, normalized_auxk_loss, sparse_decode, topk_encode

from . import TopK


class TopKSAE(SAEBase, TopK):
    architecture = "topk"

    @property
    def k(self) -> int:
        return self.config.k

    def k_aux(self) -> int:
        return self.config.k_aux or self.d_in // 2

    def select(
        self, x: torch.Tensor, dead_idx: torch.Tensor | None = None, k_aux: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(vals, idx, aux_vals, aux_idx): top-k of ReLU(pre) and top-k_aux among ``dead_idx``."""
        if self.use_sparse(self.k):
            b_dec = self.b_dec if self.config.apply_b_dec_to_input else None
            return topk_encode(x, self.W_enc, self.b_enc, b_dec, self.k, dead_idx=dead_idx, k_aux=k_aux)
        pre = self.encode_pre(x).float()
        v, i = pre.topk(self.k, dim=-1, sorted=False)
        v = torch.relu(v)
        if dead_idx is not None and k_aux > 0:
            av, ai = pre[:, dead_idx].topk(k_aux, dim=-1, sorted=False)
            return v, i, torch.relu(av), dead_idx[ai]
        return v, i, v.new_empty((x.shape[0], 0)), i.new_empty((x.shape[0], 0))

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """As SAEBase's, without [d_sae, d_in] temporaries (row dots by einsum, in-place update)."""
        if not self.config.unit_norm_decoder or self.W_dec.grad is None:
            return
        g, w = self.W_dec.grad, self.W_dec
        g.addcmul_(torch.einsum("ij,ij->i", g, w).unsqueeze(-1), w, value=-1)

    def decode_topk(self, vals: torch.Tensor, idx: torch.Tensor, bias: bool = True) -> torch.Tensor:
        b = self.b_dec if bias else None
        if self.use_sparse(idx.shape[-1]):
            return sparse_decode(vals, idx, self.W_dec, b)
        out = dense_from_sparse(vals, idx, self.d_sae).to(self.W_dec.dtype) @ self.W_dec
        return out + b if b is not None else out

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        v, i, _, _ = self.select(x.reshape(-1, self.d_in))
        return dense_from_sparse(v, i, self.d_sae).reshape(*lead, self.d_sae)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        v, i, _, _ = self.select(x.reshape(-1, self.d_in))
        return self.decode_topk(v, i).reshape(*lead, self.d_in)

    def loss(self, x: torch.Tensor, step: int, total_steps: int) -> tuple[torch.Tensor, dict[str, Any]]:
        dead_idx, k_aux = None, 0
        if self.config.auxk_alpha > 0:
            dead = self.dead_mask()
            n_dead = int(dead.sum())  # one host sync per step; AuxK needs the count
            if n_dead:
                dead_idx, k_aux = dead.nonzero().squeeze(1), min(self.k_aux(), n_dead)
        vals, idx, aux_vals, aux_idx = self.select(x, dead_idx, k_aux)
        x_hat = self.decode_topk(vals, idx)
        e = x.float() - x_hat.float()
        mse = e.pow(2).sum(-1).mean()
        loss = mse
        logs: dict[str, Any] = {"mse": mse.detach()}
        if k_aux:
            auxk = normalized_auxk_loss(e, self.decode_topk(aux_vals, aux_idx, bias=False))
            loss = loss + self.config.auxk_alpha * auxk
            logs["auxk"] = auxk.detach()
        with torch.no_grad():
            active = vals > 0
            self.record_firing(idx, active, x.shape[0])
            logs["l0"] = active.sum(-1).float().mean()
            logs["sse"] = e.pow(2).sum()
            logs["sst"] = (x.float() - x.float().mean(0)).pow(2).sum()
        return loss, logs

    def saelens_cfg(self) -> dict[str, Any]:
        cfg = super().saelens_cfg()
        cfg.update(k=self.k, activation_fn_str="topk", activation_fn_kwargs={"k": self.k})
        return cfg

    @classmethod
    def config_from_saelens(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
        if k is None:
            raise ValueError("SAELens topk cfg.json has no k (neither 'k' nor activation_fn_kwargs.k).")
        return super().config_from_saelens(cfg) | {"k": int(k)}
