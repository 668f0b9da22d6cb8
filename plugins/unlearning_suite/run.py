"""One cell of the unlearning suite (imported lazily by the suite)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from typing import Any

from harness.metric_inputs import InterventionInputs
from harness.metric_selection import extra_metric_names
from harness.evaluation.capability import capability_metrics, cell_cache_dir, score_capability
from harness.results import SuiteOutput
from harness.unlearning.data import UnlearningData, pooled_activations
from harness.unlearning.erasure import hook_points
from harness.stats import binomial_stderr
from harness.unlearning.probes import fit_logistic, predict

from .data import balanced_indices, k_extractable, retain_sequences, sequence_tokens, too_short_note
from .probes import ATTACKERS, attacker_accuracy, loo_accuracy, sequence_stderr, stratified_masks

log = logging.getLogger("harness")

#: Work that is the same for every row of one (model, suite config, seed): labels and the
#: frozen probes. Kept for the life of the process only.
_SHARED: dict[str, dict[str, Any]] = {}


#: The world's retain text starts at this document index, past its canary window.
WORLD_RETAIN_START = 200_000


def build_data(cfg: Any, loaded: Any, seed: int, cell: Any) -> tuple[UnlearningData, UnlearningData, UnlearningData, dict[str, Any]]:
    """Labelled forget set (k-extractable on the un-edited model = 1), retain set for
    fitting, and a disjoint retain set for perplexity, from the ``sequences`` and ``retain`` fields."""
    import torch

    from harness.datasets import is_world
    from harness.errors import HarnessError

    tok = loaded.require_tokenizer()
    items = cell.data(cfg.sequences, "sequences").items()
    data = sequence_tokens(items, tok, cfg.prefix_len, cfg.suffix_len, vocab_size=loaded.model.config.vocab_size)
    note = too_short_note(data)
    if note:
        log.warning("unlearning: %s", note)
    seqs = data.sequences
    if not seqs:
        raise HarnessError(f"sequences: none of the {data.n_items} sequences has prefix_len + suffix_len = "
                           f"{data.min_tokens} tokens. Fix: lower prefix_len / suffix_len, or give longer sequences.")
    tokens = torch.tensor(seqs)
    mem = k_extractable(loaded.model, tokens, cfg.prefix_len)
    pos = [i for i, m in enumerate(mem) if m]
    neg = [i for i, m in enumerate(mem) if not m]
    if min(len(pos), len(neg)) < cfg.min_per_class:
        raise HarnessError(
            f"k-extractability gave {len(pos)} memorised and {len(neg)} non-memorised sequences; each class needs "
            f">= min_per_class={cfg.min_per_class} (a model that memorised none of them, e.g. a random-initialised "
            "one, cannot be scored). Fix: change prefix_len / suffix_len, sequences or min_per_class."
        )
    if cfg.balance:
        pos, neg = balanced_indices(pos, neg, seed)
    idx = pos + neg
    forget = UnlearningData(tuple(seqs[i] for i in idx), tuple(int(mem[i]) for i in idx), cfg.prefix_len)
    length = cfg.prefix_len + cfg.suffix_len + 1
    texts = cell.data(cfg.retain, "corpus").texts(WORLD_RETAIN_START if is_world(cfg.retain) else 0)
    ret = retain_sequences(texts, tok, 2 * cfg.retain_sequences, length)
    if len(ret) < 2 * cfg.retain_sequences:
        raise HarnessError(
            f"retain: {len(ret)} of the first {100 * cfg.retain_sequences} documents have >= {length - 1} tokens, "
            f"but 2 x retain_sequences = {2 * cfg.retain_sequences} windows are needed (half to fit, half for "
            "perplexity). Fix: lower retain_sequences or prefix_len / suffix_len, or give longer documents."
        )
    fit_ret = UnlearningData(tuple(ret[::2]), (0,) * len(ret[::2]), cfg.prefix_len)
    eval_ret = UnlearningData(tuple(ret[1::2]), (0,) * len(ret[1::2]), cfg.prefix_len)
    info = {"n_sequences": len(seqs), "n_memorised": sum(mem), "n_used_per_class": len(pos),
            "n_items": data.n_items, "n_too_short": data.n_too_short}
    if note:
        info["too_short"] = note
    return forget, fit_ret, eval_ret, info


def random_init_copy(loaded: Any, seed: int) -> Any:
    """A model of the same architecture and shape with freshly initialised weights."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(loaded.model.config).to(loaded.model.device).eval()


def loo_profile(
    model: Any, tokens: Any, y: Any, points: list[str], pooling: str, l2: float, shuffles: int, seed: int, prefix_len: int,
) -> dict[str, list[float]]:
    """Per depth: LOO accuracy with the true labels (``acc``) and with ``shuffles`` label permutations
    (``null``: every permuted accuracy; ``shuffled``: their mean)."""
    import torch

    x = pooled_activations(model, tokens, points, pooling, prefix_len=prefix_len)
    g = torch.Generator().manual_seed(seed)
    perms = [y[torch.randperm(len(y), generator=g)] for _ in range(shuffles)]
    null = [[loo_accuracy(x[i], p, l2) for p in perms] for i in range(len(points))]
    return {
        "acc": [loo_accuracy(x[i], y, l2) for i in range(len(points))],
        "null": null,
        "shuffled": [sum(v) / max(1, shuffles) for v in null],
    }


