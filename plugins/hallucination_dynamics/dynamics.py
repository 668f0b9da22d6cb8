"""Checkpoint dynamics of the ``hallucination_dynamics`` suite: per model, its checkpoints in training order.

For each metric column and model with at least three checkpoints, from the values ``m_t`` (standard
errors ``s_t``) in step order:

- ``MSSD/2 = mean_t (m_{t+1} - m_t)^2 / 2``, the variance between consecutive checkpoints (the mean squared
  successive difference halved: the variance of ``m`` when the checkpoints scatter independently);
- ``noise = mean_t (s_t^2 + s_{t+1}^2) / 2``, what sampling error alone contributes to it;
- ``ratio = MSSD/2 / noise``: about 1 when consecutive checkpoints differ by no more than sampling error,
  well above 1 when the metric moves between checkpoints;
- ``reversals``: direction changes among the consecutive changes that are significant (|d| > 1.96 x the
  combined stderr): oscillation in the SeND paper's sense, as opposed to a steady trend.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

#: Board columns the summary follows (the others are in the board's table).
COLUMNS = ("hallucination_rate[rare]", "hallucination_rate[heldout]", "known_fact_accuracy[frequent]",
           "answer_eigenscore[ees]")


def consecutive_stats(points: list[tuple[float, float | None]]) -> dict[str, Any]:
    """MSSD/2, its sampling-noise expectation, their ratio and the significant direction reversals of a
    sequence of (value, stderr) in training order (needs >= 2 points)."""
    if len(points) < 2:
        raise ValueError("consecutive_stats needs at least 2 checkpoints")
    diffs, noise, signs = [], [], []
    for (a, sa), (b, sb) in zip(points, points[1:]):
        d = b - a
        var = (sa or 0.0) ** 2 + (sb or 0.0) ** 2
        diffs.append(d)
        noise.append(var / 2)
        if var > 0 and abs(d) > 1.96 * math.sqrt(var):
            signs.append(1 if d > 0 else -1)
    mssd = sum(d * d for d in diffs) / (2 * len(diffs))
    expected = sum(noise) / len(noise)
    return {
        "mssd_half": mssd, "noise": expected, "ratio": mssd / expected if expected > 0 else None,
        "significant_changes": len(signs), "reversals": sum(1 for x, y in zip(signs, signs[1:]) if x != y),
        "diffs": diffs,
    }


def _series(records: list[Any]) -> dict[str, list[tuple[float, str, dict[str, tuple[float, float | None]]]]]:
    """Per model name: (step, revision, {column: (value, stderr)}) in step order (seed 0, else the first seed)."""
    by: dict[str, dict[str, tuple[float, str, dict]]] = defaultdict(dict)
    for rec in sorted(records, key=lambda r: r.cell.seed):
        if rec.output is None:
            continue
        name, _, rev = rec.cell.model.partition("@")
        rev = rev or "main"
        if rev in by[name]:
            continue
        step = rec.output.details.get("step")
        vals = {mv.column: (mv.value, mv.stderr) for mv in rec.output.metrics}
        by[name][rev] = (math.inf if step is None else float(step), rev, vals)

    def natural(name: str) -> list[Any]:  # zoo-32 before zoo-160
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]

    return {name: sorted(by[name].values(), key=lambda t: t[0]) for name in sorted(by, key=natural)}


def summarize(records: list[Any], out_dir: Path) -> str | None:
    series = _series(records)
    if not series:
        return None
    lines = ["### Checkpoint dynamics", "",
             "Each model's checkpoints in training order (`step`: the zoo's recorded step; ± = 1.96 standard errors).",
             ""]
    head = "| model | step | revision | " + " | ".join(f"`{c}`" for c in COLUMNS) + " |"
    lines += [head, "|" + "---|" * (3 + len(COLUMNS))]
    for name, pts in series.items():
        for step, rev, vals in pts:
            cells = []
            for c in COLUMNS:
                v = vals.get(c)
                cells.append("-" if v is None else f"{v[0]:.3f}" + ("" if v[1] is None else f" ± {1.96 * v[1]:.3f}"))
            lines.append(f"| {name} | {'-' if math.isinf(step) else int(step)} | {rev} | " + " | ".join(cells) + " |")
    lines += ["", "Between consecutive checkpoints: MSSD/2 = mean squared successive difference / 2 (the variance "
              "between consecutive checkpoints); noise = what the values' sampling errors alone give it; ratio = "
              "MSSD/2 / noise (about 1: consecutive checkpoints differ by sampling error only); significant "
              "changes (|d| > 1.96 x combined stderr) and their direction reversals (oscillation, as the SeND "
              "paper reads Pythia's checkpoints, rather than a trend). With few checkpoints MSSD/2 is mostly the "
              "training trend (each step changes the model a lot); oscillation shows as reversals, which need at "
              "least three checkpoints and become readable with dense ones.", "",
              "| model | checkpoints | metric | MSSD/2 | noise | ratio | significant changes | reversals |",
              "|---|---|---|---|---|---|---|---|"]
    for name, pts in series.items():
        for c in COLUMNS:
            seq = [vals[c] for _, _, vals in pts if c in vals]
            if len(seq) < 2:
                continue
            st = consecutive_stats(seq)
            ratio = "-" if st["ratio"] is None else f"{st['ratio']:.1f}"
            lines.append(f"| {name} | {len(seq)} | `{c}` | {st['mssd_half']:.5f} | {st['noise']:.5f} | {ratio} | "
                         f"{st['significant_changes']} of {len(seq) - 1} | {st['reversals']} |")
    plot = _plot(series, Path(out_dir))
    if plot:
        lines += ["", f"Plot: `{plot}`"]
    return "\n".join(lines)


def _plot(series: dict[str, list], out_dir: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.5))
    for ax, c in zip(axes, COLUMNS):
        for name, pts in series.items():
            known = [(s, v[c]) for s, _, v in pts if c in v and not math.isinf(s)]  # plotted at a known step
            if known:
                ax.errorbar([s for s, _ in known], [m for _, (m, _) in known],
                            yerr=[1.96 * (se or 0.0) for _, (_, se) in known], marker="o", capsize=3, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("training step")
        ax.set_title(c, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    name = "hallucination_dynamics.png"
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name
