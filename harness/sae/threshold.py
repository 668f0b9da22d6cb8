"""The inference threshold of batch-level top-k learners (BatchTopK, Matryoshka BatchTopK).

Training keeps the top ``k * batch`` pre-activations of the batch; at inference a latent fires
above a scalar threshold theta, an exponential moving average of the smallest kept value
(Bussmann et al.). It is saved as SAELens saves such SAEs: a JumpReLU ``threshold`` per latent,
plus ``batchtopk_threshold`` (the scalar, -1 while unset) so a reload is bit-exact.
"""

from __future__ import annotations

import torch


class BatchThreshold:
    """Mixin for an :class:`harness.sae.base.SAEBase` learner with a scalar ``threshold`` buffer
    (-1 = not estimated yet) and config fields ``threshold_start_step`` and ``threshold_beta``."""

    threshold: torch.Tensor
    d_sae: int
    config: object

    @torch.no_grad()
    def update_threshold(self, vals: torch.Tensor, active: torch.Tensor, step: int, total_steps: int) -> None:
        """Move theta towards the smallest kept value of this batch (from ``threshold_start_step``, or half way)."""
        cfg = self.config
        if step >= min(cfg.threshold_start_step, total_steps // 2) and bool(active.any()):  # type: ignore[attr-defined]
            m = vals[active].min()
            beta = cfg.threshold_beta  # type: ignore[attr-defined]
            self.threshold.copy_(torch.where(self.threshold < 0, m, beta * self.threshold + (1 - beta) * m))

    def weights_to_save(self) -> dict[str, torch.Tensor]:
        thr = self.threshold.detach().float().clamp_min(0).cpu()
        return super().weights_to_save() | {"threshold": thr.expand(self.d_sae).contiguous(),  # type: ignore[misc]
                                            "batchtopk_threshold": self.threshold.detach().cpu().reshape(1)}

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        tensors = dict(tensors)
        thr = tensors.pop("batchtopk_threshold", None)
        full = tensors.pop("threshold", None)
        super().load_weights(tensors)  # type: ignore[misc]
        with torch.no_grad():
            if thr is not None:
                self.threshold.copy_(thr.reshape(()))
            elif full is not None:
                self.threshold.copy_(full.reshape(-1)[0])