def gap_statistics(acc: float, null: list[float]) -> tuple[float, float | None, float]:
    """``(gap, stderr, p)`` of a LOO accuracy against its label-permutation null.

    gap = acc - mean(null); stderr = sd(null) * sqrt(1 + 1/S), the noise of one LOO accuracy
    without signal plus that of the mean of S permutations (None when S < 2); p = the
    permutation p-value (1 + #{null >= acc}) / (1 + S), at least 1 / (1 + S)."""
    s = len(null)
    mean = sum(null) / s
    sd = (sum((v - mean) ** 2 for v in null) / (s - 1)) ** 0.5 if s > 1 else None
    stderr = sd * (1 + 1 / s) ** 0.5 if sd is not None else None
    return acc - mean, stderr, (1 + sum(v >= acc for v in null)) / (1 + s)


def perplexity(model: Any, data: UnlearningData) -> tuple[float, float]:
    """``(perplexity, stderr)``: exp of the mean next-token loss over the (equal-length) sequences;
    stderr by the delta method, ppl x the stderr of the per-sequence mean losses."""
    import torch

    tokens = data.tensor()
    with torch.no_grad():
        logits = getattr(model, "model", model)(input_ids=tokens, use_cache=False).logits[:, :-1]
        flat, target = logits.reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1)
        ppl = math.exp(float(torch.nn.functional.cross_entropy(flat, target)))
        loss = torch.nn.functional.cross_entropy(flat, target, reduction="none").view(len(tokens), -1)
    return ppl, ppl * sequence_stderr(loss.mean(1))


def frozen_hits(loaded: Any, method: Any, forget: UnlearningData, retain: UnlearningData, probes: list[Any],
                masks: Any, points: list[str], pooling: str, seed: int) -> Any:
    """``[depths, n]`` bool: whether the frozen probe classifies each sequence right, cross-fitted.

    ``probes[i]`` holds one logistic probe per fold (rows of ``masks``, True = trains), fitted on the
    un-edited model at depth ``i``. A sequence is scored only by the probe of the fold that held it
    out, and, with a method, with the edit that the method fitted on that fold's training sequences
    (``method.fit`` once per fold): neither the probe nor the edit has seen the sequence it scores,
    so "below chance" is a property of the edit, not of fitting and scoring the same points."""
    import torch

    tokens, y = forget.tensor(), torch.tensor(forget.labels)
    hits = torch.zeros(len(points), len(y), dtype=torch.bool)
    for f, train in enumerate(masks):
        held = ~train
        ctx = contextlib.nullcontext()
        if method is not None:
            idx = train.nonzero().flatten().tolist()
            part = UnlearningData(tuple(forget.sequences[j] for j in idx), tuple(forget.labels[j] for j in idx),
                                  forget.prefix_len)
            ctx = method.fit(loaded, part, retain, seed=seed).apply(loaded)
        with ctx:
            x = pooled_activations(loaded, tokens[held], points, pooling, prefix_len=forget.prefix_len)
        for i, theta in enumerate(probes):
            fold = tuple(a[f : f + 1] for a in theta)
            hits[i, held] = (predict(fold, x[i])[0] > 0) == y[held].bool()
    return hits


def frozen_folds(cfg: Any, y: Any) -> int:
    """The frozen probes' folds, ``cfg.frozen_folds``, checked against the smaller class's size."""
    from harness.errors import HarnessError

    smaller = min(int((y == 0).sum()), int((y == 1).sum()))
    if cfg.frozen_folds > smaller:
        raise HarnessError(
            f"frozen_folds={cfg.frozen_folds} but the smaller class has {smaller} sequences: every fold must hold out "
            f"at least one sequence of each class. Fix: frozen_folds <= {smaller} (or more sequences)."
        )
    return cfg.frozen_folds


def shared(cfg: Any, cell: Any) -> dict[str, Any]:
    import torch

    loaded = cell.load_model()
    key = json.dumps([str(loaded.fingerprint), cfg.model_dump(mode="json"), cell.seed], sort_keys=True)
    if key in _SHARED:
        return _SHARED[key]
    forget, fit_ret, eval_ret, info = build_data(cfg, loaded, cell.seed, cell)
    points = hook_points(loaded, cfg.hook, cfg.layers)
    tokens, y = forget.tensor(), torch.tensor(forget.labels)
    x = pooled_activations(loaded, tokens, points, cfg.pooling, prefix_len=cfg.prefix_len)
    masks = stratified_masks(y, frozen_folds(cfg, y), cell.seed)  # cross-fitted: each sequence scored held out
    frozen = [fit_logistic(x[i], y, masks, l2=cfg.l2) for i in range(len(points))]
    s = {"forget": forget, "retain": fit_ret, "eval_retain": eval_ret, "info": info, "points": points,
         "frozen": frozen, "masks": masks}
    _SHARED[key] = s
    return s


