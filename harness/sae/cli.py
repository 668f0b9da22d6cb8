"""``harness train-sae``: train a dictionary learner on a model layer's activations.

    harness train-sae zoo:zoo-64 --hook blocks.1.hook_resid_post --learner topk \\
        --set k=32 --set expansion_factor=8 --tokens 2000000 --output-dir saes/zoo64-l1-topk

Model references are ``[source:]name[@revision]`` (zoo:..., or a Hugging Face name/path).
Text comes from ``--dataset`` (a registered dataset read as a corpus, the same references as a
suite's data fields: ``local`` files, ``hf`` data sets, presets such as ``openwebtext``),
``--text-file`` (one document per line, or JSONL with a "text" field) or, for zoo models, from
the embedded world's document stream (from ``--world-start``).
The SAE is saved SAELens-style (cfg.json + sae_weights.safetensors) with train_log.json.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def configure_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train-sae`` command to ``subparsers``."""
    p = subparsers.add_parser("train-sae", help="Train an SAE (any registered dictionary learner) on a model layer.")
    p.add_argument("model", help="Model: [source:]name[@revision], e.g. zoo:zoo-64 or EleutherAI/pythia-70m.")
    p.add_argument("--hook", required=True, help="Hook point, e.g. blocks.1.hook_resid_post.")
    p.add_argument("--learner", default="topk", help="Registered dictionary learner (see `harness plugins`).")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="Learner config override (JSON/YAML value), validated by the learner's Config (repeatable).")
    p.add_argument("--tokens", type=int, default=1_000_000, help="Training token budget.")
    p.add_argument("--steps", type=int, default=None, help="Optimiser steps (overrides --tokens).")
    p.add_argument("--batch-size", type=int, default=4096, help="Activations per step.")
    p.add_argument("--context-length", type=int, default=128, help="Tokens per model input row.")
    p.add_argument("--text-file", help="Training text: one document per line, or .jsonl with a 'text' field.")
    p.add_argument("--dataset", metavar="REF",
                   help="Training text from a registered dataset (`harness datasets`): a name (openwebtext, world) or "
                        'JSON, e.g. \'{"dataset": "local", "config": {"path": "docs.parquet", "text_column": "body"}}\'.')
    p.add_argument("--world-start", type=int, default=10_000_000,
                   help="Zoo models without --text-file (or with --dataset world): first document index of the world "
                        "stream.")
    p.add_argument("--seed", type=int, default=0, help="Seed (initialisation, batch order).")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N.")
    p.add_argument("--output-dir", required=True, help="Where cfg.json, sae_weights.safetensors, train_log.json go.")
    p.add_argument("--checkpoint-dir", help="Checkpoints (a rerun with the same folder resumes).")
    p.add_argument("--checkpoint-every", type=int, default=None, help="Steps between checkpoints.")
    p.add_argument("--no-progress", action="store_true", help="No progress bar.")
    p.set_defaults(func=cmd_train_sae)
    return p


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["k=32", "sample=true"]`` -> ``{"k": 32, "sample": True}`` (values: JSON, else YAML)."""
    import yaml

    from harness.errors import SpecError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. --set k=32.")
        try:
            out[key.strip()] = json.loads(value)  # numbers like 1e-3, true/false, null, lists
        except ValueError:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def dataset_ref(value: str) -> Any:
    """``--dataset``'s value as a :class:`harness.datasets.DatasetRef`: a registered name, or JSON
    ``{"dataset": ..., "config": {...}}``; a bad value is a SpecError saying how to write it."""
    from pydantic import ValidationError

    from harness.datasets import DatasetRef
    from harness.errors import SpecError

    text = value.strip()
    how = ('Fix: pass a registered name (`harness datasets`) or JSON such as '
           '\'{"dataset": "local", "config": {"path": "docs.jsonl"}}\'.')
    if text.startswith("{"):
        try:
            data: Any = json.loads(text)
        except ValueError as e:
            raise SpecError(f"--dataset: not valid JSON ({e}). {how}") from None
    else:
        data = text
    try:
        return DatasetRef.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"--dataset {value}: {e.errors()[0]['msg']}. {how}") from None


def _dataset_corpus(args: argparse.Namespace, regs: Any) -> Any:
    """``--dataset`` opened as a corpus (its plan-time problems first: file, columns), or None."""
    if not args.dataset:
        return None
    from harness.datasets import open_dataset, open_role
    from harness.errors import SpecError

    if args.text_file:
        raise SpecError("--dataset and --text-file both give the training text. Fix: pass one of them.")
    ref = dataset_ref(args.dataset)
    ds = open_dataset(ref, regs, at="--dataset config")
    if "corpus" in ds.roles:
        problems = ds.problems("corpus")
        if problems:
            raise SpecError("\n".join(f"--dataset {ref}: {p}" for p in problems))
    return ref, open_role(ref, "corpus", regs, at="--dataset")


def _texts(args: argparse.Namespace, source: str, corpus: Any = None) -> Iterator[str]:
    from harness.errors import SpecError

    if corpus is not None:  # --dataset; the world is read from --world-start, other data from its first document
        ref, opened = corpus
        yield from opened.texts(start=args.world_start if ref.dataset == "world" else 0)
        return
    if args.text_file:
        path = Path(args.text_file)
        if not path.is_file():
            raise SpecError(f"--text-file {path} does not exist.")
        with path.open() as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)["text"] if path.suffix == ".jsonl" else line.rstrip("\n")
        return
    if source != "zoo":
        raise SpecError("A non-zoo model needs training text: pass --dataset REF (e.g. openwebtext, or a local file: "
                        "'{\"dataset\": \"local\", \"config\": {\"path\": \"docs.jsonl\"}}') or --text-file PATH.")
    from harness.zoo import World

    for doc in World(0).documents(start=args.world_start):
        yield doc.text


def _check_args(args: argparse.Namespace, shape: Any) -> None:
    """Numbers of the command line in range (the model's max positions where known); SpecError otherwise."""
    from harness.config import SEED_LIMIT
    from harness.errors import SpecError

    low = {"--tokens": (args.tokens, 1), "--steps": (args.steps, 1), "--batch-size": (args.batch_size, 1),
           "--context-length": (args.context_length, 2), "--world-start": (args.world_start, 0),
           "--checkpoint-every": (args.checkpoint_every, 1), "--seed": (args.seed, 0)}
    for flag, (value, least) in low.items():
        if value is not None and value < least:
            raise SpecError(f"{flag} {value}: must be at least {least}. Fix: pass {flag} {max(least, 1)} or more.")
    if args.seed >= SEED_LIMIT:
        raise SpecError(f"--seed {args.seed}: must be 0 <= seed < 2**32 (numpy's range). Fix: pass a smaller seed.")
    if args.text_file and not Path(args.text_file).is_file():
        raise SpecError(f"--text-file {args.text_file}: no such file. Fix: pass an existing text or .jsonl file.")
    limit = shape.max_positions if shape is not None else None
    if limit is not None and args.context_length > limit:
        raise SpecError(f"--context-length {args.context_length}: {shape.name} has {limit} positions; allowed "
                        f"2..{limit}. Fix: pass --context-length {limit} or less.")


def out_of_tokens_message(args: argparse.Namespace, err: Any, harvested: int | None = None) -> str:
    """What train-sae says when its text runs out before the budget (``err``: ActivationsExhausted;
    ``harvested``: tokens the harvest gave, including a last part-batch the trainer could not use)."""
    found = err.found if harvested is None else max(harvested, err.found)
    where = f"--text-file {args.text_file}" if args.text_file else f"the world stream from --world-start {args.world_start}"
    asked = (f"--steps {args.steps}" if args.steps is not None else f"--tokens {args.tokens}") + \
        f" asks for {err.needed} ({err.steps} steps x --batch-size {err.batch_size})"
    if found < err.batch_size:
        fix = (f"a longer --text-file, or --batch-size {max(found, 1)} or less (one step takes a whole batch) with "
               f"--tokens {max(found, 1)} or less")
    else:
        fix = f"a longer --text-file, or --tokens {found - found % err.batch_size} or less"
    return (f"Out of training tokens: {where} gave {found} tokens at {args.hook} (BOS and padding excluded), "
            f"but {asked}; it ran out at step {err.step}. Fix: {fix}.")


def _trained_by_shared_trainer(cls: Any) -> bool:
    from harness.sae.base import SAEBase

    impl = cls.implementation() if hasattr(cls, "implementation") else cls
    return isinstance(impl, type) and issubclass(impl, SAEBase)


def _check_trainable(name: str, regs: Any) -> None:
    """``train_sae`` drives learners built on :class:`harness.sae.base.SAEBase` (init from data, decoder norms)."""
    from harness.errors import SpecError

    learners = regs["dictionary_learner"]
    if not _trained_by_shared_trainer(learners.get(name)):
        ok = [n for n in learners.names() if _trained_by_shared_trainer(learners.get(n))]
        raise SpecError(f"--learner {name}: not trainable by harness train-sae (its class does not build on "
                        f"harness.sae.base.SAEBase, which the shared trainer drives). Fix: pick one of {', '.join(ok)}.")


def cmd_train_sae(args: argparse.Namespace) -> int:
    import re

    from harness.config import ModelRef
    from harness.plugins import get_registries
    from harness.errors import SpecError
    from harness.sae.trainer import ActivationsExhausted, activations_from_model, train_sae
    from harness.validation import model_shape, validate_learner

    regs = get_registries(plugins_dirs=[Path(d) for d in getattr(args, "plugins_dir", None) or []])
    learner = regs["dictionary_learner"].get(args.learner)
    config = learner.parse_config(parse_sets(args.set), at="--set")
    _check_trainable(args.learner, regs)
    ref = ModelRef.parse(args.model)
    shape = model_shape(ref, regs)  # before any weights load: hook point, k <= d_sae, context length
    _check_args(args, shape)
    if shape is not None:
        validate_learner(learner, config, shape, args.hook)
    corpus = _dataset_corpus(args, regs)
    loaded = regs.model_sources.get(ref.source)().load(ref.name, ref.revision, device=args.device, dtype="float32")
    source = activations_from_model(loaded, args.hook, _texts(args, ref.source, corpus), batch_size=args.batch_size,
                                    seed=args.seed, context_length=args.context_length)
    layer = re.search(r"blocks\.(\d+)\.", args.hook)
    metadata = {"hook_name": args.hook, "hook_layer": int(layer.group(1)) if layer else None,
                "model_name": str(ref), "context_size": args.context_length, "prepend_bos": True,
                "dataset_path": (str(corpus[0]) if corpus else None) or args.text_file
                                or ("zoo-world" if ref.source == "zoo" else None)}
    d_in = shape.at(args.hook).d_in if shape is not None else None
    try:
        sae, log = train_sae(learner, config, source, d_in=d_in or loaded.d_model, tokens=args.tokens,
                             steps=args.steps, batch_size=args.batch_size, seed=args.seed, device=str(loaded.device),
                             checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                             progress=not args.no_progress, metadata=metadata)
    except ActivationsExhausted as err:
        harvested = getattr(getattr(source, "source", None), "rows", None)  # the buffer's harvest: every token seen
        raise SpecError(out_of_tokens_message(args, err, harvested)) from None
    out = Path(args.output_dir)
    sae.save(out)
    (out / "train_log.json").write_text(json.dumps(log.to_dict(), indent=1))
    fin = log.final
    print(f"saved {args.learner} SAE (d_in={sae.d_in}, d_sae={sae.d_sae}) to {out}: "
          f"L0 {fin.get('l0', float('nan')):.1f}, explained variance {fin.get('explained_variance', float('nan')):.3f}, "
          f"dead {fin.get('dead_fraction', 0):.3f}, {log.tokens_per_s:.0f} tok/s")
    return 0
