"""Model-side evaluation: reconstruction statistics and CE / KL with the SAE spliced in.

Split as SAEBench splits set-up from per-SAE work. :func:`clean_reference` runs what no SAE
changes, once per (model, hook point, batches): the clean forward pass, which records the hook
point and the clean log-probabilities, and the pass with the hook replaced by zeros
(:func:`harness.models.intervene`). :func:`evaluate_sae` then runs, per SAE, one pass per batch
with the hook replaced by the SAE reconstruction. BOS / padding positions keep their original
activation in both edited passes (the SAE never saw them in training; SAEBench's
``exclude_special_tokens_from_reconstruction``). The suite keeps the reference in the process's
memo (:mod:`harness.memo`), so every row and seed on one model shares it.

Memory: full-vocabulary logits are ``rows x positions x vocab`` floats per pass (824 MB for
32 contexts of 128 tokens at Pythia's 50,304-token vocabulary). When a batch's logits would
exceed ``max_logits_elements`` (:data:`MAX_LOGITS_ELEMENTS` by default), the batch's hook
activations are recorded in a pass that stops at the hook point and the logits passes and the
CE / KL sums run over chunks of rows that fit; the sums are the same up to float rounding. The
reference keeps clean log-probabilities up to half of ``HARNESS_MEMO_MB`` (at least one logits chunk, 128
MiB); past that a chunk's clean pass is rerun beside each SAE's (two passes per SAE instead of one). A batch that fits
(the zoo's 1k vocabulary) runs exactly as one pass.
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


def _next_token_targets(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Next-token targets and the positions whose target is a real token (and their count)."""
    tgt = ids[:, 1:]
    valid = mask[:, 1:].bool() & mask[:, :-1].bool()
    return tgt, valid, int(valid.sum())


def _add_ce(sums: _Sums, name: str, logp: torch.Tensor, tgt: torch.Tensor, valid: torch.Tensor) -> None:
    nll = -logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    sums.add_rows(f"ce_{name}", (nll.double() * valid).sum(1))


def _add_kl(sums: _Sums, name: str, logp_clean: torch.Tensor, logp: torch.Tensor, valid: torch.Tensor) -> None:
    kl = (logp_clean.exp() * (logp_clean - logp)).sum(-1)
    sums.add_rows(f"kl_{name}", (kl.double() * valid).sum(1))