def run_cell(suite: Any, cell: Any) -> SuiteOutput:
    import torch

    cfg = suite.config
    loaded = cell.load_model()
    s = shared(cfg, cell)
    forget, points = s["forget"], s["points"]
    tokens, y = forget.tensor(), torch.tensor(forget.labels)
    details: dict[str, Any] = {"data": s["info"], "points": points}

    t0 = time.perf_counter()
    intervention = None if cell.method is None else cell.method.fit(loaded, forget, s["retain"], seed=cell.seed)
    details["fit_seconds"] = round(time.perf_counter() - t0, 2)
    ctx = intervention.apply(loaded) if intervention is not None else contextlib.nullcontext()
    with ctx:
        x = {p: pooled_activations(loaded, tokens, points, p, prefix_len=cfg.prefix_len) for p in {a[1] for a in ATTACKERS} | {cfg.pooling}}
        attack = {
            name: [attacker_accuracy(x[pool][i], y, kind, l2, cell.seed) for i in range(len(points))]
            for name, pool, kind, l2 in ATTACKERS
        }
        loo = loo_profile(loaded, tokens, y, points, cfg.pooling, cfg.l2, 0, cell.seed, cfg.prefix_len)["acc"]
        mem = forget.subset(1).tensor()
        recall = sum(k_extractable(loaded.model, mem, cfg.prefix_len)) / len(mem)
        ppl, ppl_se = perplexity(loaded, s["eval_retain"])

    t0 = time.perf_counter()
    hits = frozen_hits(loaded, cell.method, forget, s["retain"], s["frozen"], s["masks"], points, cfg.pooling, cell.seed)
    frozen = hits.double().mean(1).tolist()
    details["frozen_fit_seconds"] = round(time.perf_counter() - t0, 2)

    reg = cell.metric
    n = len(y)

    def acc(metric: str, a: float, key: str | None = None) -> Any:  # an accuracy over the n held-out sequences
        return reg(metric).value(a, key=key, n=n, chance=0.5, stderr=binomial_stderr(a, n))

    out = [  # the mean over depths: per-sequence mean hit rate over depths (depths are not independent)
        reg("unlearning_frozen_probe_acc").value(sum(frozen) / len(frozen), n=n, chance=0.5,
                                                 stderr=sequence_stderr(hits.double().mean(0))),
        *[acc("unlearning_frozen_probe_acc", a, f"depth{i}") for i, a in enumerate(frozen)],
        acc("unlearning_refit_probe_acc", max(max(v) for v in attack.values())),
        *[acc("unlearning_refit_probe_acc", max(v), name) for name, v in attack.items()],
        reg("unlearning_recall").value(recall, n=len(mem), stderr=binomial_stderr(recall, len(mem))),
        reg("unlearning_retain_perplexity").value(ppl, n=len(s["eval_retain"].sequences), stderr=ppl_se),
        *[acc("loo_cross_sequence_probe", a, f"depth{i}") for i, a in enumerate(loo)],
    ]
    if cfg.capability_tasks:  # the un-edited model is the reference (scored once per output folder: cached)
        cap = score_capability(
            loaded, cfg.capability_tasks, intervention=intervention, limit=cfg.capability_limit,
            include_paths=cfg.capability_include_paths, cache_dir=cell_cache_dir(cell),
        )  # fmt: skip
        out += capability_metrics(cell, cap)
        details["capability"] = cap.details()
    if cell.method is None and cfg.controls:
        trained = loo_profile(loaded, tokens, y, points, cfg.pooling, cfg.l2, cfg.shuffles, cell.seed, cfg.prefix_len)
        rand = loo_profile(random_init_copy(loaded, cell.seed), tokens, y, points, cfg.pooling, cfg.l2, cfg.shuffles, cell.seed, cfg.prefix_len)
        details["loo"] = {"trained": trained, "random_init": rand}
        for i in range(len(points)):
            gap, se, p = gap_statistics(trained["acc"][i], trained["null"][i])
            out.append(reg("memorisation_probe_gap").value(gap, key=f"depth{i}", n=n, stderr=se))
            out.append(reg("memorisation_probe_gap_p").value(p, key=f"depth{i}", n=cfg.shuffles,
                                                             stderr=binomial_stderr(p, cfg.shuffles)))
            gap, se, _ = gap_statistics(rand["acc"][i], rand["null"][i])
            out.append(reg("memorisation_probe_gap_random_init").value(gap, key=f"depth{i}", n=n, stderr=se))
        details["loo_trained_minus_random_init"] = [a - b for a, b in zip(trained["acc"], rand["acc"])]
    extra = extra_metric_names(cfg, cell.registries)  # a third party's intervention metrics (the base row: None)
    if extra:
        inputs = InterventionInputs(model=loaded, intervention=intervention, forget=forget, retain=s["retain"],
                                    seed=int(cell.seed), device=str(cell.device))
        out += cell.compute_metrics(inputs, extra)
    details["frozen_per_depth"] = frozen
    details["frozen_folds"] = int(s["masks"].shape[0])
    details["attacker_per_depth"] = attack
    if intervention is not None:
        details["intervention_id"] = intervention.id
    return SuiteOutput(metrics=out, details=details)
