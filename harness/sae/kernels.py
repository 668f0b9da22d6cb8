"""Compute kernels of top-k style SAEs: a sparse encoder backward and a sparse decoder.

The sparse path keeps every cost but the encoder's forward matmul proportional to k:

- :func:`topk_encode` computes pre-activations chunk by chunk (a [chunk, d_sae] block
  that stays in cache), keeps the top-k per row (and optionally the top-k_aux among
  dead latents, for AuxK) and never materialises [batch, d_sae] for autograd. Its
  backward forms dW_enc = x^T G with G sparse (k non-zeros per row) as a sparse-dense
  product, db_enc by index_add, and db_dec = -W_enc @ db_enc.
- :func:`sparse_decode` is ``F.embedding_bag(idx, W_dec, per_sample_weights=vals)``
  (W_dec [d_sae, d_in] is already an embedding table) with a backward that forms
  dW_dec = S^T g by one sparse-dense product (the same CSR pattern as the encoder's, built
  once per step) and dL/dvals = g . W_dec[idx] by one SDDMM (:func:`sampled_dot`).

How each piece runs is chosen per device type by :data:`TUNING` (see :class:`KernelTuning`):
on a CPU, cache-sized chunks and sparse-dense products; on a GPU, whole-batch GEMMs.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Literal

import torch
import torch.nn.functional as F


@dataclasses.dataclass
class KernelTuning:
    """How the sparse path runs on one device type (``benchmarks/sae_training.py --tune`` sweeps it).

    ``chunk_rows``: rows of pre-activations formed (and top-k'd) at once; ``None`` = as many
    as fit ``chunk_elements`` (the whole batch, for GPUs). ``weight_grad``: how dW_enc and
    dW_dec are formed: ``"sparse"`` (S^T x as a CSR sparse-dense product, cost ~ n k d) or
    ``"dense"`` (S scattered into [rows, d_sae] in the forward's matmul dtype, then one GEMM;
    cost ~ n d_sae d on matrix units). ``decoder``: ``"sparse"`` (``F.embedding_bag``, cost ~ n k d)
    or ``"dense"`` (S scattered into [rows, d_sae] blocks in the matmul dtype, then GEMMs forward
    and backward). ``decode_backward`` (sparse decoder only): ``"custom"`` (the CSR product, or the
    dense one under ``weight_grad="dense"``, and :func:`sampled_dot`) or ``"native"``
    (``F.embedding_bag``'s own backward).
    """

    chunk_rows: int | None = 512
    chunk_elements: int = 2**28
    weight_grad: Literal["sparse", "dense"] = "sparse"
    decoder: Literal["sparse", "dense"] = "sparse"
    decode_backward: Literal["custom", "native"] = "custom"

    def rows(self, n: int, width: int) -> int:
        """Rows per chunk for ``n`` rows of ``width`` columns."""
        r = self.chunk_rows if self.chunk_rows is not None else self.chunk_elements // max(1, width)
        return max(1, min(n, r))


#: Per device type (``torch.device.type``); types not listed use ``"cuda"``'s entry.
TUNING: dict[str, KernelTuning] = {
    "cpu": KernelTuning(),
    # Measured on an H200 (plugins/topk/README.md): whole-batch blocks, weight gradients and the decoder as
    # bf16 GEMMs; the top-k selection alone stays sparse. 1.44x-5.3x sparsify's tokens/s at d_sae 4096-16384.
    "cuda": KernelTuning(chunk_rows=None, weight_grad="dense", decoder="dense"),
}


def tuning(device: torch.device) -> KernelTuning:
    return TUNING.get(device.type, TUNING["cuda"])


def _mm_dtype(device: torch.device) -> torch.dtype | None:
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None


class _TopKEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec, k, dead_idx, k_aux, chunk):  # noqa: ANN001, ANN205
        mm_dtype = _mm_dtype(x.device)
        with torch.autocast(x.device.type, enabled=False):
            xc = x - b_dec if b_dec is not None else x
            W = W_enc if mm_dtype is None else W_enc.to(mm_dtype)
            b = b_enc if mm_dtype is None else b_enc.to(mm_dtype)
            xm = xc if mm_dtype is None else xc.to(mm_dtype)
            n = xc.shape[0]
            vals = x.new_empty((n, k), dtype=torch.float32)
            idx = torch.empty((n, k), dtype=torch.long, device=x.device)
            aux = dead_idx is not None and k_aux > 0
            if aux:
                aux_vals = x.new_empty((n, k_aux), dtype=torch.float32)
                aux_idx = torch.empty((n, k_aux), dtype=torch.long, device=x.device)
            chunk = chunk or tuning(x.device).rows(n, W.shape[1])
            buf = torch.empty((min(chunk, n), W.shape[1]), dtype=W.dtype, device=x.device)  # reused per chunk
            for s in range(0, n, chunk):
                e = min(n, s + chunk)
                pre = torch.addmm(b, xm[s:e], W, out=buf[: e - s])
                if pre.dtype == vals.dtype:
                    torch.topk(pre, k, dim=-1, sorted=False, out=(vals[s:e], idx[s:e]))
                else:
                    v, i = pre.topk(k, dim=-1, sorted=False)
                    vals[s:e], idx[s:e] = v, i
                if aux:
                    pd = pre.index_select(1, dead_idx)
                    av, ai = pd.topk(k_aux, dim=-1, sorted=False)
                    aux_vals[s:e] = av
                    aux_idx[s:e] = dead_idx[ai]
            vals.relu_()
            if aux:
                aux_vals.relu_()
            else:
                aux_vals = vals.new_empty((n, 0))
                aux_idx = idx.new_empty((n, 0))
        ctx.save_for_backward(xc, W_enc, idx, vals, aux_idx, aux_vals)
        ctx.has_b_dec = b_dec is not None
        ctx.mm_dtype = mm_dtype
        ctx.mark_non_differentiable(idx, aux_idx)
        return vals, idx, aux_vals, aux_idx

    @staticmethod
    def backward(ctx, g_vals, _g_idx, g_aux, _g_aux_idx):  # noqa: ANN001, ANN205
        xc, W_enc, idx, vals, aux_idx, aux_vals = ctx.saved_tensors
        need_x, need_W, need_b, need_bdec = ctx.needs_input_grad[:4]
        parts_i, parts_g = [], []
        if g_vals is not None:
            parts_i.append(idx)
            parts_g.append(g_vals * (vals > 0))
        if g_aux is not None and aux_idx.shape[1] > 0:
            parts_i.append(aux_idx)
            parts_g.append(g_aux * (aux_vals > 0))
        n, d_sae = xc.shape[0], W_enc.shape[1]
        if not parts_i:
            return (None,) * 8
        idx_all = torch.cat(parts_i, 1) if len(parts_i) > 1 else parts_i[0]
        g_all = (torch.cat(parts_g, 1) if len(parts_g) > 1 else parts_g[0]).to(W_enc.dtype)
        flat_i, flat_g = idx_all.reshape(-1), g_all.reshape(-1)
        grad_x = grad_W = grad_b = grad_bdec = None
        s = torch.zeros(d_sae, dtype=W_enc.dtype, device=W_enc.device).index_add_(0, flat_i, flat_g)
        if need_b:
            grad_b = s
        if need_W and tuning(xc.device).weight_grad == "dense":
            grad_W = _dense_t_mm(idx_all, g_all, d_sae, xc, ctx.mm_dtype).t().to(W_enc.dtype)
        elif need_W:
            grad_W = _sparse_t_mm(idx_all, flat_g, d_sae, xc.to(W_enc.dtype)).t().contiguous()
        if need_x:
            grad_x = F.embedding_bag(idx_all, W_enc.t(), mode="sum", per_sample_weights=g_all)
            if need_bdec:
                grad_bdec = -grad_x.sum(0)
        elif need_bdec and ctx.has_b_dec:
            grad_bdec = -(W_enc @ s)
        return grad_x, grad_W, grad_b, grad_bdec, None, None, None, None


#: The last CSR pattern built by :func:`_sparse_t_mm`: the decoder and encoder backward of one
#: step use the same top-k indices, so the sort is done once. Holds idx itself (so no other
#: tensor can reuse its memory while cached), its version, d_sae and the parts.
_PATTERN: list = [None, -1, -1, None]


def _transposed_pattern(idx: torch.Tensor, d_sae: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(order, rows, crow) of S^T for S [n, d_sae] with the entries ``idx`` [n, per_row]."""
    held, version, d, parts = _PATTERN
    if (held is not None and held.data_ptr() == idx.data_ptr() and held.device == idx.device
            and held.shape == idx.shape and held.stride() == idx.stride() and held.dtype == idx.dtype
            and held._version == version and d == d_sae):
        return parts
    flat_i = idx.reshape(-1)
    keys = flat_i.float() if d_sae < 2**24 else flat_i
    order = torch.sort(keys, stable=True).indices
    rows = torch.div(order, idx.shape[1], rounding_mode="floor")
    crow = torch.zeros(d_sae + 1, dtype=torch.long, device=idx.device)
    crow[1:] = torch.bincount(flat_i, minlength=d_sae).cumsum(0)
    parts = (order, rows, crow)
    _PATTERN[:] = [idx, idx._version, d_sae, parts]
    return parts


def _sparse_t_mm(idx: torch.Tensor, flat_v: torch.Tensor, d_sae: int, dense: torch.Tensor):
    """S^T @ dense for S [n, d_sae] with the entries ``idx`` [n, per_row] (values ``flat_v``, flattened).

    Builds S^T as CSR (rows = latents) with one sort (shared by the backward passes that use
    the same ``idx``); float keys sort faster than int64 on CPU and are exact for d_sae < 2**24.
    """
    order, rows, crow = _transposed_pattern(idx, d_sae)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta", invariant checks
        S = torch.sparse_csr_tensor(crow, rows, flat_v[order], (d_sae, dense.shape[0]), check_invariants=False)
        return torch.sparse.mm(S, dense)


def _dense_t_mm(idx: torch.Tensor, vals: torch.Tensor, d_sae: int, dense: torch.Tensor,
                mm_dtype: torch.dtype | None) -> torch.Tensor:
    """S^T @ dense as above, with S scattered into [rows, d_sae] blocks (in ``mm_dtype``, else
    ``dense``'s dtype) and one GEMM per block, accumulated in float32 [d_sae, d]."""
    dt = mm_dtype or dense.dtype
    out = torch.zeros((d_sae, dense.shape[1]), dtype=torch.float32, device=dense.device)
    for s, e, S in _dense_blocks(idx, vals, d_sae, dt):
        out.add_(S.t() @ dense[s:e].to(dt))
    return out


def _dense_blocks(idx: torch.Tensor, vals: torch.Tensor, d_sae: int, dt: torch.dtype):
    """Yield ``(start, stop, S)`` per row block, S = ``vals`` at ``idx`` scattered into one reused
    [rows, d_sae] buffer of dtype ``dt`` (valid until the next block)."""
    n = idx.shape[0]
    step = tuning(idx.device).rows(n, d_sae)
    block = torch.empty((min(step, n), d_sae), dtype=dt, device=idx.device)
    for s in range(0, n, step):
        e = min(n, s + step)
        yield s, e, block[: e - s].zero_().scatter_add_(1, idx[s:e], vals[s:e].to(dt))


def sampled_dot(a: torch.Tensor, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``out[i, j] = a[i] . table[idx[i, j]]`` ([n, d], [m, d], [n, c] -> [n, c]).

    On CPU one SDDMM (``torch.sparse.sampled_addmm`` with the pattern ``idx``; about 3x
    faster than gathering the rows); elsewhere a gather + bmm in chunks of at most 2^26
    gathered elements.
    """
    n, c = idx.shape
    if a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64) and n * c > 0:
        crow = torch.arange(0, n * c + 1, c, dtype=torch.long, device=a.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pattern = torch.sparse_csr_tensor(crow, idx.reshape(-1), a.new_zeros(n * c), (n, table.shape[0]),
                                              check_invariants=False)
            return torch.sparse.sampled_addmm(pattern, a, table.t(), beta=0.0).values().view(n, c)
    out = a.new_empty((n, c))
    step = max(1, 2**26 // max(1, c * table.shape[1]))
    for s in range(0, n, step):
        rows = F.embedding(idx[s : s + step], table)
        torch.bmm(rows, a[s : s + step].unsqueeze(-1), out=out[s : s + step].unsqueeze(-1))
    return out


def topk_encode(
    x: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    b_dec: torch.Tensor | None,
    k: int,
    *,
    dead_idx: torch.Tensor | None = None,
    k_aux: int = 0,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k of ReLU((x - b_dec) W_enc + b_enc) per row, sparse in the backward pass.

    Returns ``(vals, idx, aux_vals, aux_idx)``: ``vals``/``idx`` [n, k] (values >= 0, as
    ReLU after top-k equals top-k after ReLU); ``aux_*`` [n, k_aux] the top among the
    latents ``dead_idx`` (empty [n, 0] when none are given). Under autocast the matmul
    runs in the autocast dtype; values and gradients are float32. ``chunk``: rows per
    block (default: the device's :data:`TUNING`).
    """
    return _TopKEncode.apply(x, W_enc, b_enc, b_dec, k, dead_idx, k_aux, chunk)


class _SparseDecode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, vals, idx, W_dec):  # noqa: ANN001, ANN205
        ctx.save_for_backward(vals, idx, W_dec)
        ctx.mm_dtype = _mm_dtype(W_dec.device)
        return F.embedding_bag(idx, W_dec, mode="sum", per_sample_weights=vals)

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        vals, idx, W_dec = ctx.saved_tensors
        g = g.to(W_dec.dtype)
        grad_vals = grad_W = None
        if ctx.needs_input_grad[0]:  # g[n] . W_dec[idx[n, j]]
            grad_vals = sampled_dot(g, W_dec, idx)
        if ctx.needs_input_grad[2] and tuning(g.device).weight_grad == "dense":
            grad_W = _dense_t_mm(idx, vals, W_dec.shape[0], g, ctx.mm_dtype).to(W_dec.dtype)
        elif ctx.needs_input_grad[2]:
            grad_W = _sparse_t_mm(idx, vals.reshape(-1), W_dec.shape[0], g)
        return grad_vals, None, grad_W


class _DenseDecode(torch.autograd.Function):
    """The decoder as GEMMs: S (vals at idx) scattered into [rows, d_sae] blocks in the matmul dtype."""

    @staticmethod
    def forward(ctx, vals, idx, W_dec):  # noqa: ANN001, ANN205
        dt = _mm_dtype(W_dec.device) or W_dec.dtype
        W = W_dec.to(dt)
        out = torch.empty((idx.shape[0], W_dec.shape[1]), dtype=W_dec.dtype, device=W_dec.device)
        for s, e, S in _dense_blocks(idx, vals, W_dec.shape[0], dt):
            out[s:e] = S @ W
        ctx.save_for_backward(vals, idx, W_dec)
        ctx.mm_dtype = dt
        return out

    @staticmethod
    def backward(ctx, g):  # noqa: ANN001, ANN205
        vals, idx, W_dec = ctx.saved_tensors
        dt, n = ctx.mm_dtype, idx.shape[0]
        grad_vals = grad_W = None
        if ctx.needs_input_grad[0]:  # (g W_dec^T)[n, idx[n, j]], block by block
            W = W_dec.to(dt)
            grad_vals = torch.empty(idx.shape, dtype=vals.dtype, device=vals.device)
            step = tuning(g.device).rows(n, W_dec.shape[0])
            for s in range(0, n, step):
                e = min(n, s + step)
                grad_vals[s:e] = (g[s:e].to(dt) @ W.t()).gather(1, idx[s:e])
        if ctx.needs_input_grad[2]:
            grad_W = _dense_t_mm(idx, vals, W_dec.shape[0], g, dt).to(W_dec.dtype)
        return grad_vals, None, grad_W


def sparse_decode(vals: torch.Tensor, idx: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor | None = None):
    """sum_j vals[:, j] * W_dec[idx[:, j]] (+ b_dec): cost ~ n * k * d_in, forward and backward
    (or GEMMs over [n, d_sae] blocks where the device's :data:`TUNING` says ``decoder="dense"``)."""
    tune = tuning(W_dec.device)
    if tune.decoder == "dense":
        out = _DenseDecode.apply(vals.to(W_dec.dtype), idx, W_dec)
    elif tune.decode_backward == "native":
        out = F.embedding_bag(idx, W_dec, mode="sum", per_sample_weights=vals.to(W_dec.dtype))
    else:
        out = _SparseDecode.apply(vals.to(W_dec.dtype), idx, W_dec)
    return out + b_dec if b_dec is not None else out


def dense_from_sparse(vals: torch.Tensor, idx: torch.Tensor, d_sae: int) -> torch.Tensor:
    """[n, d_sae] latents with ``vals`` at ``idx`` (zeros elsewhere)."""
    return vals.new_zeros((vals.shape[0], d_sae)).scatter(-1, idx, vals)


@torch.no_grad()
def geometric_median(points: torch.Tensor, max_iter: int = 100, tol: float = 1e-5) -> torch.Tensor:
    """Weiszfeld iterations (as in dictionary_learning's TopK trainer) for b_dec init."""
    guess = points.mean(0)
    for _ in range(max_iter):
        prev = guess
        w = 1 / torch.norm(points - guess, dim=1).clamp_min(1e-12)
        w = w / w.sum()
        guess = (w.unsqueeze(1) * points).sum(0)
        if torch.norm(guess - prev) < tol:
            break
    return guess


def normalized_auxk_loss(residual: torch.Tensor, e_hat: torch.Tensor) -> torch.Tensor:
    """OpenAI's normalisation: ||e - e_hat||^2 / ||e - mean(e)||^2 (batch means), NaN -> 0."""
    e = residual.detach().float()
    num = (e - e_hat.float()).pow(2).sum(-1).mean()
    den = (e - e.mean(0, keepdim=True)).pow(2).sum(-1).mean()
    return (num / den).nan_to_num(0.0)


def ramp(step: int, total_steps: int, fraction: float) -> float:
    """Linear 0 -> 1 over the first ``fraction`` of the steps (1 when fraction is 0)."""
    n = fraction * total_steps
    return 1.0 if n <= 0 else min(1.0, step / n)
