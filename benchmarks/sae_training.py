"""TopK SAE training throughput and peak memory: harness's trainer vs sparsify, side by side.

Each configuration (d_in, d_sae, k, batch, kernel, precision) runs in its own subprocess
(so peak memory is per configuration) on activations held in memory, timing full
optimiser steps of harness's shared trainer step (loss, backward, parallel-gradient
removal, clipping, Adam, decoder renormalisation, dead-latent tracking). On cuda the
timing uses CUDA events and the peak is ``torch.cuda.max_memory_allocated``; on cpu
wall time and peak RSS (minus the RSS before the SAE was built).

With ``--peer-python PATH`` the peer script (default ``../shared/peers/sparsify_topk.py``
next to the repository; sparsify's SparseCoder in its own venv) runs at the same
configuration in the same invocation, right after ours, and the table shows the ratio
ours / sparsify (fp32 peer vs each of our rows). CPU machines are often shared: compare
ratios from one invocation, not absolute numbers across runs; ``--repeat N`` alternates
ours and the peer N times per configuration and keeps each side's best run (the header
shows the load average before and after).

``--tune SPEC ...`` times the sparse kernel once per :class:`harness.sae.kernels.KernelTuning`
variant (``default`` = the device's built-in choice; else ``field=value,...``, e.g.
``decoder=sparse,decode_backward=native`` or ``chunk_rows=4096``), one row each.

    python benchmarks/sae_training.py                       # full grid
    python benchmarks/sae_training.py --m 16384 --k 32 --peer-python /path/to/peer/bin/python
    python benchmarks/sae_training.py --device cuda --batch 16384 --steps 50 --warmup 5 --precisions bf16 \
        --tune default decoder=sparse weight_grad=sparse,decoder=sparse
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
DEFAULT_PEER = HERE.parent.parent.parent / "shared" / "peers" / "sparsify_topk.py"


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def parse_tuning(spec: str) -> dict:
    """``"default"`` -> {}; ``"a=1,b=x,c=none"`` -> {"a": 1, "b": "x", "c": None} (fields of KernelTuning)."""
    import dataclasses

    from harness.sae.kernels import KernelTuning

    fields = sorted(f.name for f in dataclasses.fields(KernelTuning))
    out: dict = {}
    for part in [] if spec == "default" else spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in fields:
            raise SystemExit(f"--tune: {part!r} is not field=value with a field of KernelTuning: {fields}")
        out[key.strip()] = None if value == "none" else int(value) if value.isdigit() else value
    return out


def apply_tuning(spec: str, device: str) -> None:
    import dataclasses

    import torch

    from harness.sae import kernels

    dev = torch.device(device)
    kernels.TUNING[dev.type] = dataclasses.replace(kernels.tuning(dev), **parse_tuning(spec))


def worker(a: argparse.Namespace) -> dict:
    import torch

    apply_tuning(a.tuning, a.device)
    from harness.sae.config import SAETrainConfig
    from harness.sae.trainer import TrainStep
    from harness.testing import registries_with

    dev = torch.device(a.device)
    torch.manual_seed(0)
    X = torch.randn(a.batch * 4, a.d, device=dev)
    cls = registries_with(builtins=True)["dictionary_learner"].get("topk")
    extra = {"unit_norm_decoder": False} if a.bare else {}
    sae = cls.create(a.d, {"d_sae": a.m, "k": a.k, "kernel": a.kernel} | extra, seed=0).to(dev)
    cfg = SAETrainConfig(batch_size=a.batch, autocast="bf16" if a.precision == "bf16" else "off",
                      warmup_steps=0, decay="none", progress=False, grad_clip=0.0 if a.bare else 1.0)
    total = a.warmup + a.steps
    step = TrainStep(sae, cfg, total, dev)
    base = _rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) / 2**20

    def run(i: int) -> None:
        step(X[(i % 4) * a.batch : ((i % 4) + 1) * a.batch], i)

    for i in range(a.warmup):
        run(i)
    if dev.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(a.warmup, total):
            run(i)
        end.record()
        torch.cuda.synchronize(dev)
        dt = start.elapsed_time(end) / 1e3 / a.steps
        peak = torch.cuda.max_memory_allocated(dev) / 2**20 - base
    else:
        t = time.perf_counter()
        for i in range(a.warmup, total):
            run(i)
        dt = (time.perf_counter() - t) / a.steps
        peak = _rss_mb() - base
    return {"tok_s": a.batch / dt, "ms_step": dt * 1e3, "peak_mb": peak}


def gemm_gflops(d: int, m: int, batch: int, device: str, precision: str = "fp32") -> float:
    """GFLOP/s of the plain encoder GEMM [batch, d] @ [d, m] in the row blocks the sparse kernel uses
    (reused output), best of several: the floor of every exact TopK step is 2 * batch * d * m FLOP at this rate."""
    import torch

    from harness.sae.kernels import tuning

    dev = torch.device(device)
    dt = torch.bfloat16 if precision == "bf16" else torch.float32
    x, W = torch.randn(batch, d, device=dev, dtype=dt), torch.randn(d, m, device=dev, dtype=dt)
    rows = tuning(dev).rows(batch, m)
    out = torch.empty(rows, m, device=dev, dtype=dt)
    best = float("inf")
    for _ in range(4 if dev.type == "cpu" else 20):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        for s in range(0, batch, rows):
            torch.mm(x[s : s + rows], W, out=out[: min(rows, batch - s)])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        best = min(best, time.perf_counter() - t)
    return 2 * batch * d * m / best / 1e9


def run_ours(a: argparse.Namespace, m: int, k: int, kernel: str, prec: str, tune: str = "default") -> dict | None:
    cmd = [sys.executable, str(HERE), "--worker", "--device", a.device, "--d", str(a.d), "--m", str(m),
           "--k", str(k), "--batch", str(a.batch), "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--kernel", kernel, "--precision", prec, "--tuning", tune] + (["--bare"] if a.bare else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    hit = re.search(r"^RESULT (.*)$", out.stdout, re.M)
    if not hit:
        print(f"worker failed: {out.stderr[-2000:]}", file=sys.stderr)
        return None
    r = json.loads(hit.group(1))
    print(f"  ours d_sae={m} k={k} {kernel}/{prec} [{tune}]: {r['tok_s']:.0f} tok/s", file=sys.stderr, flush=True)
    return r


def run_peer(python: str, script: str, a: argparse.Namespace, m: int, k: int) -> float | None:
    cmd = [python, script, "--device", a.device, "--d", str(a.d), "--m", str(m), "--k", str(k),
           "--batch", str(a.batch), "--steps", str(a.steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    hit = re.search(r"sparsify SparseCoder.*?:\s*([\d.]+) tok/s", out.stdout)
    if not hit:
        print(f"peer failed ({' '.join(cmd)}):\n{out.stdout}\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return float(hit.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--m", type=int, nargs="+", default=[4096, 16384], help="Dictionary sizes.")
    p.add_argument("--k", type=int, nargs="+", default=[32, 128])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=5, help="Timed steps.")
    p.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
    p.add_argument("--kernels", nargs="+", default=["sparse", "dense"], choices=["sparse", "dense"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--peer-python", help="Python of a venv with eai-sparsify: run the peer at each configuration.")
    p.add_argument("--peer-script", default=str(DEFAULT_PEER), help="Peer benchmark script.")
    p.add_argument("--timeout", type=int, default=1800, help="Seconds per subprocess.")
    p.add_argument("--repeat", type=int, default=1,
                   help="Alternate ours and the peer this many times per configuration; keep each side's best run.")
    p.add_argument("--bare", action="store_true",
                   help="No gradient clipping, no unit-norm decoder constraint: the same work as the peer's step.")
    p.add_argument("--tune", nargs="+", default=["default"], metavar="SPEC",
                   help="KernelTuning variants of the sparse kernel: 'default' or field=value,... (one row each).")
    p.add_argument("--json", help="Also write the rows to this JSON file.")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--kernel", default="sparse", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--tuning", default="default", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for spec in a.tune:
        parse_tuning(spec)  # fail before any run
    if a.worker:
        a.m, a.k = a.m[0], a.k[0]
        print("RESULT " + json.dumps(worker(a)))
        return 0

    from tabulate import tabulate

    import os

    load_before = os.getloadavg()[0]
    rows = []
    gemm: dict[tuple[int, str], float] = {}  # (d_sae, precision) -> GFLOP/s, measured once per d_sae
    for m in a.m:
        for k in a.k:
            best: dict[tuple[str, str, str], dict] = {}
            peer = None
            for _ in range(a.repeat):
                for kernel in a.kernels:
                    for prec in a.precisions:
                        for tune in a.tune if kernel == "sparse" else ["-"]:
                            r = run_ours(a, m, k, kernel, prec, tune if kernel == "sparse" else "default")
                            key = (kernel, prec, tune)
                            if r is not None and (key not in best or r["tok_s"] > best[key]["tok_s"]):
                                best[key] = r
                p_tok = run_peer(a.peer_python, a.peer_script, a, m, k) if a.peer_python else None
                if p_tok is not None:
                    print(f"  sparsify d_sae={m} k={k}: {p_tok:.0f} tok/s", file=sys.stderr, flush=True)
                    peer = max(peer or 0.0, p_tok)
            ours = [{"d_in": a.d, "d_sae": m, "k": k, "kernel": kern, "precision": prec, "tuning": tune, **r}
                    for (kern, prec, tune), r in best.items()]
            for r in ours:
                r["sparsify_tok_s"] = peer
                r["ours/sparsify"] = r["tok_s"] / peer if peer else None
            for prec in a.precisions:
                if (m, prec) not in gemm:
                    gemm[m, prec] = gemm_gflops(a.d, m, a.batch, a.device, prec)
            for r in ours:
                r["gemm_gflops"] = gf = gemm[m, r["precision"]]
                r["gemm_share"] = 2 * a.batch * a.d * m / gf / 1e9 / (r["ms_step"] / 1e3)
            rows.extend(ours)
    headers = ["d_in", "d_sae", "k", "kernel", "precision", "tuning", "tok/s", "ms/step", "peak MB", "enc GEMM share",
               "sparsify tok/s", "ours/sparsify"]
    table = [[r["d_in"], r["d_sae"], r["k"], r["kernel"], r["precision"], r["tuning"], f"{r['tok_s']:.0f}", f"{r['ms_step']:.0f}",
              f"{r['peak_mb']:.0f}", f"{r['gemm_share']:.0%}",
              f"{r['sparsify_tok_s']:.0f}" if r["sparsify_tok_s"] else "-",
              f"{r['ours/sparsify']:.2f}x" if r["ours/sparsify"] else "-"] for r in rows]
    mode = "bare step (no clipping / decoder constraint)" if a.bare else "full trainer step"
    print(f"TopK SAE training, batch {a.batch}, device {a.device}, activations in memory, {mode}; "
          f"best of {a.repeat}, {a.steps} timed steps; load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    print(tabulate(table, headers=headers))
    print("plain encoder GEMM [batch, d_in] @ [d_in, d_sae]: "
          + ", ".join(f"d_sae={m} {prec}: {g:.0f} GFLOP/s" for (m, prec), g in sorted(gemm.items()))
          + "; enc GEMM share = time of that GEMM alone / ms/step (the floor of an exact top-k step)")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
