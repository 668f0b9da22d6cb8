"""The hallucination_detection board's summary: detectors as rows, the familiarity reference unranked.

The board's rows are models and each detector is a column (``hallucination_auroc[<detector>]``,
``hallucination_auroc_within[<detector>:<split>]``); this table turns them round, per model, so that a
detector's pooled AUROC stands next to its AUROC within each split and next to the familiarity-only
reference (the split label alone), which is shown but not ranked. Values are means over the seeds.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .splits import FAMILIARITY


def _means(records: list[Any]) -> dict[str, float]:
    """Column -> mean over the records (seeds) that have it."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for mv in r.output.metrics:
            acc[mv.column].append(mv.value)
    return {c: sum(v) / len(v) for c, v in acc.items()}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _model_table(model: str, records: list[Any]) -> list[str]:
    vals = _means(records)
    detectors = [c[len("hallucination_auroc["):-1] for c in vals if c.startswith("hallucination_auroc[")]
    detectors += [c[len("hallucination_detector_ms["):-1] for c in vals
                  if c.startswith("hallucination_detector_ms[") and c[len("hallucination_detector_ms["):-1] not in detectors]
    splits = list(dict.fromkeys(c.split(":", 1)[1][:-1] for c in vals if c.startswith("hallucination_auroc_within[")))
    if not detectors:
        return []

    def within(det: str, split: str) -> float | None:
        if split == "mean":
            return vals.get(f"hallucination_auroc_within_mean[{det}]")
        return vals.get(f"hallucination_auroc_within[{det}:{split}]")

    rows = sorted(detectors, key=lambda d: -(within(d, "mean") or vals.get(f"hallucination_auroc[{d}]") or 0.0))
    seeds = len({r.cell.seed for r in records})
    lines = [f"**Detectors on {model}** ({seeds} seed{'s' if seeds != 1 else ''}; ranked by the mean AUROC within "
             "splits; the familiarity-only reference is not ranked):", ""]
    head = ["rank", "detector", "AUROC pooled", *(f"within {s}" for s in splits)]
    head += ["within mean", "ms / question"] if splits else ["ms / question"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, det in enumerate(rows, 1):
        cells = [str(i), det, _fmt(vals.get(f"hallucination_auroc[{det}]")), *(_fmt(within(det, s)) for s in splits)]
        if splits:
            cells.append(_fmt(within(det, "mean")))
        cells.append(_fmt(vals.get(f"hallucination_detector_ms[{det}]")))
        lines.append("| " + " | ".join(cells) + " |")
    if "familiarity_auroc" in vals:
        defined = [s for s in splits if any(within(d, s) is not None for d in detectors)]
        ref = ["-", FAMILIARITY, _fmt(vals["familiarity_auroc"]), *("0.500" if s in defined else "-" for s in splits)]
        if splits:
            ref.append("0.500" if defined else "-")
        ref.append("-")
        lines.append("| " + " | ".join(ref) + " |")
        lines += ["", f"`{FAMILIARITY}`: every question scored by its split's hallucination rate (the split label "
                  "alone; within a split it is constant, so 0.500 there by construction). A detector whose pooled "
                  "AUROC is near this row's and whose within-split AUROCs are near 0.5 detects familiarity only."]
    lines += _ees_lines(records, vals)
    return lines


def _ees_lines(records: list[Any], vals: dict[str, float]) -> list[str]:
    """EES's error and its time against the exact EigenScore, as measured in these cells."""
    t_ees = vals.get("hallucination_detector_ms[hd_efficient_eigenscore]")
    t_exact = vals.get("hallucination_detector_ms[hd_eigenscore]")
    err = vals.get("ees_relative_error")
    if t_ees is None or t_exact is None:
        return []
    cfg = records[0].cell.suite_config
    d = records[0].output.details
    where = ", ".join(sorted({r.provenance.device for r in records}))
    ratio = t_ees / t_exact if t_exact > 0 else float("inf")
    speed = f"EES took {ratio:.1f}x the exact time" if ratio >= 1 else f"EES took {ratio:.2f}x the exact time (faster)"
    line = (f"Efficient EigenScore (M = {cfg.get('ees_moments', 20)} Chebyshev moments, 20 probes) against the exact "
            f"EigenScore (LAPACK slogdet) on these cells' answers (K = {d.get('k')}, d = {d.get('d')}, device "
            f"{where}): time per question {t_ees:.3f} ms vs {t_exact:.3f} ms, {speed}")
    if err is not None:
        line += f"; mean relative error {err:.3f}"
    return ["", line + ". Measured here, not a claim from the paper (which reports ~2x faster)."]


def detector_table(records: list[Any]) -> str | None:
    """The Markdown summary of :mod:`harness_plugins.hallucination_detectors`' suite (None without records)."""
    by_model: dict[str, list[Any]] = defaultdict(list)
    for r in records:
        by_model[r.cell.model].append(r)
    lines: list[str] = []
    for model in sorted(by_model):
        table = _model_table(model, by_model[model])
        if table:
            lines += ([""] if lines else []) + table
    return "\n".join(lines) or None
