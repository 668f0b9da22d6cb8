"""The `harness` command. Only argparse is imported at start-up: `harness --help` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.kinds import kind_names
from harness.network import ALLOW_NETWORK_VAR, OFFLINE_VARS

#: Commands of harness itself; any other command name is looked up among the plugins'
#: ``register_commands`` (which loads the plugins, so ``harness --help`` stays light).
BUILTIN_COMMANDS = ("plugins", "datasets", "run", "status", "leaderboard", "publish", "schema", "new-plugin", "zoo", "train-sae",
                    "eval-sae")
#: Built-in commands whose options come from plugins (the executors' flags of `harness run`).
PLUGIN_OPTION_COMMANDS = ("run", "eval-sae")


def _registries(args: argparse.Namespace):  # noqa: ANN202 - lazy import keeps --help light
    from harness.plugins import get_registries

    return get_registries(plugins_dirs=[Path(d) for d in args.plugins_dir or []])


# --------------------------------------------------------------------------- plugins
def cmd_plugins(args: argparse.Namespace) -> int:
    import json

    from tabulate import tabulate

    regs = _registries(args)
    sources = regs.plugin_set.sources
    rows = []
    for kind, entry in regs.all_entries():
        src = sources.get(entry.origin)
        rows.append(
            {
                "name": entry.name,
                "kind": kind,
                "plugin": entry.origin,
                "distribution": src.distribution if src else None,
                "version": src.version if src else None,
                "hooks": sorted(regs.hooks_of.get(entry.origin, [])),
                "source": src.origin if src else None,
                "description": entry.obj.description,
            }
        )
    for command, origin in sorted(_plugin_commands(regs).items()):
        src = sources.get(origin)
        rows.append({"name": command, "kind": "command", "plugin": origin,
                     "distribution": src.distribution if src else None, "version": src.version if src else None,
                     "hooks": sorted(regs.hooks_of.get(origin, [])), "source": src.origin if src else None,
                     "description": f"`harness {command}` subcommand"})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No plugins loaded (check HARNESS_LOAD_PLUGINS / HARNESS_DISABLE_PLUGINS).")
        return 0
    table = [[r["name"], r["kind"], r["plugin"], r["distribution"] or r["source"], r["version"] or "-",
              r["description"][:60]] for r in rows]
    print(tabulate(table, headers=["name", "kind", "plugin", "distribution", "version", "description"]))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from harness.datasets.listing import print_datasets

    return print_datasets(_registries(args), args.json)


# --------------------------------------------------------------------------- run
def _spec_from_args(args: argparse.Namespace):  # noqa: ANN202
    from harness.config import load_spec

    overrides = {
        "suites": args.suite,
        "methods": args.method,
        "models": args.model,
        "seeds": args.seed,
        "extra_metrics": args.extra_metric,
        "device": args.device,
        "dtype": args.dtype,
        "output_dir": args.output_dir,
        "leaderboard_dir": args.leaderboard_dir,
    }
    if args.baselines_only:
        overrides["methods"] = []
    return load_spec(Path(args.spec) if args.spec else None, overrides)


def _with_tasks_dirs(args: argparse.Namespace, spec, regs):  # noqa: ANN001, ANN202
    """``--tasks-dir`` folders appended to every lm-eval-using suite's task folders."""
    dirs = getattr(args, "tasks_dir", None)
    if not dirs:
        return spec
    from harness.evaluation.folders import with_task_dirs

    return with_task_dirs(spec, regs, dirs)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.executors.cli_options import executor_from_args
    from harness.leaderboard import build_leaderboards
    from harness.runner import execute, plan
    from harness.store import Store

    regs = _registries(args)
    spec = _with_tasks_dirs(args, _spec_from_args(args), regs)
    executor = executor_from_args(args, regs, spec.executor)
    if getattr(args, "allow_network", False):
        os.environ[ALLOW_NETWORK_VAR] = "1"  # also seen by the executors' worker processes
    _offline_unless_asked(spec, regs)
    cells = plan(spec, regs)
    store = Store(spec.output_dir)
    if not cells:
        print("Nothing to run: no suites are registered (see `harness plugins`).")
        return 0
    todo = [c for c in cells if args.force or not store.is_done(c.cell.suite, c.key)]
    print(f"{len(cells)} cells planned, {len(cells) - len(todo)} already recorded in {spec.output_dir}, "
          f"{len(todo)} to compute.", file=sys.stderr)
    if args.dry_run:
        for c in cells:
            state = "todo" if c in todo else "done"
            print(f"{state:5s} {c.cell.suite:14s} {c.label:24s} {c.cell.model:28s} seed={c.cell.seed} {c.key[:12]}")
        return 0
    from tqdm.auto import tqdm

    if not os.environ.get("HARNESS_VERBOSE"):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one "Loading weights" bar per model would break the cell bar
    bar = tqdm(total=len(cells), desc="cells", disable=args.no_progress, unit="cell")

    def on_cell(pc, rec) -> None:  # noqa: ANN001
        bar.set_postfix_str(f"{pc.cell.suite}/{pc.label}/{pc.cell.model}", refresh=False)
        bar.update(1)

    summary = execute(cells, store, regs, device=spec.device, force=args.force, progress=not args.no_progress,
                      on_cell=on_cell, executor=executor)
    bar.close()
    suites = sorted({c.cell.suite for c in cells})
    boards = build_leaderboards(store, spec.leaderboard_dir, regs, suites)
    _print_boards(boards, spec.leaderboard_dir)
    print(f"computed {summary.done}, reused {summary.skipped}, failed {summary.failed}; records in "
          f"{spec.output_dir}, leaderboards in {spec.leaderboard_dir}", file=sys.stderr)
    return 1 if summary.failed else 0


