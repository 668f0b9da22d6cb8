"""PNG plots (matplotlib, Agg backend) of the toy check, the dropout sweep and the layer profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def toy_scatter(path: Path, ground_truth: list[int], F: list[float], F_weights: list[float], label: str, r: float) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(ground_truth, F, label=f"{label} (r = {r:.3f})", s=18)
    ax.scatter(ground_truth, F_weights, label="from ||W_i|| (no dictionary)", s=12, marker="x", alpha=0.7)
    lo, hi = min(ground_truth), max(ground_truth)
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("represented features (||W_i|| > threshold)")
    ax.set_ylabel("effective features F")
    ax.set_title("toy models of superposition")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dropout_plot(path: Path, rates: list[float], F: list[float], truth: list[int], label: str, rho: float) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    ax.scatter(rates, F, label=f"F via {label} (Spearman {rho:.2f})", s=18)
    ax.scatter(rates, truth, label="represented features (ground truth)", s=12, marker="x")
    ax.set_xlabel("dropout on the hidden layer")
    ax.set_ylabel("features")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def layer_plot(path: Path, profile: Any, model: str, label: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    by_kind: dict[str, list[tuple[int, float, float]]] = {}
    for p in profile.points:
        r = profile.results[p]
        by_kind.setdefault(profile.kinds[p], []).append((profile.layers[p], r.F, r.psi or 0.0))
    for kind, rows in by_kind.items():
        rows.sort()
        axes[0].plot([x[0] for x in rows], [x[1] for x in rows], marker="o", label=kind)
    axes[0].set_xticks(sorted(set(profile.layers.values())))
    axes[0].set_xlabel("layer")
    axes[0].set_ylabel("effective features F")
    axes[0].set_title(f"{model} ({label})", fontsize=9)
    axes[0].legend(fontsize=7)
    for p in profile.points:
        trace = profile.results[p].convergence
        axes[1].plot([t[0] for t in trace], [t[1] for t in trace], lw=0.8, alpha=0.8, label=p)
    axes[1].set_xscale("log")
    from matplotlib.ticker import NullFormatter

    axes[1].xaxis.set_minor_formatter(NullFormatter())
    axes[1].set_xlabel("tokens counted")
    axes[1].set_ylabel("F")
    axes[1].set_title("convergence", fontsize=9)
    if len(profile.points) <= 12:
        axes[1].legend(fontsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
