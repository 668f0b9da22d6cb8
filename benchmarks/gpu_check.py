"""GPU check: a tiny sweep of every registered suite on CUDA, plus harvest and SAE-training throughput.

On a CUDA machine it
1. plans every registered suite (default models and methods, one seed; ``--suite`` to pick,
   ``--baselines-only`` to skip methods) into a fresh temporary store and computes it on
   ``cuda`` through an executor (``--workers N``: the local process pool, one worker per GPU),
   then prints every cell's wall time and, for the lm-eval suite, the scoring time per model;
2. times activation harvesting (:func:`harness.models.harvest`) on the largest zoo model,
   in tokens/s;
3. times TopK SAE training steps (:mod:`harness.sae`'s shared ``TrainStep``), in tokens/s,
   when ``harness.sae`` is installed.

Without a CUDA device it says so and exits with status 0 (``--require-cuda``: status 1);
``--cpu`` runs the same checks on the CPU instead (a smoke test of this script).

    python benchmarks/gpu_check.py [--suite lm_eval] [--baselines-only] [--workers 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def sweep(args: argparse.Namespace, device: str, root: Path) -> list[list[object]]:
    from tabulate import tabulate

    from harness.config import RunSpec
    from harness.executors import make_executor
    from harness.plugins import get_registries
    from harness.runner import execute, plan
    from harness.store import Store

    regs = get_registries()
    suites = args.suite or regs.suites.names()
    spec = RunSpec(suites=suites, methods=[] if args.baselines_only else None, seeds=[0], device=device,
                   output_dir=root / "results", leaderboard_dir=root / "leaderboards")
    cells = plan(spec, regs)
    store = Store(spec.output_dir)
    print(f"[sweep] {len(cells)} cells of {', '.join(suites)} on {device} (workers={args.workers})", flush=True)
    t0 = time.perf_counter()
    summary = execute(cells, store, regs, device=device, progress=False,
                      executor=make_executor("local", workers=args.workers))
    wall = time.perf_counter() - t0
    rows, per_model = [], defaultdict(float)
    for pc in cells:
        rec = store.get(pc.cell.suite, pc.key)
        status = rec.status if rec else "missing"
        secs = rec.provenance.wall_time_s if rec else float("nan")
        rows.append([pc.cell.suite, pc.label, pc.cell.model, status, f"{secs:.2f}",
                     rec.provenance.device if rec else "-"])
        if rec and pc.cell.suite == "lm_eval":
            per_model[pc.cell.model] += secs
        if rec and rec.status == "failed":
            print(f"  FAILED {pc.cell.suite}/{pc.label}/{pc.cell.model}: {rec.error['type']}: {rec.error['message']}")
    print(tabulate(rows, headers=["suite", "row", "model", "status", "wall s", "device"]))
    print(f"[sweep] computed {summary.done}, failed {summary.failed}; {wall:.1f}s end to end")
    if per_model:
        print("\n[lm-eval] scoring time per model (all cells of the model: load + score)")
        print(tabulate([[m, f"{s:.2f}"] for m, s in sorted(per_model.items())], headers=["model", "seconds"]))
    return rows


def harvest_throughput(device: str, batches: int = 20, batch_size: int = 16, ctx: int = 128) -> None:
    import torch

    from harness.models import harvest
    from harness.plugins import get_registries

    source = get_registries().model_sources.get("zoo")()
    name = source.list_models()[-1]
    lm = source.load(name, None, device=device, dtype="float32")
    layer = lm.n_layers // 2
    point = f"blocks.{layer}.hook_resid_post"
    vocab = lm.model.config.vocab_size
    tokens = torch.randint(1, vocab, (batches * batch_size, ctx), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for _ in harvest(lm, point, tokens[:batch_size], batch_size=batch_size, context_length=ctx):
            pass  # warm-up
        _sync(device)
        t = time.perf_counter()
        n = 0
        for acts in harvest(lm, point, tokens, batch_size=batch_size, context_length=ctx):
            n += acts.input_ids.numel()
        _sync(device)
        dt = time.perf_counter() - t
    print(f"\n[harvest] zoo:{name} ({lm.n_layers} layers, d={lm.d_model}) {point}: {n} tokens in {dt:.3f}s "
          f"= {n / dt:,.0f} tokens/s on {device}")


def sae_throughput(device: str, d_in: int = 512, d_sae: int = 16384, k: int = 32, batch: int = 4096,
                   steps: int = 30) -> None:
    try:
        from harness.sae.config import SAETrainConfig
        from harness.sae.trainer import TrainStep
    except ImportError:
        print("\n[sae] harness.sae is not installed here: SAE training throughput skipped.")
        return
    import torch

    from harness.plugins import get_registries

    regs = get_registries()
    if "topk" not in regs["dictionary_learner"]:
        print("\n[sae] no 'topk' dictionary learner registered: SAE training throughput skipped.")
        return
    dev = torch.device(device)
    torch.manual_seed(0)
    x = torch.randn(batch * 4, d_in, device=dev)
    sae = regs["dictionary_learner"].get("topk").create(d_in, {"d_sae": d_sae, "k": k}, seed=0).to(dev)
    cfg = SAETrainConfig(batch_size=batch, warmup_steps=0, decay="none", progress=False)
    step = TrainStep(sae, cfg, steps + 5, dev)
    for i in range(5):
        step(x[(i % 4) * batch:((i % 4) + 1) * batch], i)
    _sync(device)
    t = time.perf_counter()
    for i in range(5, 5 + steps):
        step(x[(i % 4) * batch:((i % 4) + 1) * batch], i)
    _sync(device)
    dt = time.perf_counter() - t
    print(f"\n[sae] TopK SAE d_in={d_in} d_sae={d_sae} k={k} batch={batch} (autocast {cfg.autocast}): "
          f"{steps * batch / dt:,.0f} tokens/s ({dt / steps * 1e3:.1f} ms/step) on {device}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", action="append", help="Only this suite (repeatable; default: every registered).")
    p.add_argument("--baselines-only", action="store_true", help="Sweep the unmodified models only.")
    p.add_argument("--workers", type=int, default=1, help="Local worker processes (one per GPU); 1 = in-process.")
    p.add_argument("--skip-sweep", action="store_true", help="Only the harvest and SAE throughput checks.")
    p.add_argument("--keep", help="Keep the sweep's store and leaderboards in this folder.")
    p.add_argument("--cpu", action="store_true", help="No GPU needed: run the same checks on the CPU (smoke test).")
    p.add_argument("--require-cuda", action="store_true", help="Exit with status 1 when no CUDA device is present.")
    args = p.parse_args(argv)

    import torch

    if args.cpu:
        device = "cpu"
    elif not torch.cuda.is_available():
        print("gpu_check: NO CUDA DEVICE is visible to torch "
              f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); nothing was checked. "
              "Run it on a GPU machine, or pass --cpu for a CPU smoke test.")
        return 1 if args.require_cuda else 0
    else:
        device = "cuda"
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        print(f"gpu_check: {len(names)} CUDA device(s): {', '.join(names)}; torch {torch.__version__}")
    failed = 0
    if not args.skip_sweep:
        with tempfile.TemporaryDirectory() as tmp:
            rows = sweep(args, device, Path(args.keep or tmp))
        failed = sum(r[3] != "ok" for r in rows)
    harvest_throughput(device)
    sae_throughput(device, **({"d_sae": 2048, "batch": 512, "steps": 5} if device == "cpu" else {}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
