"""Peak memory of the sae suite's CE / KL evaluation on a Pythia-70M-shaped model.

Builds a random-initialised model from ``../shared/data/pythia-70m-shape`` (Pythia-70M's
config and tokenizer, no weights; relative to the repository root), a random TopK SAE at
``blocks.3.hook_resid_post``, and runs :func:`harness_plugins.sae_bench.evaluate.evaluate_sae`
(reconstruction statistics, CE loss recovered and KL passes) on the world's held-out text at
the sae suite's defaults (``model_batch_size`` 32, ``context_length`` 128, the quick preset's
8,192 evaluation tokens). Each mode runs in a fresh child process, which reports its peak
resident set size (``ru_maxrss``):

- ``chunked``: the default (logits passes over row chunks of at most ``MAX_LOGITS_ELEMENTS``);
- ``one pass``: every batch's logits at once (``max_logits_elements`` unbounded), as before.

    python benchmarks/sae_eval_memory.py [--modes chunked,one-pass] [--tokens 8192] [--batch 32]

Prints the peak RSS, the wall time and the CE / KL values of each mode (they agree up to
float rounding).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPE_DIR = REPO.parent / "shared" / "data" / "pythia-70m-shape"
MODES = {"chunked": None, "one-pass": 2**62}


def _child(args: argparse.Namespace) -> None:
    import resource

    import torch
    from transformers import AutoConfig, AutoTokenizer, GPTNeoXForCausalLM

    from harness.models import iter_token_batches
    from harness.plugins import get_registries
    from harness.zoo import World
    from harness_plugins.sae_bench.evaluate import MAX_LOGITS_ELEMENTS, evaluate_sae

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(SHAPE_DIR)
    net = GPTNeoXForCausalLM(config).eval()
    tok = AutoTokenizer.from_pretrained(SHAPE_DIR)
    learner = get_registries()["dictionary_learner"].get("topk")
    sae = learner.create(config.hidden_size, learner.Config(d_sae=8 * config.hidden_size, k=32), seed=0).eval()
    texts = (d.text for d in World(seed=0).documents(start=200_000))
    batches, seen = [], 0
    for b in iter_token_batches(texts, tokenizer=tok, batch_size=args.batch, context_length=args.ctx):
        batches.append(b)
        seen += int(b.attention_mask.sum())
        if seen >= args.tokens:
            break
    limit = MODES[args.child] or MAX_LOGITS_ELEMENTS
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    _, s = evaluate_sae(net, sae, args.hook, batches, bos_token_id=tok.bos_token_id, max_logits_elements=limit)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"mode": args.child, "peak_rss_gb": peak / 2**20, "rss_before_eval_gb": base / 2**20,
                      "wall_s": wall, "batches": len(batches), "ce_clean": s.ce_clean, "ce_sae": s.ce_sae,
                      "ce_zero": s.ce_zero, "kl_sae": s.kl_sae, "kl_zero": s.kl_zero}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="chunked,one-pass", help="Comma-separated: chunked, one-pass.")
    parser.add_argument("--tokens", type=int, default=8192, help="Evaluation tokens (the quick preset's).")
    parser.add_argument("--batch", type=int, default=32, help="Contexts per forward pass (model_batch_size).")
    parser.add_argument("--ctx", type=int, default=128, help="Tokens per context (context_length).")
    parser.add_argument("--hook", default="blocks.3.hook_resid_post")
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    parser.add_argument("--child", choices=sorted(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    if not (SHAPE_DIR / "config.json").is_file():
        print(f"{SHAPE_DIR} is absent: it holds Pythia-70M's config and tokenizer (no weights).", file=sys.stderr)
        return 1
    from tabulate import tabulate

    rows = []
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--child", mode, "--tokens", str(args.tokens), "--batch", str(args.batch),
               "--ctx", str(args.ctx), "--hook", args.hook, "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"CE / KL evaluation, random Pythia-70M-shaped model, {args.hook}, {rows[0]['batches']} batches of "
          f"{args.batch} x {args.ctx} tokens")
    print(tabulate([[r["mode"], f"{r['peak_rss_gb']:.2f}", f"{r['rss_before_eval_gb']:.2f}", f"{r['wall_s']:.1f}",
                     f"{r['ce_clean']:.6f}", f"{r['ce_sae']:.6f}", f"{r['ce_zero']:.6f}", f"{r['kl_sae']:.6f}",
                     f"{r['kl_zero']:.6f}"] for r in rows],
                   headers=["mode", "peak RSS GB", "RSS before eval GB", "wall s", "ce_clean", "ce_sae", "ce_zero",
                            "kl_sae", "kl_zero"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
