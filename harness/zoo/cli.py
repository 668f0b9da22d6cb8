"""``harness zoo build`` and ``harness zoo info`` (argparse; wired in by ``harness/cli.py``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

TASK_SHORT = {
    "zoo_facts_frequent": "freq",
    "zoo_facts_rare": "rare",
    "zoo_facts_heldout": "held",
    "zoo_arithmetic": "add",
    "zoo_sequence": "seq",
    "zoo_agreement": "agree",
    "zoo_first_letter": "letter",
}


def configure_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``zoo`` command (with ``build`` and ``info`` subcommands) to ``subparsers``."""
    zoo = subparsers.add_parser("zoo", help="build or inspect the embedded model zoo", description="The embedded Pythia-style model zoo.")
    zsub = zoo.add_subparsers(dest="zoo_command", metavar="{build,info}")
    zoo.set_defaults(func=lambda args: (zoo.print_help(), 2)[1])

    b = zsub.add_parser("build", help="train the zoo (resumable)")
    b.add_argument("--out", default=None, help="output folder (default: the package's harness/zoo/checkpoints)")
    b.add_argument("--seed", type=int, default=0, help="world and initialisation seed")
    b.add_argument("--sizes", default=None, help="comma-separated model names, e.g. zoo-32,zoo-64 (default: all)")
    b.add_argument("--tokens", type=int, default=None, help="training tokens per model (default: the suite's budget)")
    b.add_argument("--tiny", action="store_true", help="seconds-long miniature build (for tests)")
    b.add_argument("--no-resume", action="store_true", help="retrain from scratch instead of resuming")
    b.add_argument("--no-eval", action="store_true", help="skip the built-in evaluation")
    b.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    b.set_defaults(func=cmd_build)

    i = zsub.add_parser("info", help="print sizes, tokens, task accuracy and canary memorisation")
    i.add_argument("--dir", default=None, help="zoo folder (default: the committed zoo)")
    i.add_argument("--revision", default="main", help="which revision's evaluation to show (default: main)")
    i.add_argument("--recompute", action="store_true", help="re-run the built-in evaluation first")
    i.add_argument("--json", action="store_true", help="print the rows as JSON")
    i.set_defaults(func=cmd_info)
    return zoo


def cmd_build(args: argparse.Namespace) -> int:
    """Run :func:`harness.zoo.build.build_zoo` from parsed arguments."""
    from harness.zoo.build import build_zoo

    try:
        build_zoo(args.out, seed=args.seed, sizes=args.sizes, tokens=args.tokens, progress=True,
                  resume=not args.no_resume, tiny=args.tiny, evaluate=not args.no_eval, threads=args.threads)
    except ValueError as e:
        print(f"harness zoo build: {e}")
        return 2
    return cmd_info(argparse.Namespace(dir=args.out, revision="main", recompute=False, json=False))


def format_tables(rows: list[dict[str, Any]]) -> str:
    """The two ``zoo info`` tables: capabilities, and canary extraction by repetitions."""
    from tabulate import tabulate

    tasks = list(dict.fromkeys(t for r in rows for t in r["tasks"]))
    cap = [[r["model"], f"{r['d_model']}x{r['n_layers']}", f"{r['params'] / 1e6:.2f}M", f"{r['tokens_seen'] / 1e6:.2f}M",
            len(r["revisions"]), r["heldout_loss"], *[r["tasks"].get(t) for t in tasks]] for r in rows]
    head = ["model", "d x L", "params", "tokens", "revs", "loss", *[TASK_SHORT.get(t, t) for t in tasks]]
    reps = sorted({int(k) for r in rows for k in r["canary_extracted"]})
    mem = [[r["model"], *[r["canary_extracted"].get(str(k)) for k in reps]] for r in rows]
    out = tabulate(cap, head, floatfmt=".3f")
    if reps:
        out += "\n\ncanary k-extraction rate by repetitions in training (0 = never-seen controls)\n"
        out += tabulate(mem, ["model", *[f"x{k}" for k in reps]], floatfmt=".2f")
    return out


def cmd_info(args: argparse.Namespace) -> int:
    """Print :func:`harness.zoo.info.zoo_info` as tables (or JSON)."""
    from harness.zoo.info import reevaluate, zoo_info

    if args.recompute:
        reevaluate(args.dir)
    rows = zoo_info(args.dir, revision=args.revision)
    if not rows:
        print("no zoo models found; build them with `harness zoo build` (or `--tiny` for a quick check)")
        return 1
    print(json.dumps(rows, indent=2) if args.json else format_tables(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m harness.zoo.cli zoo info``)."""
    parser = argparse.ArgumentParser(prog="harness")
    configure_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args)) if hasattr(args, "func") else (parser.print_help() or 2)


if __name__ == "__main__":
    raise SystemExit(main())
