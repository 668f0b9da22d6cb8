"""``harness eval-sae``: put SAEs that already exist on the sae board, without writing a spec.

    harness eval-sae saes/zoo64-topk saes/from-saelens --model zoo:zoo-64 --hook blocks.1.hook_resid_post

Each PATH becomes one ``pretrained_sae`` row (label: the folder name, made distinct, or
``--label``) of the ``sae`` suite at ``--hook`` on ``--model``; the run is ``harness run``'s
(same store, executors, leaderboards and exit codes). ``--set key=value`` overrides the sae
suite's config (budgets, probing, ...).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def configure_parser(subparsers: Any, *, run: Callable[[argparse.Namespace], int],
                     add_executor_args: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """Add ``eval-sae`` to ``subparsers``; ``run`` is ``harness run``'s command function (given by
    :mod:`harness.cli`, so this module does not import it), ``add_executor_args`` its executor flags."""
    p = subparsers.add_parser("eval-sae", help="Score saved SAE folders (harness, SAELens, sparsify, ...) on the sae board.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="SAE folder (cfg.json + *.safetensors); one row each.")
    p.add_argument("--model", required=True, help="Model: [source:]name[@revision], e.g. zoo:zoo-64.")
    p.add_argument("--hook", required=True, help="Hook point the SAEs read, e.g. blocks.1.hook_resid_post.")
    p.add_argument("--label", action="append", default=[], help="Row label per PATH, in order (default: folder names).")
    p.add_argument("--format", default="auto", choices=["auto", "harness", "saelens", "sparsify", "dictionary_learning"],
                   help="Format of every PATH (default: detected from its files).")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="sae suite config override (JSON/YAML value), e.g. --set probing=false (repeatable).")
    p.add_argument("--seed", action="append", type=int,
                   help="Seed (repeatable; default 0: a saved SAE is not retrained, seeds only redraw probe splits).")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="Device (default auto).")
    p.add_argument("--output-dir", help="Results store (default harness-results).")
    p.add_argument("--leaderboard-dir", help="Where leaderboards are written (default leaderboards).")
    p.add_argument("--force", action="store_true", help="Recompute cells already recorded (old records kept).")
    p.add_argument("--dry-run", action="store_true", help="Print the planned cells and stop.")
    p.add_argument("--no-progress", action="store_true", help="No progress bars.")
    add_executor_args(p)
    p.set_defaults(func=lambda args: cmd_eval_sae(args, run))
    return p


def row_labels(paths: list[str], given: list[str]) -> list[str]:
    """``given`` (one per path), else the folder names, with ``-2``, ``-3``, ... where names repeat."""
    from harness.errors import SpecError

    if given:
        if len(given) != len(paths):
            raise SpecError(f"--label: {len(given)} labels for {len(paths)} paths. Fix: pass one --label per PATH, "
                            "in order, or none (labels are then the folder names).")
        if len(set(given)) != len(given):
            raise SpecError("--label: labels repeat; rows with one label would be merged. Fix: give distinct labels.")
        return list(given)
    out: list[str] = []
    for p in paths:
        base = Path(p).resolve().name or "sae"
        label, n = base, 1
        while label in out:
            n += 1
            label = f"{base}-{n}"
        out.append(label)
    return out


def cmd_eval_sae(args: argparse.Namespace, run: Callable[[argparse.Namespace], int]) -> int:
    """Build the run (sae suite at --hook, one pretrained_sae row per PATH) and run it as `harness run` does."""
    from harness.sae.cli import parse_sets

    labels = row_labels(args.paths, args.label)
    suite_config = {**parse_sets(args.set), "hook_point": args.hook}
    run_args = argparse.Namespace(**vars(args))
    run_args.spec = None
    run_args.suite = [{"name": "sae", "config": suite_config}]
    run_args.method = [
        {"name": "pretrained_sae", "label": label, "config": {"path": str(Path(p).resolve()), "format": args.format}}
        for p, label in zip(args.paths, labels)
    ]
    run_args.model = [args.model]
    run_args.seed = args.seed or [0]
    run_args.extra_metric = None
    run_args.dtype = None
    run_args.baselines_only = False
    return run(run_args)