def _add_executor_args(p: argparse.ArgumentParser, registries=None) -> None:  # noqa: ANN001
    """The "where cells run" options of `harness run`, from the registered executors' configs
    (``registries``: the loaded plugins, or None when the parser is built without them, e.g.
    for `harness --help`: then only ``--executor`` itself)."""
    g = p.add_argument_group("where cells run", "Scale a sweep out (see README, 'Scaling out').")
    if registries is None:
        g.add_argument("--executor", metavar="NAME", help="Where cells run (`harness run --help` lists them).")
        return
    from harness.executors.cli_options import add_executor_arguments

    add_executor_arguments(g, registries)


def _offline_unless_asked(spec, registries=None) -> None:  # noqa: ANN001
    """No network unless asked: when every model is local (the zoo, or a folder on disk) and no
    suite reads a hub data set, the run sets the Hugging Face offline variables, so nothing reaches
    for the hub. A hub model name or a hub data set (dataset `hf` or a preset) in the spec,
    ``--allow-network`` or HARNESS_ALLOW_NETWORK=1 is the ask (:mod:`harness.network`)."""
    if os.environ.get(ALLOW_NETWORK_VAR) == "1":
        return
    if any(m.source == "hf" and not Path(m.name).expanduser().exists() for m in spec.models):
        return
    if registries is not None and _spec_reads_hub_data(spec, registries):
        return
    for var in OFFLINE_VARS:
        os.environ.setdefault(var, "1")


def _spec_reads_hub_data(spec, registries) -> bool:  # noqa: ANN001
    from harness.datasets.ref import needs_network
    from harness.errors import HarnessError
    from harness.metric_selection import configured_metrics

    for s in spec.suites or []:
        try:
            cfg = registries.suites.get(s.name).parse_config(s.config)
        except HarnessError:
            continue  # planning reports it
        if needs_network(cfg, registries):
            return True
        try:
            metric_cfgs = configured_metrics(cfg, registries)
        except HarnessError:
            continue
        if any(needs_network(m, registries) for m in metric_cfgs.values()):  # e.g. sae_ravel on an hf set
            return True
    return False


def cmd_status(args: argparse.Namespace) -> int:
    from collections import Counter

    from harness.runner import plan
    from harness.store import Store

    regs = _registries(args)
    spec = _with_tasks_dirs(args, _spec_from_args(args), regs)
    store = Store(spec.output_dir)
    counts: Counter[tuple[str, str]] = Counter()
    cells = plan(spec, regs)
    others = _records_of_other_versions(store, cells)
    for c in cells:
        rec = store.get(c.cell.suite, c.key)
        counts[(c.cell.suite, "pending" if rec is None else rec.status)] += 1
    for suite in sorted({s for s, _ in counts}):
        line = (f"{suite}: done {counts[(suite, 'ok')]}, failed {counts[(suite, 'failed')]}, "
                f"pending {counts[(suite, 'pending')]}")
        stale = others.get(suite, [])
        if stale:
            versions = sorted({", ".join(f"{k}=={v}" for k, v in r.cell.plugins.items()) or "built-ins only"
                               for r in stale})
            line += f" ({len(stale)} pending cells have records made by other plugin versions: {'; '.join(versions)})"
        print(line)
    return 0


