"""Cross-row summary of the ``sae`` suite: L0 vs explained variance / CE-loss recovered (Pareto).

Every recorded row contributes its own point (the learner at its configured sparsity) and, if
the suite ran a sweep (``sweep_values``, the ``full`` preset), one point per swept value of the
learner's ``sweep_field`` (e.g. k). A point is on the Pareto frontier when no other point of the
same model has both a lower-or-equal L0 and a higher-or-equal score (one of them strictly).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCORES = (("explained_variance", "sae_explained_variance", "explained variance"),
          ("ce_loss_recovered", "sae_ce_loss_recovered", "CE-loss recovered"))  # fmt: skip


@dataclass
class Point:
    model: str
    row: str
    setting: str
    l0: float
    scores: dict[str, float]
    swept: bool


def points_from_records(records: list[Any]) -> list[Point]:
    pts: list[Point] = []
    for rec in sorted(records, key=lambda r: (r.cell.model, r.label, r.cell.seed)):
        if rec.cell.seed != min(r.cell.seed for r in records if r.label == rec.label and r.cell.model == rec.cell.model):
            continue  # one seed per row: the sweep is per cell
        vals = {(m.metric, m.key): m.value for m in rec.output.metrics}
        main = {k: vals.get((metric, None)) for k, metric, _ in SCORES}
        if vals.get(("sae_l0", None)) is None or None in main.values():
            continue
        conf = rec.cell.method_config or {}
        sweep = rec.output.details.get("sweep") or {}
        field = sweep.get("field") or rec.cell.suite_config.get("sweep_field", "k")
        own = f"{field}={conf.get(field)}" if field and field in conf else "as configured"
        pts.append(Point(rec.cell.model, rec.label, own, vals[("sae_l0", None)], main, False))  # type: ignore[arg-type]
        for p in sweep.get("points", []):
            if field in conf and p["value"] == conf[field]:
                continue
            pts.append(Point(rec.cell.model, rec.label, f"{field}={p['value']}", p["l0"],
                             {k: p[k] for k, _, _ in SCORES}, True))
    return sorted(pts, key=lambda p: (p.model, p.row, p.l0))


def frontier(points: list[Point], score: str) -> set[int]:
    """Indices of the non-dominated points (lower L0 and higher ``score`` are better), per model."""
    keep = set()
    for i, p in enumerate(points):
        dominated = any(
            q.model == p.model and q.l0 <= p.l0 and q.scores[score] >= p.scores[score]
            and (q.l0 < p.l0 or q.scores[score] > p.scores[score])
            for q in points
        )  # fmt: skip
        if not dominated:
            keep.add(i)
    return keep


def plot(points: list[Point], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({p.model for p in points})
    rows = sorted({p.row for p in points})
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 4.2 * len(models)), squeeze=False)
    for mi, model in enumerate(models):
        for si, (score, _, label) in enumerate(SCORES):
            ax = axes[mi][si]
            for ri, row in enumerate(rows):
                pts = sorted((p for p in points if p.model == model and p.row == row), key=lambda p: p.l0)
                if not pts:
                    continue
                ax.plot([p.l0 for p in pts], [p.scores[score] for p in pts], "-", color=cmap(ri % 10), alpha=0.6)
                for p in pts:
                    ax.plot(p.l0, p.scores[score], "o" if not p.swept else ".", color=cmap(ri % 10),
                            ms=8 if not p.swept else 7, label=row if p is pts[0] else None)
            front = sorted((points[i] for i in frontier(points, score) if points[i].model == model), key=lambda p: p.l0)
            ax.step([p.l0 for p in front], [p.scores[score] for p in front], where="post", color="black", lw=0.8,
                    ls="--", label="Pareto frontier")
            ax.set_xscale("log")
            ax.set_xlabel("L0 (latents per token)")
            ax.set_ylabel(label)
            ax.set_title(f"{model}: L0 vs {label}")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(records: list[Any], out_dir: Path) -> str | None:
    from tabulate import tabulate

    points = points_from_records(records)
    if not points:
        return None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fronts = {s: frontier(points, s) for s, _, _ in SCORES}
    table = [
        [p.model, p.row, p.setting, f"{p.l0:.1f}"]
        + [f"{p.scores[s]:.4f}{' ◆' if i in fronts[s] else ''}" for s, _, _ in SCORES]
        for i, p in enumerate(points)
    ]
    plot(points, out_dir / "pareto.png")
    n_swept = sum(p.swept for p in points)
    note = (f"{n_swept} swept points (learners retrained at other sparsities on the same activations)."
            if n_swept else "No sweep in this run (`sweep_values: []`); the presets sweep k for curves.")
    return "\n".join([
        "### Sparsity vs fidelity (Pareto)", "",
        "Each row at its configured sparsity, plus any swept settings. ◆ = on the Pareto frontier of its model "
        "(no other point has lower-or-equal L0 and higher-or-equal score). " + note, "",
        tabulate(table, headers=["model", "learner", "setting", "L0", "explained variance", "CE-loss recovered"],
                 tablefmt="github", disable_numparse=True), "",
        "Plot: `pareto.png`", "",
    ])  # fmt: skip
