"""Stability of F over the dictionary's l1 coefficient and size (Bereska et al. 2025: stable for
l1 in [1e-3, 1] and dictionaries from 2x to 32x).

Reuses the cell's toy models of the sparsity sweep (a spread-out subset of them) and, for
each value of the sweep, trains a fresh learner like the row's with that one config field
changed (``l1_coefficient``, ``expansion_factor``; a learner without the field is not swept
over it), counting F on the toy models' hidden activations. Readouts per value: Pearson r of
F with the ground-truth count and the mean relative change of F from the row's own config.
"""

from __future__ import annotations

from typing import Any

import torch

from harness.protocols import LearnerSpec
from harness.stats import pearson

from .experiment_configs import StabilityConfig
from .sweeps import SaeBudget, features_through_learner
from .toy import ToyBatch


SWEPT = {"l1_coefficient": "l1_coefficients", "expansion_factor": "expansion_factors"}


def spread(n_total: int, n: int) -> list[int]:
    """``n`` indices evenly spread over range(n_total) (all when n >= n_total)."""
    if n >= n_total:
        return list(range(n_total))
    return sorted({round(i * (n_total - 1) / (n - 1)) for i in range(n)})


def run_stability(cfg: StabilityConfig, method: Any, toys: ToyBatch, truth: list[int], budget: SaeBudget,
                  seed: int) -> dict[str, Any]:
    """F per toy model for each swept value, and for the row's own config (the reference); ``truth`` holds
    the ground truth of the sparsity sweep's models (the first ``len(truth)`` of ``toys``)."""
    if method is None:
        return {"skipped": "neuron basis: no dictionary to sweep"}
    idx = spread(len(truth), cfg.toy_models)
    gt = [truth[i] for i in idx]
    base = method.config.model_dump()
    cache: dict[str, list[float]] = {}

    def F_of(config: dict[str, Any]) -> list[float]:
        key = repr(sorted(config.items()))
        if key not in cache:  # the same learner seeds for every config: only the swept field differs
            spec = LearnerSpec(method.cls, method.cls.Config.model_validate(config))
            cache[key] = features_through_learner(toys, spec, budget, seed, indices=idx)[0]
        return cache[key]

    ref = F_of(base)
    out: dict[str, Any] = {"toy_indices": idx, "ground_truth": gt, "reference": {"config": base, "F": [round(f, 4) for f in ref]}}
    for fld, cfg_field in SWEPT.items():
        if fld not in base:
            out[fld] = {"skipped": f"{method.name} has no config field {fld!r}"}
            continue
        sweep = []
        for value in getattr(cfg, cfg_field):
            F = F_of({**base, fld: value})
            rel = [(f - r) / r for f, r in zip(F, ref)]
            try:
                r_truth = pearson(F, gt)
            except ValueError:
                r_truth = None  # F constant over the toy models (e.g. every latent dead)
            sweep.append({"value": value, "F": [round(f, 4) for f in F],
                          "pearson_r": None if r_truth is None else round(r_truth, 4),
                          "mean_abs_relative_change": round(float(torch.tensor(rel).abs().mean()), 4)})
        out[fld] = sweep
    return out