def _records_of_other_versions(store, cells):  # noqa: ANN001, ANN202
    """suite -> records of the same row, model and seed as a pending cell whose plugin versions differ."""
    planned = {c.key for c in cells}
    pending = {(c.cell.suite, c.label, c.cell.model, c.cell.seed): c for c in cells
               if store.status(c.cell.suite, c.key) is None}
    out: dict[str, list] = {}
    for suite in {s for s, *_ in pending}:
        for rec in store.records(suite):
            c = pending.get((suite, rec.label, rec.cell.model, rec.cell.seed))
            if c is not None and rec.key not in planned and rec.cell.plugins != c.cell.plugins:
                out.setdefault(suite, []).append(rec)
    return out


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.leaderboard import build_leaderboards
    from harness.store import Store

    regs = _registries(args)
    extra = []
    for bundle_dir in args.from_bundle or []:
        from harness.bundle import load_bundle

        loaded = load_bundle(Path(bundle_dir))
        for reason in loaded.refused:
            print(f"refused {bundle_dir}/{reason}", file=sys.stderr)
        print(f"{bundle_dir}: {len(loaded.records)} records accepted, {len(loaded.refused)} refused", file=sys.stderr)
        extra.extend(loaded.records)
    boards = build_leaderboards(Store(Path(args.output_dir)), Path(args.leaderboard_dir), regs, args.suite,
                                extra_records=extra)
    if not boards:
        print(f"No records in {args.output_dir}; run `harness run` first.")
        return 0
    _print_boards(boards, Path(args.leaderboard_dir))
    return 0


def _print_boards(boards, leaderboard_dir: Path) -> None:  # noqa: ANN001
    from harness.leaderboard import render_markdown, render_summary

    for board in boards.values():
        print(render_markdown(board))
    print("Summary")
    for board in boards.values():
        print(render_summary(board))
    print(f"\nLeaderboards: {leaderboard_dir}/<suite>.md and .json; site: {leaderboard_dir}/site/index.html")


def cmd_publish(args: argparse.Namespace) -> int:
    from harness.bundle import write_bundle
    from harness.store import Store

    out = write_bundle(Store(Path(args.output_dir)), Path(args.dir), _registries(args))
    print(f"Bundle written to {out} (open {out}/leaderboards/site/index.html; others load it with "
          f"`harness leaderboard --from {out}`).")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from harness.schema import full_schema

    print(json.dumps(full_schema(_registries(args), only=args.plugin), indent=2))
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from harness.scaffold import scaffold

    path = scaffold(args.name, args.kind, Path(args.dir))
    print(f"Created {path}. Next: pip install -e {path} && harness plugins")
    return 0


# --------------------------------------------------------------------------- parser
def _add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", help="Run spec (YAML); flags below override its fields.")
    p.add_argument("--suite", action="append", help="Suite to run (repeatable; default: all registered).")
    p.add_argument("--method", action="append", help="Method to compare (repeatable; default: all registered).")
    p.add_argument("--baselines-only", action="store_true", help="Score the unmodified models only.")
    p.add_argument("--model", action="append",
                   help="Model: [source:]name[@revision], e.g. zoo:zoo-m or EleutherAI/pythia-70m (repeatable).")
    p.add_argument("--seed", action="append", type=int, help="Seed (repeatable); default: each suite's default seeds (0 1 2 for stochastic suites, 0 otherwise).")
    p.add_argument("--extra-metric", action="append",
                   help="A model-scope metric computed on every cell's model, e.g. from a third-party plugin.")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="Device (default auto).")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], help="Model dtype.")
    p.add_argument("--output-dir", help="Results store (default harness-results).")
    p.add_argument("--leaderboard-dir", help="Where leaderboards are written (default leaderboards).")
    p.add_argument("--tasks-dir", action="append", metavar="DIR",
                   help="A folder of local lm-eval task YAMLs (and their data) added to every lm-eval-using suite's "
                   "task folders for this run (lm_eval and scaling: include_paths; sae, unlearning, hallucination: "
                   "capability_include_paths; name its tasks in the suite's tasks / capability_tasks, or lm_eval and "
                   "scaling run them all by default). It enters the cell key as the folder name in the suite config "
                   "plus a hash of every file under it: a changed task YAML or data file recomputes the cell "
                   "(repeatable).")


def _plugin_commands(regs) -> dict[str, str]:  # noqa: ANN001
    """Command name -> plugin, for the commands plugins add (built-in names refused)."""
    return build_parser(regs).plugin_commands  # type: ignore[attr-defined]


