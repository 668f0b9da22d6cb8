"""One cell of the ``scaling`` suite: per-task accuracy (log-likelihood and generation),
cross-entropy on the answers, held-out loss, and attention-swap accuracy for one model."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Any

from harness.config import ModelRef
from harness.metric_inputs import ModelInputs
from harness.results import MetricValue, SuiteOutput


def include_paths(cfg: Any) -> tuple[Path, ...]:
    """The zoo's task folder and the config's ``include_paths`` (absolute, in order)."""
    from harness.evaluation.capability import include_paths_with_zoo

    return tuple(include_paths_with_zoo(cfg.include_paths))


def resolve_tasks(cfg: Any) -> tuple[list[str], dict[str, str], dict[str, float | None]]:
    """Task names, their kind (knowledge / procedural / ...) and chance levels.

    Kinds come from the task metadata (``harness_tasks.json`` / YAML ``metadata.kind``),
    overridden by ``cfg.task_kinds``; a task without a kind is ``other``."""
    local = {t.name: t for t in _local_tasks(include_paths(cfg))}
    tasks = cfg.tasks or [n for n, t in local.items() if t.entry_kind == "task"]
    if not tasks:
        raise ValueError("scaling: no tasks (the zoo task folder and include_paths hold none); set `tasks` in the "
                         "suite config.")
    kinds = {n: cfg.task_kinds.get(n) or (local[n].kind if n in local else None) or "other" for n in tasks}
    chances = {n: local[n].chance if n in local else None for n in tasks}
    return tasks, kinds, chances


@functools.lru_cache(maxsize=4)
def _local_tasks(paths: tuple[Path, ...]) -> tuple[Any, ...]:
    """The local tasks under ``paths`` (indexing them costs ~1 s; cells of one process share it)."""
    from harness.evaluation import list_local_tasks

    return tuple(list_local_tasks(paths))


@functools.lru_cache(maxsize=4)
def task_docs(tasks: tuple[str, ...], limit: int | None, paths: tuple[Path, ...] | None = None
              ) -> dict[str, list[tuple[str, list[str], int, str]]]:
    """``(context, choices, gold, target_delimiter)`` of the first ``limit`` docs of each
    multiple-choice task (lm-eval's own doc order and templates, as ``evaluate_tasks`` scores)
    under the task folders ``paths`` (None: the zoo's). Cached per process (the cells of a sweep
    share it): treat the result as read-only."""
    from harness.evaluation.tasks import default_include_paths, task_manager, task_spec

    local = list(paths) if paths is not None else default_include_paths()
    names_local = set(task_manager(local, include_defaults=False).all_tasks) if local else set()
    tm = task_manager(local, include_defaults=any(t not in names_local for t in tasks))
    built = {}
    for t in tasks:
        loaded = tm.load([task_spec(t, tm)])
        built.update(loaded["tasks"])
    out: dict[str, list[tuple[str, list[str], int, str]]] = {}
    for name in tasks:
        task = built.get(name)  # a group has no single task: scored by accuracy only
        if task is None or task.OUTPUT_TYPE != "multiple_choice":
            continue  # exact match and answer loss need a gold choice
        docs = list(task.eval_docs)[: limit or None]
        delim = task.config.target_delimiter
        out[name] = [(task.doc_to_text(d), list(task.doc_to_choice(d)), int(task.doc_to_target(d)), delim)
                     for d in docs]
    return out


def answer_ce(model: Any, tokenizer: Any, docs: list[tuple[str, list[str], int, str]], *, prefix_eos: bool,
              batch_size: int = 64) -> list[float]:
    """Per doc: mean next-token cross-entropy (nats/token) of the gold answer given the context."""
    import torch

    eos = tokenizer.eos_token_id
    seqs, spans = [], []
    for ctx, choices, gold, delim in docs:
        c = tokenizer(ctx, add_special_tokens=False).input_ids
        k = tokenizer(delim + choices[gold], add_special_tokens=False).input_ids
        head = [eos] if prefix_eos and eos is not None else []
        seqs.append([*head, *c, *k])
        spans.append((len(head) + len(c), len(head) + len(c) + len(k)))
    device = next(model.parameters()).device
    out: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(seqs), batch_size):
            chunk = seqs[i : i + batch_size]
            width = max(map(len, chunk))
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, s in enumerate(chunk):
                ids[j, : len(s)] = torch.tensor(s)
                mask[j, : len(s)] = 1
            logp = torch.log_softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1)
            for j, s in enumerate(chunk):
                a, b = spans[i + j]
                if a == 0:
                    raise ValueError("scaling: an empty context with prefix_eos=False leaves the answer unscored.")
                tgt = torch.tensor(s[a:b], device=logp.device)
                out.append(-float(logp[j, a - 1 : b - 1].gather(-1, tgt[:, None]).mean()))
    return out


def exact_match(loaded: Any, tokenizer: Any, docs: dict[str, list[tuple[str, list[str], int, str]]], *,
                prefix_eos: bool, batch_size: int) -> dict[str, list[bool]]:
    """Greedy generation from each context; correct when it starts with the gold answer's words."""
    from harness.evaluation import generate_exact_match

    head = (tokenizer.eos_token or "") if prefix_eos else ""
    prompts, targets, owner = [], [], []
    for name, ds in docs.items():
        for ctx, choices, gold, _ in ds:
            prompts.append(head + ctx)
            targets.append(choices[gold])
            owner.append(name)
    _, items = generate_exact_match(loaded.model, tokenizer, prompts, targets, batch_size=batch_size)
    out: dict[str, list[bool]] = {n: [] for n in docs}
    for name, it in zip(owner, items):
        out[name].append(it.correct)
    return out


def _same_model(a: ModelRef, b: ModelRef) -> bool:
    return (a.source, a.name, a.revision or "main") == (b.source, b.name, b.revision or "main")


def swap_partner(cfg: Any, ref: ModelRef) -> ModelRef | None:
    """Model B whose patterns are swapped into this cell's model, if the config names one."""
    for a, b in cfg.swap_pairs.items():
        if _same_model(ModelRef.parse(a), ref):
            return ModelRef.parse(b)
    return None


def step_of(revision: str | None) -> float:
    """Training step of a Pythia-style revision (``step1000`` -> 1000; main/None -> inf)."""
    m = re.fullmatch(r"step(\d+)", revision or "")
    return float(m.group(1)) if m else math.inf


def run_swap(suite: Any, cell: Any, loaded: Any, partner: ModelRef) -> tuple[list[MetricValue], dict[str, Any]]:
    from harness.evaluation import evaluate_tasks
    from harness_plugins.attention_swap.swap import AttentionSwap, head_layout

    cfg = suite.config
    source = cell.registries.model_sources.get(partner.source)()
    b = source.load(partner.name, partner.revision, device=cell.device, dtype=cell.dtype)
    n_layers = min(head_layout(loaded)[0], head_layout(b)[0])
    layer_sets: list[tuple[str, list[int] | None]] = [(f"L{i}", [i]) for i in (cfg.swap_layers or range(n_layers))]
    layer_sets.append(("all", cfg.swap_layers or None))
    limit = cfg.budget("limit")
    values: list[MetricValue] = []
    swap_metric = cell.metric("attention_swap_acc")
    tasks = cfg.swap_tasks
    paths = include_paths(cfg)
    own_b = evaluate_tasks(b.model, b.require_tokenizer(), tasks, include_paths=paths, limit=limit,
                           batch_size=cfg.batch_size, seed=cell.seed, model_id=b.fingerprint)
    for label, layers in cell.progress(layer_sets, desc="attention swap"):
        swap = AttentionSwap(b, layers=layers, heads=cfg.swap_heads, source_id=b.fingerprint)
        res = evaluate_tasks(loaded.model, loaded.require_tokenizer(), tasks, include_paths=paths, limit=limit,
                             batch_size=cfg.batch_size, seed=cell.seed, model_id=loaded.fingerprint, intervention=swap)
        values += swap_metric.report(res, tasks, suffix=f"@{label}")
    details = {"source": str(partner), "layers": [lbl for lbl, _ in layer_sets], "heads": cfg.swap_heads,
               "source_acc": {t: own_b.tasks[t].get("acc") for t in tasks}}
    return values, details


def run_cell(suite: Any, cell: Any) -> SuiteOutput:
    from harness.evaluation import evaluate_tasks

    cfg = suite.config
    loaded = cell.load_model()
    tok = loaded.require_tokenizer()
    if tok.pad_token_id is None:  # HF models such as Pythia ship no pad token (this cell's own copy)
        tok.pad_token = tok.eos_token
    tasks, kinds, chances = resolve_tasks(cfg)
    limit = cfg.budget("limit")
    paths = include_paths(cfg)
    result = evaluate_tasks(loaded.model, tok, tasks, include_paths=paths, limit=limit, batch_size=cfg.batch_size,
                            seed=cell.seed, model_id=loaded.fingerprint)
    per_task = cell.metric("scaling_acc").report(result, tasks, chances)
    metrics: list[MetricValue] = [cell.metric("scaling_acc_mean").report(per_task),
                                  *cell.metric("scaling_kind_acc").report(per_task, kinds),
                                  *per_task]
    docs = task_docs(tuple(tasks), limit, paths)
    ce = {t: answer_ce(loaded.model, tok, d, prefix_eos=cfg.prefix_eos) for t, d in docs.items()}
    metrics += cell.metric("scaling_answer_ce").report(ce)
    if cfg.exact_match:
        em = exact_match(loaded, tok, docs, prefix_eos=cfg.prefix_eos, batch_size=cfg.generation_batch_size)
        metrics += cell.metric("scaling_exact_match").report(em, {t: 0.0 for t in em})
    n_docs = cfg.budget("heldout_docs")
    if n_docs:
        heldout = cell.registries.metrics.get("scaling_heldout_loss")({"n_docs": n_docs, "world_seed": cfg.world_seed,
                                                                      "corpus": cfg.corpus})
        metrics.append(heldout.score(ModelInputs(model=loaded, seed=cell.seed, device=cell.device),
                                     cell.data(heldout.corpus_ref(), "corpus")))
    details: dict[str, Any] = {
        "n_params": sum(p.numel() for p in loaded.model.parameters()),
        "model_name": cell.model_ref.name, "revision": cell.model_ref.revision or "main",
        "task_kind": kinds, "task_chance": chances,
        "n_samples": {t: result.tasks[t].n_samples for t in tasks},
    }
    partner = swap_partner(cfg, cell.model_ref)
    if partner is not None:
        swap_values, details["swap"] = run_swap(suite, cell, loaded, partner)
        metrics += swap_values
    return SuiteOutput(
        metrics=metrics, details=details,
        versions={t: str(v) for t, v in result.versions.items()} | {"lm_eval": result.lm_eval_version},
    )
