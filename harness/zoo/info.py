"""Locating and summarising built zoo checkpoints (no torch import unless re-evaluating)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"


class ZooModelNotFoundError(HarnessError, FileNotFoundError):
    """No built zoo model (or revision) of that name; the message lists those that exist."""


def _root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else CHECKPOINTS_DIR


def list_zoo_models(root: str | Path | None = None) -> list[str]:
    """Names of the built models in ``root`` (default: the committed zoo), smallest first."""
    r = _root(root)
    infos = []
    for cfg in r.glob("*/main/config.json"):
        meta = cfg.parent / "zoo_meta.json"
        params = json.loads(meta.read_text()).get("params", 0) if meta.exists() else 0
        infos.append((params, cfg.parent.parent.name))
    return [name for _, name in sorted(infos)]


def list_revisions(name: str, root: str | Path | None = None) -> list[str]:
    """Revisions of one model, ``step{N}`` in training order, then ``main``."""
    d = _root(root) / name
    steps = sorted((p.name for p in d.glob("step*") if p.is_dir()), key=lambda s: int(s[4:]))
    return steps + (["main"] if (d / "main").is_dir() else [])


def zoo_model_path(name: str, revision: str = "main", root: str | Path | None = None) -> Path:
    """Folder loadable with ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer``.

    Raises :class:`ZooModelNotFoundError` (a ``FileNotFoundError``) naming the models and
    revisions that do exist.
    """
    d = _root(root) / name
    if not d.is_dir():
        from harness.errors import did_you_mean

        built = list_zoo_models(root)
        raise ZooModelNotFoundError(f"no zoo model {name!r} in {_root(root)}; built models: {built or 'none'}.{did_you_mean(name, built)} Fix: use one of them, e.g. zoo:{built[0] if built else 'zoo-32'} (build more with `harness zoo build`).")
    path = d / revision
    if not (path / "config.json").exists():
        revs = list_revisions(name, root)
        raise ZooModelNotFoundError(f"zoo model {name!r} has no revision {revision!r}; revisions: {revs}. Fix: use one of them, e.g. zoo:{name}@{revs[0] if revs else 'main'}.")
    return path


def model_record(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """The raw ``zoo_model.json`` of one model (training summary and evaluation)."""
    path = zoo_model_path(name, "main", root).parent / "zoo_model.json"
    return json.loads(path.read_text())


def zoo_info(root: str | Path | None = None, revision: str = "main") -> list[dict[str, Any]]:
    """One row per model: shape, params, tokens seen, revisions, losses, per-task accuracy and
    canary extraction rate by repetition count (evaluation of ``revision``)."""
    rows = []
    for name in list_zoo_models(root):
        if not (zoo_model_path(name, "main", root).parent / "zoo_model.json").exists():
            continue  # checkpoints without a build record (e.g. copied by hand)
        rec = model_record(name, root)
        ev = rec.get("eval", {}).get(revision, {})
        rows.append({
            "model": name,
            "d_model": rec["shape"]["d_model"],
            "n_layers": rec["shape"]["n_layers"],
            "params": rec["params"],
            "tokens_seen": rec["tokens_seen"],
            "revisions": rec["revisions"],
            "train_loss": round(rec["final_loss"], 3),
            "heldout_loss": ev.get("heldout_loss"),
            "train_wall_s": rec.get("train_wall_s"),
            "tasks": ev.get("tasks", {}),
            "canary_extracted": ev.get("canary_extracted", {}),
            "canary_token_acc": ev.get("canary_token_acc", {}),
        })
    return rows


def reevaluate(root: str | Path | None = None, threads: int | None = None) -> None:
    """Recompute the evaluation of every revision of every model and store it in its record."""
    from harness.zoo.evaluate import evaluate_model_dir
    from harness.zoo.world import world_for

    if threads:
        import torch

        torch.set_num_threads(threads)
    r = _root(root)
    for name in list_zoo_models(root):
        p = r / name / "zoo_model.json"
        rec = json.loads(p.read_text())
        b = rec["build"]
        rec["eval"] = evaluate_model_dir(r / name, rec["revisions"], world_for(b["seed"], b["tiny"]))
        p.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
