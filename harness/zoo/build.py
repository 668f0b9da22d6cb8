"""Build the zoo: world -> tokenizer -> token stream -> every size -> evaluation -> manifest.

``build_zoo()`` writes ``<out>/<model>/<revision>/`` checkpoints, ``<out>/zoo.json`` (the
manifest: world summary, per-model training numbers and evaluation) and
``<out>/facts_seen.json`` (how often each fact occurred in the training tokens).
Transient state (token cache, optimizer state for resuming) lives in ``<out>/.state/`` and
is removed when the build finishes.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness.zoo.info import CHECKPOINTS_DIR
from harness.zoo.train import SIZES, TINY_SIZES, ModelSize, ZooTrainConfig, pack_rows, train_model
from harness.zoo.world import WORLD_VERSION, World, world_for

DEFAULT_TOKENS = 3_014_656  # 736 steps of 32 x 128 tokens
TINY_TOKENS = 8 * 64 * 16


def token_stream(world: World, tokenizer: Any, n_tokens: int) -> tuple[Any, dict[str, Any]]:
    """The first ``n_tokens + 1`` tokens of the stream (``<eos>`` before each doc) as uint16,
    plus data statistics (docs used, doc kinds, per-fact and per-canary occurrence counts)."""
    import numpy as np

    parts: list[list[int]] = []
    kinds: Counter[str] = Counter()
    fact_counts: Counter[str] = Counter()
    have, index, chunk = 0, 0, 2048
    while have < n_tokens + 1:
        docs = [world.document(i) for i in range(index, index + chunk)]
        ids = tokenizer([d.text for d in docs], add_special_tokens=False).input_ids
        for d, t in zip(docs, ids):
            if have >= n_tokens + 1:
                break
            parts.append([tokenizer.eos_token_id, *t])
            have += len(t) + 1
            kinds[d.kind] += 1
            index = d.index + 1
            for f in d.facts:
                fact_counts[f"{f.relation}|{f.entity}"] += 1
    flat = np.fromiter((t for p in parts for t in p), dtype=np.uint16)[: n_tokens + 1]
    stats = {
        "docs_used": index,
        "doc_kinds": dict(kinds),
        "canary_window_covered": index >= world.canary_window,
        "canary_counts": world.canary_occurrences(index),
        "fact_counts": dict(fact_counts),
    }
    return flat, stats


def resolve_sizes(sizes: Any = None, tiny: bool = False) -> list[ModelSize]:
    """Sizes from names (``"zoo-64,zoo-128"`` or a list), ModelSize objects, or the default suite."""
    table = TINY_SIZES if tiny else SIZES
    if sizes is None:
        return list(table.values())
    if isinstance(sizes, str):
        sizes = [s for s in sizes.split(",") if s]
    out = []
    for s in sizes:
        if isinstance(s, ModelSize):
            out.append(s)
        elif s in table or s in SIZES or s in TINY_SIZES:
            out.append(table.get(s) or SIZES.get(s) or TINY_SIZES[s])
        else:
            raise ValueError(f"unknown zoo size {s!r}; known: {sorted(SIZES) + sorted(TINY_SIZES)}")
    return out


def prepare_data(out: Path, world: World, seed: int, n_tokens: int, tiny: bool, resume: bool = True) -> tuple[Any, Any, dict[str, Any]]:
    """Train/load the tokenizer and build/load the cached token stream (in ``out/.state``)."""
    import numpy as np

    from harness.zoo.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer

    state = out / ".state"
    state.mkdir(parents=True, exist_ok=True)
    tok_dir = state / "tokenizer"
    if not (resume and (tok_dir / "tokenizer.json").exists()):
        save_tokenizer(train_tokenizer(world, vocab_size=512 if tiny else 1024, n_docs=2000 if tiny else 30_000), tok_dir)
    tokenizer = load_tokenizer(tok_dir)
    cache = state / f"tokens-{seed}-{n_tokens}.npy"
    stats_path = state / f"stats-{seed}-{n_tokens}.json"
    if resume and cache.exists() and stats_path.exists():
        return tokenizer, np.load(cache), json.loads(stats_path.read_text())
    flat, stats = token_stream(world, tokenizer, n_tokens)
    np.save(cache, flat)
    stats_path.write_text(json.dumps(stats))
    return tokenizer, flat, stats


def build_zoo(
    out_dir: str | Path | None = None,
    seed: int = 0,
    sizes: Any = None,
    tokens: int | None = None,
    progress: bool = True,
    resume: bool = True,
    tiny: bool = False,
    evaluate: bool = True,
    threads: int | None = None,
    tasks_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Build (or finish building) the zoo into ``out_dir`` (default: the package's checkpoints).

    ``tiny=True`` builds two one-layer models on ~8k tokens in seconds (for tests).
    With ``resume=True`` finished models are kept and an interrupted one continues from its
    last saved state. Several processes may build different ``sizes`` into the same folder
    at once (each model's numbers live in ``<out>/<model>/zoo_model.json``). ``threads`` sets
    ``torch.set_num_threads``. The lm-eval task files are written to ``tasks_dir`` (default:
    the package's ``tasks/`` for the default build, ``<out>/tasks`` otherwise).
    Returns the manifest also written to ``<out>/zoo.json``.
    """
    from harness.zoo.tasks import TASKS_DIR, write_tasks

    if threads:
        import torch

        torch.set_num_threads(threads)
    out = Path(out_dir) if out_dir is not None else CHECKPOINTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    world = world_for(seed, tiny)
    cfg = ZooTrainConfig(ctx=64, batch=8, seed=seed, warmup_steps=4, state_every=8, revisions=(0.5,)) if tiny else ZooTrainConfig(seed=seed)
    n_tokens = tokens or (TINY_TOKENS if tiny else DEFAULT_TOKENS)
    key = {"world_version": WORLD_VERSION, "seed": seed, "tokens": n_tokens, "tiny": tiny, "ctx": cfg.ctx, "batch": cfg.batch}
    t0 = time.time()
    tokenizer, flat, stats = prepare_data(out, world, seed, n_tokens, tiny, resume)
    (out / "facts_seen.json").write_text(json.dumps(stats["fact_counts"], indent=0, sort_keys=True) + "\n")
    if tasks_dir is None:
        tasks_dir = TASKS_DIR if out.resolve() == CHECKPOINTS_DIR.resolve() else out / "tasks"
    write_tasks(world, tasks_dir)
    rows = pack_rows(flat, cfg.ctx)
    wanted = resolve_sizes(sizes, tiny)
    for size in wanted:
        info_path = out / size.name / "zoo_model.json"
        if resume and info_path.exists() and json.loads(info_path.read_text()).get("build") == key:
            continue
        if not resume and (out / size.name).exists():
            shutil.rmtree(out / size.name)
        summary = train_model(size, rows, tokenizer, out, out / ".state", cfg, progress=progress, resume=resume)
        summary["build"] = key
        if evaluate:
            from harness.zoo.evaluate import evaluate_model_dir

            summary["eval"] = evaluate_model_dir(out / size.name, summary["revisions"], world)
        info_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    manifest = {
        "build": key,
        "world": world.describe(),
        "data": {k: v for k, v in stats.items() if k != "fact_counts"},
        "models": sorted(p.parent.name for p in out.glob("*/zoo_model.json")),
        "wall_s_this_call": round(time.time() - t0, 1),
    }
    (out / "zoo.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if all((out / s.name / "zoo_model.json").exists() for s in resolve_sizes(None, tiny)) and not list((out / ".state").glob("*.pt")):
        shutil.rmtree(out / ".state", ignore_errors=True)
    return manifest
