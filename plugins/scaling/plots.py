"""PNG plots of the ``scaling`` suite (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {"knowledge": "--", "procedural": "-"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _tasks(rows: list[Any]) -> list[str]:
    return sorted(rows[0].kinds, key=lambda t: (rows[0].kinds[t], t))


def _vs_params(sizes: list[Any], metric: str, ylabel: str, path: Path, chance: bool) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs = [r.params for r in sizes]
    for t in _tasks(sizes):
        pts = [(x, r.get(metric, t)) for x, r in zip(xs, sizes)]
        pts = [(x, v) for x, v in pts if v is not None]
        if not pts:
            continue
        kind = sizes[0].kinds[t]
        ax.errorbar([x for x, _ in pts], [v[0] for _, v in pts], yerr=[1.96 * (v[1] or 0) for _, v in pts],
                    ls=STYLE.get(kind, ":"), marker="o", capsize=2, label=f"{t} ({kind})")
    if metric == "scaling_answer_ce" and all(r.get("scaling_heldout_loss") for r in sizes):
        ax.plot(xs, [r.get("scaling_heldout_loss")[0] for r in sizes], "k-", lw=2.5, label="held-out world text")
    if chance:
        for level in sorted({c for c in sizes[0].chance.values() if c is not None}):
            ax.axhline(level, color="grey", ls=":", lw=1)
            ax.text(xs[0], level, f" chance {level:.2f}", color="grey", fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _checkpoints(ckpts: dict[str, list[Any]], path: Path) -> None:
    plt = _plt()
    names = sorted(ckpts, key=lambda n: ckpts[n][-1].params)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 1, 3.6), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        rs = ckpts[name]
        for t in _tasks(rs):
            ys = [r.get("scaling_acc", t) for r in rs]
            ax.plot(range(len(rs)), [y[0] if y else float("nan") for y in ys], marker="o",
                    ls=STYLE.get(rs[0].kinds[t], ":"), label=t)
        for level in sorted({c for c in rs[0].chance.values() if c is not None}):
            ax.axhline(level, color="grey", ls=":", lw=1)
        ax.set_xticks(range(len(rs)), [r.revision for r in rs], fontsize=7)
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("accuracy (lm-eval acc)")
    axes[0][-1].legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_all(sizes: list[Any], ckpts: dict[str, list[Any]], out_dir: Path) -> list[str]:
    """Write the plots that the recorded models allow; returns their file paths."""
    written = []
    if len(sizes) >= 2:
        for name, metric, label, chance in (("accuracy_vs_params.png", "scaling_acc", "accuracy (lm-eval acc)", True),
                                            ("loss_vs_params.png", "scaling_answer_ce", "answer CE (nats/token)",
                                             False)):
            _vs_params(sizes, metric, label, out_dir / name, chance)
            written.append(str(out_dir / name))
    if ckpts:
        _checkpoints(ckpts, out_dir / "accuracy_vs_checkpoint.png")
        written.append(str(out_dir / "accuracy_vs_checkpoint.png"))
    return written
