"""Time the pieces of one TopK SAE training step in isolation, to see where a step's time goes.

For each (d_sae, k): the encoder GEMM, top-k selection (``torch.topk`` on bf16 and fp32
pre-activations, and the exact two-stage variant: top-k within column groups, then top-k of
the candidates), the sparse decoder (``embedding_bag`` forward, native backward), the weight
gradient S^T x as a CSR sparse-dense product and as scatter + dense GEMM, and the fused Adam
step. Median of ``--reps`` timed calls after warm-up (CUDA events on a GPU, wall time on a CPU).

    python benchmarks/topk_components.py --device cuda --batch 16384 --m 16384 --k 32 128
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def timer(device: str, reps: int):
    import torch

    def run(fn) -> float:  # milliseconds, median
        for _ in range(3):
            fn()
        out = []
        for _ in range(reps):
            if device == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                out.append(a.elapsed_time(b))
            else:
                t = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t) * 1e3)
        return statistics.median(out)

    return run


def two_stage_topk(pre, k: int, group: int):
    """Exact top-k per row: top-k within groups of ``group`` columns, then top-k of the candidates."""
    import torch

    n, m = pre.shape
    v, i = pre.view(n, m // group, group).topk(k, dim=-1, sorted=False)
    i = i + (torch.arange(m // group, device=pre.device) * group).unsqueeze(-1)
    v2, j = v.view(n, -1).topk(k, dim=-1, sorted=False)
    return v2, i.view(n, -1).gather(1, j)


def main(argv: list[str] | None = None) -> int:
    import torch
    import torch.nn.functional as F
    from tabulate import tabulate

    from harness.sae import kernels
    from harness.sae.kernels import _dense_t_mm, _sparse_t_mm

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--m", type=int, nargs="+", default=[16384])
    p.add_argument("--k", type=int, nargs="+", default=[32, 128])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--reps", type=int, default=10)
    a = p.parse_args(argv)
    dev = torch.device(a.device)
    run = timer(dev.type, a.reps)
    g = torch.Generator(device=dev).manual_seed(0)
    rows = []
    for m in a.m:
        x = torch.randn(a.batch, a.d, device=dev, generator=g)
        W = torch.randn(a.d, m, device=dev, generator=g) / a.d**0.5
        Wd = torch.randn(m, a.d, device=dev, generator=g)
        xb, Wb = x.bfloat16(), W.bfloat16()
        pre_b = xb @ Wb
        pre_f = pre_b.float()
        rows.append([m, "-", "encoder GEMM bf16", run(lambda: xb @ Wb)])
        rows.append([m, "-", "encoder GEMM fp32", run(lambda: x @ W)])
        for k in a.k:
            rows.append([m, k, "torch.topk bf16", run(lambda: pre_b.topk(k, dim=-1, sorted=False))])
            rows.append([m, k, "torch.topk fp32", run(lambda: pre_f.topk(k, dim=-1, sorted=False))])
            for group in (1024, 2048):
                if m % group == 0 and group > k:
                    ref = pre_b.topk(k, dim=-1).values
                    got = two_stage_topk(pre_b, k, group)[0].sort(-1, descending=True).values
                    ok = "exact" if torch.equal(ref, got) else "MISMATCH"
                    rows.append([m, k, f"two-stage topk bf16, groups of {group} ({ok})",
                                 run(lambda: two_stage_topk(pre_b, k, group))])
            vals, idx = pre_f.topk(k, dim=-1, sorted=False)
            vals = vals.relu().requires_grad_()
            Wdp = Wd.clone().requires_grad_()
            rows.append([m, k, "embedding_bag forward",
                         run(lambda: F.embedding_bag(idx, Wd, mode="sum", per_sample_weights=vals.detach()))])
            gout = torch.randn(a.batch, a.d, device=dev, generator=g)

            def native():
                out = F.embedding_bag(idx, Wdp, mode="sum", per_sample_weights=vals)
                torch.autograd.grad(out, (vals, Wdp), gout)

            rows.append([m, k, "embedding_bag forward + native backward", run(native)])
            flat = vals.detach().reshape(-1)

            def csr():
                kernels._PATTERN[0] = None  # include the sort that builds the pattern (once per step in training)
                return _sparse_t_mm(idx, flat, m, x)

            rows.append([m, k, "S^T x: CSR sparse-dense, pattern built (fp32)", run(csr)])
            rows.append([m, k, "S^T x: scatter + GEMM (bf16)",
                         run(lambda: _dense_t_mm(idx, vals.detach(), m, x, torch.bfloat16))])
        params = [torch.nn.Parameter(W.clone()), torch.nn.Parameter(Wd.clone())]
        for q in params:
            q.grad = torch.randn_like(q)
        opt = torch.optim.Adam(params, lr=1e-4, fused=True)
        rows.append([m, "-", "fused Adam step (W_enc + W_dec)", run(opt.step)])
    print(f"TopK step components, batch {a.batch}, d_in {a.d}, device {a.device} "
          f"({torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}), median of {a.reps}")
    print(tabulate([[m, k, what, f"{ms:.3f}"] for m, k, what, ms in rows], headers=["d_sae", "k", "piece", "ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
