"""Many SAEs, one harvest: wall time of the sae suite for 1 SAE vs 4 SAEs on the same model.

Each configuration runs `harness run --suite sae` in its own fresh process and store (one worker, so
every row shares that process's memo, :mod:`harness.memo`): 1 row (topk k=32), 4 rows (topk at
k = 32, 16, 24, 48), and the same 4 rows with the memo off (``HARNESS_MEMO_MB=0``: every row
harvests, runs the clean and zero-ablation passes and the probing passes itself). Training is per
SAE and cannot be shared; everything model-side that no SAE changes is computed once. Prints the
wall time of each run, the summed per-phase cell timings, and the ratio to 1 SAE (target: 4 SAEs
well under 4 times 1 SAE).

    python benchmarks/sae_many_saes.py [--model zoo:zoo-96] [--seed 0] [--preset quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

KS = (32, 16, 24, 48)


def spec_text(model: str, seed: int, preset: str, ks: tuple[int, ...]) -> str:
    methods = "\n".join(f"  - {{name: topk, label: topk-k{k}, config: {{k: {k}}}}}" for k in ks)
    return (f"suites:\n  - name: sae\n    config: {{preset: {preset}}}\nmethods:\n{methods}\n"
            f"models: [\"{model}\"]\nseeds: [{seed}]\n")


def run(root: Path, model: str, seed: int, preset: str, ks: tuple[int, ...], memo_mb: str | None) -> dict:
    root.mkdir(parents=True)
    spec = root / "spec.yaml"
    spec.write_text(spec_text(model, seed, preset, ks))
    env = {**os.environ, "HARNESS_WORKERS": "1"}
    if memo_mb is not None:
        env["HARNESS_MEMO_MB"] = memo_mb
    cmd = [sys.executable, "-m", "harness.cli", "run", "--spec", str(spec), "--no-progress",
           "--output-dir", str(root / "results"), "--leaderboard-dir", str(root / "lb")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    phases: dict[str, float] = defaultdict(float)
    cells, hits = 0, 0
    for path in sorted((root / "results" / "records").glob("*/*.json")):
        rec = json.loads(path.read_text())
        cells += rec["status"] == "ok"
        details = (rec.get("output") or {}).get("details") or {}
        for k, v in (details.get("timings_s") or {}).items():
            phases[k] += v
        hits += (details.get("shared") or {}).get("hits", 0)
    if proc.returncode != 0 or cells != len(ks):
        print(proc.stderr[-3000:], file=sys.stderr)
    return {"wall": wall, "phases": dict(phases), "cells": cells, "hits": hits, "rc": proc.returncode}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="zoo:zoo-96")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="quick", choices=["quick", "full"])
    args = p.parse_args()
    from tabulate import tabulate

    import torch

    configs = [("1 SAE", KS[:1], None), ("4 SAEs", KS, None), ("4 SAEs, memo off", KS, "0")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, ks, memo_mb) in enumerate(configs):
            results[name] = run(Path(tmp) / str(i), args.model, args.seed, args.preset, ks, memo_mb)
    base = results["1 SAE"]["wall"]
    phases = sorted({k for r in results.values() for k in r["phases"]})
    rows = [[name, r["cells"], r["hits"], f"{r['wall']:.1f}", f"{r['wall'] / base:.2f}",
             *(f"{r['phases'].get(k, 0.0):.1f}" for k in phases)] for name, r in results.items()]
    print(f"sae suite, {args.model}, preset {args.preset}, seed {args.seed}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs")
    print(tabulate(rows, headers=["run", "cells ok", "memo hits", "wall s", "x 1 SAE", *(f"{k} s" for k in phases)]))
    four, off = results["4 SAEs"]["wall"], results["4 SAEs, memo off"]["wall"]
    print(f"\n4 SAEs cost {four / base:.2f}x one SAE (memo off: {off / base:.2f}x); "
          f"the shared work saves {off - four:.1f} s of {off:.1f} s")
    return 0 if all(r["rc"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