def _logits(module: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = module(input_ids=ids, attention_mask=mask, use_cache=False)
    return (out.logits if hasattr(out, "logits") else out[0]).float()


def sae_reconstruct(sae: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and reconstruction of ``x`` [n, d] (float32, on the SAE's device)."""
    f = sae.encode(x.float())
    return f, sae.decode(f)


@dataclass
class _Chunk:
    """Rows ``[a, b)`` of a batch: their clean log-probabilities (None when not kept: recomputed per SAE)."""

    a: int
    b: int
    logp_clean: torch.Tensor | None


@dataclass
class _BatchReference:
    ids: torch.Tensor
    mask: torch.Tensor
    keep: torch.Tensor
    #: The hook point's activations at the kept positions [n_kept, d], float32, row-major.
    x: torch.Tensor
    chunks: list[_Chunk]


@dataclass
class CleanReference:
    """What every SAE's evaluation on one (model, hook point, batches) shares: the clean pass's hook
    activations, the clean and zero-ablation CE / KL sums, and (when they fit) the clean log-probabilities.

    Built once by :func:`clean_reference`; :func:`evaluate_sae` then runs one spliced pass per chunk
    (plus a clean one where the log-probabilities were not kept)."""

    hook_point: str
    batches: list[_BatchReference]
    #: Per-context sums of ce_clean, ce_zero and kl_zero, and the number of predictions.
    sums: _Sums
    splice: bool


def _keep_budget() -> int:
    """Bytes of clean log-probabilities a reference keeps: half the memo's budget (``HARNESS_MEMO_MB``), and
    at least one logits chunk (:data:`MAX_LOGITS_ELEMENTS` floats), so that a reference used once (the memo
    off) costs no more passes than scoring one SAE without a reference did."""
    from harness.memo import budget_bytes

    return max(budget_bytes() // 2, 4 * MAX_LOGITS_ELEMENTS)


@torch.no_grad()
def clean_reference(
    loaded: Any,
    hook_point: str,
    batches: Iterable[Any],
    *,
    bos_token_id: int | None,
    splice: bool = True,
    max_logits_elements: int = MAX_LOGITS_ELEMENTS,
    keep_logits_bytes: int | None = None,
) -> CleanReference:
    """The SAE-independent part of :func:`evaluate_sae`: per batch, the hook activations at kept tokens
    (BOS and padding excluded) and, when ``splice``, the clean and zero-ablation passes' CE / KL sums.
    Clean log-probabilities are kept for the spliced passes while they total at most ``keep_logits_bytes``
    (None: half of ``HARNESS_MEMO_MB``, at least one chunk); each logits pass holds at most ``max_logits_elements`` floats."""
    from harness.models import capture, intervene, run_with_cache
    from harness.models.hookpoints import _unwrap

    module = _unwrap(loaded)
    device = next(module.parameters()).device
    vocab = _vocab_size(module) if splice else 0
    budget = _keep_budget() if keep_logits_bytes is None else keep_logits_bytes
    kept_bytes = 0
    sums = _Sums()
    out: list[_BatchReference] = []
    for batch in batches:
        ids = batch.input_ids.to(device)
        mask = batch.attention_mask.to(device)
        keep = mask.bool()
        if bos_token_id is not None:
            keep = keep & (ids != bos_token_id)
        rows = rows_per_chunk(ids.shape[0], ids.shape[1], vocab, max_logits_elements) if splice else ids.shape[0]
        clean: torch.Tensor | None = None
        if splice and rows >= ids.shape[0]:  # the batch's logits fit: the clean pass also records the hook point
            with capture(module, [hook_point]) as store:
                clean = _logits(module, ids, mask)
            act = store[hook_point]
        else:  # record the hook point only (a pass that stops there); logits come chunk by chunk below
            _, store = run_with_cache(module, [hook_point], ids, attention_mask=mask, stop_early=True)
            act = store[hook_point]
        ref = _BatchReference(ids, mask, keep, act[keep].float(), [])
        del act, store
        out.append(ref)
        if not splice:
            continue
        zeros = torch.zeros_like(ref.x)
        starts = [0, *keep.sum(1).cumsum(0).tolist()]
        for a in range(0, ids.shape[0], rows):
            b = min(a + rows, ids.shape[0])
            c_ids, c_mask, c_keep = ids[a:b], mask[a:b], keep[a:b]
            c_clean = clean if clean is not None else _logits(module, c_ids, c_mask)
            with intervene(module, {hook_point: replace_at(c_keep, zeros[starts[a] : starts[b]])}):
                zero = _logits(module, c_ids, c_mask)
            tgt, valid, n = _next_token_targets(c_ids, c_mask)
            logp_clean = F.log_softmax(c_clean[:, :-1], -1)
            _add_ce(sums, "clean", logp_clean, tgt, valid)
            logp_zero = F.log_softmax(zero[:, :-1], -1)
            _add_ce(sums, "zero", logp_zero, tgt, valid)
            _add_kl(sums, "zero", logp_clean, logp_zero, valid)
            sums.n += n
            size = logp_clean.element_size() * logp_clean.nelement()
            kept = kept_bytes + size <= budget
            kept_bytes += size if kept else 0
            ref.chunks.append(_Chunk(a, b, logp_clean if kept else None))
            del c_clean, zero, logp_zero
        clean = None
    return CleanReference(hook_point, out, sums, splice)


def replace_at(keep: torch.Tensor, values: torch.Tensor):
    """A hook edit that writes ``values`` [n_kept, d] at the ``keep`` positions and leaves the rest as they are."""

    def fn(t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        out[keep] = values.to(t.dtype)
        return out

    return fn


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
    reference: CleanReference | None = None,
) -> tuple[dict[str, Any], SpliceResult | None]:
    """Reconstruction statistics over kept tokens (with ``per_context`` sums for the bootstrap)
    and, when ``splice``, CE / KL sums; each logits pass holds at most ``max_logits_elements``
    floats (rows x positions x vocab), one row at the least.

    ``reference``: the :func:`clean_reference` of these batches (shared by every SAE evaluated on them;
    None: built here, and ``batches`` is read)."""
    from harness.models import intervene
    from harness.models.hookpoints import _unwrap

    if reference is None:
        reference = clean_reference(loaded, hook_point, batches, bos_token_id=bos_token_id, splice=splice,
                                    max_logits_elements=max_logits_elements)
    if reference.hook_point != hook_point or (splice and not reference.splice):
        raise ValueError("evaluate_sae: the reference was built for another hook point or without the splice")
    module = _unwrap(loaded)
    acc = ReconstructionAccumulator()
    sums = _Sums()
    offset = 0
    for ref in reference.batches:
        f, x_hat = sae_reconstruct(sae, ref.x)
        acc.add(ref.x, x_hat, f, ctx=ref.keep.nonzero(as_tuple=True)[0] + offset)
        offset += ref.ids.shape[0]
        if not splice:
            continue
        # x_hat is row-major over the kept positions: rows [a, b) own x_hat[starts[a]:starts[b]]
        starts = [0, *ref.keep.sum(1).cumsum(0).tolist()]
        for chunk in ref.chunks:
            a, b = chunk.a, chunk.b
            c_ids, c_mask = ref.ids[a:b], ref.mask[a:b]
            logp_clean = chunk.logp_clean
            if logp_clean is None:
                logp_clean = F.log_softmax(_logits(module, c_ids, c_mask)[:, :-1], -1)
            with intervene(module, {hook_point: replace_at(ref.keep[a:b], x_hat[starts[a] : starts[b]])}):
                with_sae = _logits(module, c_ids, c_mask)
            tgt, valid, _ = _next_token_targets(c_ids, c_mask)
            logp = F.log_softmax(with_sae[:, :-1], -1)
            _add_ce(sums, "sae", logp, tgt, valid)
            _add_kl(sums, "sae", logp_clean, logp, valid)
            del with_sae, logp, logp_clean
    acc.contexts = offset
    if not splice:
        return acc.results(), None
    sums.n = reference.sums.n
    sums.rows = {**reference.sums.rows, **sums.rows}
    return acc.results(), sums.result()
