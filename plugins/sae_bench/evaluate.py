"""Model-side evaluation: reconstruction statistics and CE / KL with the SAE spliced in.

One pass per token batch: the clean forward pass records the hook point (and the clean
logits); then the same batch runs with the hook replaced by the SAE reconstruction and by
zeros (:func:`harness.models.intervene`). BOS / padding positions keep their original
activation in both edited passes (the SAE never saw them in training; SAEBench's
``exclude_special_tokens_from_reconstruction``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .core import ReconstructionAccumulator


@dataclass
class SpliceResult:
    ce_clean: float
    ce_sae: float
    ce_zero: float
    kl_sae: float
    kl_zero: float
    n_predictions: int
    #: Per-context sums [C] of ce_clean / ce_sae / ce_zero / kl_sae / kl_zero (for the bootstrap).
    per_context: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


class _Sums:
    """Per-context (row) sums of next-token CE and KL; the means are their totals / predictions."""

    def __init__(self) -> None:
        self.n = 0
        self.rows: dict[str, list[torch.Tensor]] = {}

    def add_rows(self, name: str, per_row: torch.Tensor) -> None:
        self.rows.setdefault(name, []).append(per_row.double().cpu())

    def result(self) -> SpliceResult:
        rows = {k: torch.cat(v) for k, v in self.rows.items()}
        mean = {k: float(v.sum()) / max(self.n, 1) for k, v in rows.items()}
        return SpliceResult(
            mean["ce_clean"], mean["ce_sae"], mean["ce_zero"], mean["kl_sae"], mean["kl_zero"], self.n, per_context=rows
        )


def _logits(module: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = module(input_ids=ids, attention_mask=mask, use_cache=False)
    return (out.logits if hasattr(out, "logits") else out[0]).float()


def sae_reconstruct(sae: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and reconstruction of ``x`` [n, d] (float32, on the SAE's device)."""
    f = sae.encode(x.float())
    return f, sae.decode(f)


@torch.no_grad()
def evaluate_sae(
    loaded: Any,
    sae: Any,
    hook_point: str,
    batches: Iterable[Any],
    *,
    bos_token_id: int | None,
    splice: bool = True,
) -> tuple[dict[str, Any], SpliceResult | None]:
    """Reconstruction statistics over kept tokens (with ``per_context`` sums for the bootstrap)
    and, when ``splice``, CE / KL sums."""
    from harness.models import capture, intervene
    from harness.models.hookpoints import _unwrap

    module = _unwrap(loaded)
    device = next(module.parameters()).device
    acc = ReconstructionAccumulator()
    sums = _Sums()
    offset = 0
    for batch in batches:
        ids = batch.input_ids.to(device)
        mask = batch.attention_mask.to(device)
        keep = mask.bool()
        if bos_token_id is not None:
            keep = keep & (ids != bos_token_id)
        with capture(module, [hook_point]) as store:
            clean = _logits(module, ids, mask)
        act = store[hook_point]
        x = act[keep].float()
        f, x_hat = sae_reconstruct(sae, x)
        acc.add(x, x_hat, f, ctx=keep.nonzero(as_tuple=True)[0] + offset)
        offset += ids.shape[0]
        if not splice:
            continue

        def replace_with(values: torch.Tensor):
            def fn(a: torch.Tensor) -> torch.Tensor:
                out = a.clone()
                out[keep] = values.to(a.dtype)
                return out

            return fn

        with intervene(module, {hook_point: replace_with(x_hat)}):
            with_sae = _logits(module, ids, mask)
        with intervene(module, {hook_point: replace_with(torch.zeros_like(x_hat))}):
            zero = _logits(module, ids, mask)
        # next-token predictions at positions whose target is a real token
        tgt = ids[:, 1:]
        valid = mask[:, 1:].bool() & mask[:, :-1].bool()
        n = int(valid.sum())
        logp_clean = F.log_softmax(clean[:, :-1], -1)
        for name, logits in (("clean", clean), ("sae", with_sae), ("zero", zero)):
            logp = F.log_softmax(logits[:, :-1], -1)
            nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
            sums.add_rows(f"ce_{name}", (nll.double() * valid).sum(1))
            if name != "clean":
                kl = (logp_clean.exp() * (logp_clean - logp)).sum(-1)
                sums.add_rows(f"kl_{name}", (kl.double() * valid).sum(1))
        sums.n += n
    acc.contexts = offset
    return acc.results(), (sums.result() if splice else None)