def build_parser(registries=None) -> argparse.ArgumentParser:  # noqa: ANN001
    """The ``harness`` parser; with ``registries``, plus the plugins' commands (register_commands)."""
    from harness import __version__

    parser = argparse.ArgumentParser(
        prog="harness",
        description="Benchmark methods that read, edit or retrain the insides of language models.",
        epilog="Plugins may add commands (register_commands); `harness plugins` lists them.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("--plugins-dir", action="append", metavar="DIR",
                        help="Also load one-file plugins (*.py) from DIR (repeatable).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="List the loaded plugins.")
    p.add_argument("--json", action="store_true", help="Machine-readable output.")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("datasets", help="List the registered datasets (providers and presets), their roles, "
                                        "and the data fields of the suites.")
    p.add_argument("--json", action="store_true", help="Machine-readable output (with each config's schema).")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("run", help="Run a spec (default: every suite on the embedded zoo) and print leaderboards.")
    _add_spec_args(p)
    p.add_argument("--force", action="store_true", help="Recompute cells already recorded (old records kept).")
    p.add_argument("--dry-run", action="store_true", help="Print the planned cells and stop.")
    p.add_argument("--no-progress", action="store_true", help="No progress bars.")
    p.add_argument("--allow-network", action="store_true",
                   help="Let the run reach the Hugging Face Hub (standard lm-eval tasks' and hf data sets, hub "
                   "models); same as HARNESS_ALLOW_NETWORK=1. Without it a run whose models are all local sets "
                   "HF_HUB_OFFLINE / HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE.")
    _add_executor_args(p, registries)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="Done / failed / pending cells of a spec.")
    _add_spec_args(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("leaderboard", help="Rebuild leaderboards from the results store.")
    p.add_argument("--output-dir", default="harness-results", help="Results store.")
    p.add_argument("--leaderboard-dir", default="leaderboards", help="Where leaderboards are written.")
    p.add_argument("--suite", action="append", help="Only this suite (repeatable).")
    p.add_argument("--from", dest="from_bundle", action="append", metavar="DIR",
                   help="Merge the records of a published bundle (validated; repeatable).")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("publish", help="Write a self-contained bundle (records, schema, site) to DIR.")
    p.add_argument("dir", help="Empty folder for the bundle.")
    p.add_argument("--output-dir", default="harness-results", help="Results store to publish.")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("schema", help="JSON schema of the run spec and of every plugin's config.")
    p.add_argument("--plugin", help="Only this plugin's config schema.")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("new-plugin", help="Scaffold a plugin package (pyproject, module, README, test).")
    p.add_argument("name", help="Plugin name, e.g. my_metric.")
    p.add_argument("--kind", required=True, choices=kind_names(), help="What the plugin registers.")
    p.add_argument("--dir", default=".", help="Parent folder of the new package.")
    p.set_defaults(func=cmd_new_plugin)

    _add_optional_commands(sub, registries)
    parser.plugin_commands = registries.add_commands(sub) if registries is not None else {}  # type: ignore[attr-defined]
    return parser


def _add_optional_commands(sub: argparse._SubParsersAction, registries=None) -> None:  # noqa: ANN001
    """Commands of core sub-packages that may be absent in a slim install (e.g. the zoo)."""
    try:
        from harness.zoo.cli import configure_parser
    except ImportError:
        pass
    else:
        configure_parser(sub)
    try:
        from harness.sae.cli import configure_parser as configure_train_sae
    except ImportError:
        pass
    else:
        configure_train_sae(sub)
        from harness.sae.eval_cli import configure_parser as configure_eval_sae

        configure_eval_sae(sub, run=cmd_run, add_executor_args=lambda p: _add_executor_args(p, registries))


def _command_of(argv: list[str]) -> tuple[str | None, list[str]]:
    """The subcommand named in ``argv`` (None if none) and the ``--plugins-dir`` folders."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugins-dir", action="append", default=[])
    known, rest = pre.parse_known_args(argv)
    command = next((a for a in rest if not a.startswith("-")), None)
    return command, known.plugins_dir


def _parser_for(argv: list[str]) -> argparse.ArgumentParser:
    """Built-in commands parse without loading plugins; another name is a plugin's command."""
    command, dirs = _command_of(argv)
    if command is None or (command in BUILTIN_COMMANDS and command not in PLUGIN_OPTION_COMMANDS):
        return build_parser()
    from harness.plugins import get_registries

    return build_parser(get_registries(plugins_dirs=[Path(d) for d in dirs]))


def main(argv: list[str] | None = None) -> int:
    from harness.errors import HarnessError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = _parser_for(argv)
    except HarnessError as e:  # a plugin that fails to load, or a command name clash
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0

    try:
        return int(args.func(args) or 0)
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; finished cells are kept in the store.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
