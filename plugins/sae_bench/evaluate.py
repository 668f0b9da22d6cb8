"""Model-side evaluation: reconstruction statistics and CE / KL with the SAE spliced in.

One pass per token batch: the clean forward pass records the hook point (and the clean
logits); then the same batch runs with the hook replaced by the SAE reconstruction and by
zeros (:func:`harness.models.intervene`). BOS / padding positions keep their original
activation in both edited passes (the SAE never saw them in training; SAEBench's
``exclude_special_tokens_from_reconstruction``).

Memory: full-vocabulary logits are ``rows x positions x vocab`` floats per pass (824 MB for
32 contexts of 128 tokens at Pythia's 50,304-token vocabulary, three passes plus the
log-softmax temporaries). When a batch's logits would exceed ``max_logits_elements``
(:data:`MAX_LOGITS_ELEMENTS` by default), the batch's hook activations are recorded in a pass
that stops at the hook point, the SAE encodes the whole batch as before, and the three
logits passes and the CE / KL sums run over chunks of rows that fit; the sums are the same up
to float rounding. A batch that fits (the zoo's 1k vocabulary) runs exactly as one pass.
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


#: Logits elements (rows x positions x vocab) one CE / KL chunk may hold: 2**25 fp32 = 128 MiB
#: per pass; the three passes and the log-softmax temporaries stay well under 1.5 GB.
MAX_LOGITS_ELEMENTS = 2**25


def rows_per_chunk(n_rows: int, positions: int, vocab: int, max_logits_elements: int = MAX_LOGITS_ELEMENTS) -> int:
    """Rows of a ``[n_rows, positions]`` batch per logits pass so that ``rows * positions * vocab``
    stays within ``max_logits_elements`` (at least one row; at most the batch)."""
    return max(1, min(n_rows, max_logits_elements // max(positions * vocab, 1)))


def _vocab_size(module: Any) -> int:
    """Width of the model's logits: its output embedding's rows (the padded vocabulary)."""
    head = module.get_output_embeddings() if hasattr(module, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    return int(module.config.vocab_size)


def _add_ce_kl(sums: _Sums, ids: torch.Tensor, mask: torch.Tensor, clean: torch.Tensor, with_sae: torch.Tensor,
               zero: torch.Tensor) -> None:
    """Per-row CE of the three passes and KL(clean || edited) of the two edited ones, into ``sums``."""
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
        del logp
    sums.n += n


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
    max_logits_elements: int = MAX_LOGITS_ELEMENTS,
) -> tuple[dict[str, Any], SpliceResult | None]:
    """Reconstruction statistics over kept tokens (with ``per_context`` sums for the bootstrap)
    and, when ``splice``, CE / KL sums; each logits pass holds at most ``max_logits_elements``
    floats (rows x positions x vocab), one row at the least."""
    from harness.models import capture, intervene, run_with_cache
    from harness.models.hookpoints import _unwrap

    module = _unwrap(loaded)
    device = next(module.parameters()).device
    vocab = _vocab_size(module) if splice else 0
    acc = ReconstructionAccumulator()
    sums = _Sums()
    offset = 0
    for batch in batches:
        ids = batch.input_ids.to(device)
        mask = batch.attention_mask.to(device)
        keep = mask.bool()
        if bos_token_id is not None:
            keep = keep & (ids != bos_token_id)
        rows = rows_per_chunk(ids.shape[0], ids.shape[1], vocab, max_logits_elements) if splice else ids.shape[0]
        clean: torch.Tensor | None = None
        if rows >= ids.shape[0]:  # the batch's logits fit: the clean pass also records the hook point
            with capture(module, [hook_point]) as store:
                clean = _logits(module, ids, mask)
            act = store[hook_point]
        else:  # record the hook point only (a pass that stops there); logits come chunk by chunk below
            _, store = run_with_cache(module, [hook_point], ids, attention_mask=mask, stop_early=True)
            act = store[hook_point]
        x = act[keep].float()
        del act, store
        f, x_hat = sae_reconstruct(sae, x)
        acc.add(x, x_hat, f, ctx=keep.nonzero(as_tuple=True)[0] + offset)
        offset += ids.shape[0]
        if not splice:
            continue
        # x_hat is row-major over the kept positions: rows [a, b) own x_hat[starts[a]:starts[b]]
        starts = [0, *keep.sum(1).cumsum(0).tolist()]
        for a in range(0, ids.shape[0], rows):
            b = min(a + rows, ids.shape[0])
            c_ids, c_mask, c_keep = ids[a:b], mask[a:b], keep[a:b]
            c_hat = x_hat[starts[a] : starts[b]]

            def replace_with(values: torch.Tensor, c_keep: torch.Tensor = c_keep):
                def fn(t: torch.Tensor) -> torch.Tensor:
                    out = t.clone()
                    out[c_keep] = values.to(t.dtype)
                    return out

                return fn

            c_clean = clean if clean is not None else _logits(module, c_ids, c_mask)
            with intervene(module, {hook_point: replace_with(c_hat)}):
                with_sae = _logits(module, c_ids, c_mask)
            with intervene(module, {hook_point: replace_with(torch.zeros_like(c_hat))}):
                zero = _logits(module, c_ids, c_mask)
            _add_ce_kl(sums, c_ids, c_mask, c_clean, with_sae, zero)
            del c_clean, with_sae, zero
        clean = None
    acc.contexts = offset
    return acc.results(), (sums.result() if splice else None)
