"""One cell of the superposition suite (see the package docstring)."""

from __future__ import annotations

import time
from typing import Any

import torch

from harness.results import MetricValue, SuiteOutput
from harness.stats import pearson, spearman

from . import plots
from .sweeps import SaeBudget, features_from_weights, features_through_learner
from .toy import train_toy_models_shared


def run_cell(suite: Any, cell: Any) -> SuiteOutput:
    cfg = suite.config
    b = cfg.budget
    label = cell.method.name if cell.method is not None else "neuron basis"
    seed = int(cell.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest and kind to shared machines
    try:
        timings: dict[str, float] = {}
        metrics: list[MetricValue] = []
        details: dict[str, Any] = {"dictionary": label}
        artifacts: dict[str, str] = {}

        # ---------------------------------------------------------------- toy models (one batch)
        t0 = time.perf_counter()
        k = int(b("toy_models"))
        feature_prob = torch.logspace(
            torch.log10(torch.tensor(1 - cfg.sparsity_min)), torch.log10(torch.tensor(1 - cfg.sparsity_max)), k
        )
        n_drop = len(cfg.dropout_rates) * int(b("dropout_seeds"))
        rates = [r for r in cfg.dropout_rates for _ in range(int(b("dropout_seeds")))]
        probs = torch.cat([feature_prob, torch.full((n_drop,), 1 - cfg.dropout_sparsity)])
        drop = torch.cat([torch.zeros(k), torch.tensor(rates, dtype=torch.float32)])
        toys = train_toy_models_shared(
            probs, n_features=cfg.toy_features, n_hidden=cfg.toy_hidden, importance_decay=cfg.importance_decay,
            dropout=drop, steps=int(b("toy_steps")), batch_size=int(b("toy_batch_size")), lr=float(b("toy_lr")),
            seed=seed,
        )  # fmt: skip
        truth = toys.represented(cfg.norm_threshold).tolist()
        timings["toy_training"] = time.perf_counter() - t0

        # ---------------------------------------------------------------- F vs ground truth
        t0 = time.perf_counter()
        budget = SaeBudget(int(b("sae_samples")), int(b("sae_epochs")), cfg.sae_batch_size, b("sae_lr"))
        F_all, logs = features_through_learner(toys, cell.method, budget, seed)
        F_toy, gt_toy = F_all[:k], truth[:k]
        F_w = features_from_weights(toys)[:k]
        r_metric = cell.metric("superposition_toy_pearson_r")
        r = r_metric.report(F_toy, gt_toy)
        metrics.append(r)
        if cell.method is None:
            metrics.append(cell.metric("superposition_toy_pearson_r_weights").report(F_w, gt_toy))
        details["toy"] = {
            "feature_probability": [round(float(p), 6) for p in feature_prob],
            "ground_truth": gt_toy,
            "F": [round(f, 4) for f in F_toy],
            "F_weights": [round(f, 4) for f in F_w],
            "pearson_r_weights": round(pearson(F_w, gt_toy), 4),
            "final_toy_loss": [round(float(x), 6) for x in toys.final_loss[:k]],
            "learner_final_logs": logs[0] if logs else {},
        }
        path, rel = cell.artifact_ref("toy_F_vs_ground_truth.png")
        plots.toy_scatter(path, gt_toy, F_toy, F_w, label, r.value)
        artifacts["toy_F_vs_ground_truth"] = rel

        # ---------------------------------------------------------------- dropout sweep
        F_d, gt_d = F_all[k:], truth[k:]
        metrics.append(cell.metric("superposition_dropout_spearman").report(rates, F_d))
        means = {}
        for rate in cfg.dropout_rates:
            vals = [f for f, q in zip(F_d, rates) if q == rate]
            means[str(rate)] = round(sum(vals) / len(vals), 4)
        details["dropout"] = {
            "rates": rates, "F": [round(f, 4) for f in F_d], "ground_truth": gt_d, "mean_F_per_rate": means,
            "spearman_ground_truth": round(spearman(rates, gt_d), 4) if len(set(gt_d)) > 1 else None,
        }  # fmt: skip
        path, rel = cell.artifact_ref("dropout_F.png")
        plots.dropout_plot(path, rates, F_d, gt_d, label, metrics[-1].value)
        artifacts["dropout_F"] = rel
        timings["toy_dictionaries"] = time.perf_counter() - t0

        # ---------------------------------------------------------------- optional experiments (issue #25)
        on = cfg.enabled()
        if on:
            details["experiments"] = on
        run_experiments(cfg, cell, on, label, seed, budget, toys, truth, details, artifacts, timings)

        # ---------------------------------------------------------------- layer-wise profile
        if cfg.layerwise:
            from .layerwise import layer_profile

            t0 = time.perf_counter()
            loaded = cell.load_model()
            torch.manual_seed(seed)
            sat = "saturation" in on  # stream the count further, with a longer trace
            count_tokens = cfg.saturation.count_tokens if sat else cfg.layer_count_tokens
            checkpoints = cfg.saturation.checkpoints if sat else cfg.convergence_checkpoints
            prof = layer_profile(
                loaded, cell.method, kinds=list(cfg.layer_kinds), train_tokens=cfg.layer_train_tokens,
                count_tokens=count_tokens, epochs=cfg.layer_epochs, batch_size=cfg.layer_batch_size,
                lr=cfg.layer_lr, normalize=cfg.layer_normalize, checkpoints=checkpoints, seed=seed,
                progress=lambda it, desc: cell.progress(it, total=len(it), desc=desc),
                corpus=cell.data(cfg.corpus, "corpus"),
            )  # fmt: skip
            f_metric, psi_metric = cell.metric("effective_features"), cell.metric("superposition_psi")
            for p in prof.points:
                res = prof.results[p]
                metrics.append(f_metric.report(res, key=p))
                metrics.append(psi_metric.report(res, key=p))
            details["layerwise"] = {
                "d_model": loaded.d_model,
                "train_tokens": prof.n_train_tokens,
                "points": {
                    p: {
                        "kind": prof.kinds[p], "layer": prof.layers[p], "F": round(prof.results[p].F, 4),
                        "psi": round(prof.results[p].psi or 0.0, 4), "n_latents": prof.results[p].n_latents,
                        "convergence": [[n, round(f, 4)] for n, f in prof.results[p].convergence],
                        "learner_final_logs": prof.train_logs[p],
                    }
                    for p in prof.points
                },
            }  # fmt: skip
            path, rel = cell.artifact_ref("layerwise_F.png")
            plots.layer_plot(path, prof, str(cell.model_ref), label)
            artifacts["layerwise_F"] = rel
            if sat:
                tol = cfg.saturation.tolerance
                at = {p: saturation_point(prof.results[p].convergence, tol) for p in prof.points}
                counted = sorted(n for n in at.values() if n is not None)
                details["saturation"] = {
                    "count_tokens": prof.n_count_tokens, "tolerance": tol, "saturated_at_tokens": at,
                    "all_points_saturated_by": max(counted) if len(counted) == len(at) else None,
                    "median_saturated_at": counted[len(counted) // 2] if counted else None,
                }  # fmt: skip
                path, rel = cell.artifact_ref("layerwise_saturation.png")
                plots.convergence_plot(path, prof, str(cell.model_ref), label, at)
                artifacts["layerwise_saturation"] = rel
            timings["layerwise"] = time.perf_counter() - t0
        details["timings_s"] = {k2: round(v, 2) for k2, v in timings.items()}
        return SuiteOutput(metrics=metrics, artifacts=artifacts, details=details)
    finally:
        torch.set_num_threads(threads)


def saturation_point(trace: Any, tolerance: float) -> int | None:
    """The first traced token count from which F stays within ``tolerance`` (relative) of its final value
    (None: only the final count is that close, i.e. not yet saturated within the trace)."""
    pts = [(int(n), float(f)) for n, f in trace]
    if len(pts) < 2:
        return None
    final = pts[-1][1]
    first = len(pts) - 1
    for i in range(len(pts) - 1, -1, -1):
        if abs(pts[i][1] - final) > tolerance * abs(final):
            break
        first = i
    return pts[first][0] if first < len(pts) - 1 else None


def run_experiments(cfg: Any, cell: Any, on: list[str], label: str, seed: int, budget: SaeBudget, toys: Any,
                    truth: list[int], details: dict[str, Any], artifacts: dict[str, str],
                    timings: dict[str, float]) -> None:
    """The optional experiments named in ``on`` (``saturation`` is part of the layer-wise profile)."""
    sae_bs, sae_lr = cfg.sae_batch_size, budget.lr
    rnd = lambda v: round(v, 4) if isinstance(v, float) else v  # noqa: E731
    if "algorithmic" in on:
        from .algorithmic import run_algorithmic

        t0 = time.perf_counter()
        rows = run_algorithmic(cfg.algorithmic, cell.method, sae_batch_size=sae_bs, sae_lr=sae_lr, seed=seed)
        psis = [r["psi"] for r in rows]
        details["algorithmic"] = {"rows": [{k: rnd(v) for k, v in r.items()} for r in rows],
                                  "max_psi": round(max(psis), 4), "mean_psi": round(sum(psis) / len(psis), 4)}
        path, rel = cell.artifact_ref("algorithmic_F_vs_N.png")
        plots.algorithmic_plot(path, rows, label)
        artifacts["algorithmic_F_vs_N"] = rel
        timings["algorithmic"] = time.perf_counter() - t0
    if "grokking" in on:
        from .grokking import run_grokking

        t0 = time.perf_counter()
        res = run_grokking(cfg.grokking, cell.method, sae_batch_size=sae_bs, sae_lr=sae_lr, seed=seed)
        details["grokking"] = {
            "steps": res.steps, "train_acc": [round(a, 4) for a in res.train_acc],
            "test_acc": [round(a, 4) for a in res.test_acc], "F": [round(f, 4) for f in res.F],
            **{k: rnd(v) for k, v in res.summary(cfg.grokking.width).items()},
        }  # fmt: skip
        path, rel = cell.artifact_ref("grokking_F.png")
        plots.grokking_plot(path, res, label)
        artifacts["grokking_F"] = rel
        timings["grokking"] = time.perf_counter() - t0
    if "adversarial" in on:
        from .adversarial import run_adversarial

        t0 = time.perf_counter()
        out = run_adversarial(cfg.adversarial, cell.method, sae_batch_size=sae_bs, sae_lr=sae_lr, seed=seed)
        details["adversarial"] = {
            "rows": [{k: ({e: round(a, 4) for e, a in v.items()} if isinstance(v, dict) else rnd(v)) for k, v in r.items()}
                     for r in out["rows"]],
            "verdicts": [{k: rnd(v) for k, v in r.items()} for r in out["verdicts"]],
        }  # fmt: skip
        path, rel = cell.artifact_ref("adversarial_F.png")
        plots.adversarial_plot(path, out, label)
        artifacts["adversarial_F"] = rel
        timings["adversarial"] = time.perf_counter() - t0
    if "stability" in on:
        from .stability import run_stability

        t0 = time.perf_counter()
        out = run_stability(cfg.stability, cell.method, toys, truth[: len(details["toy"]["ground_truth"])], budget, seed)
        details["stability"] = out
        if "skipped" not in out:
            path, rel = cell.artifact_ref("stability_F.png")
            plots.stability_plot(path, out, label)
            artifacts["stability_F"] = rel
        timings["stability"] = time.perf_counter() - t0
