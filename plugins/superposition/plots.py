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


def algorithmic_plot(path: Path, rows: list[dict[str, Any]], label: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    for layer in sorted({r["layer"] for r in rows}):
        pts = [(r["N"], r["F"]) for r in rows if r["layer"] == layer]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"hidden layer {layer}")
    ns = sorted({r["N"] for r in rows})
    ax.plot(ns, ns, color="grey", ls="--", lw=0.8, label="F = N (psi = 1)")
    ax.set_xlabel("neurons N")
    ax.set_ylabel(f"F via {label}")
    ax.set_title("multitask sparse parity", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def grokking_plot(path: Path, res: Any, label: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(res.steps, res.train_acc, label="train accuracy", color="tab:blue")
    ax.plot(res.steps, res.test_acc, label="test accuracy", color="tab:orange")
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax2 = ax.twinx()
    ax2.plot(res.steps, res.F, label=f"F via {label}", color="tab:green", marker=".", ms=3)
    ax2.set_ylabel("effective features F")
    for step, name in ((res.memorised_step, "memorised"), (res.generalised_step, "generalised")):
        if step is not None:
            ax.axvline(step, color="grey", lw=0.7, ls=":")
            ax.text(step, 0.5, name, rotation=90, fontsize=6, va="center")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="center right")
    ax.set_title("grokking: modular addition", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def adversarial_plot(path: Path, out: dict[str, Any], label: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.6))
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in out["rows"]:
        groups.setdefault((r["classes"], r["width"]), []).append(r)
    verdict = {(v["classes"], v["width"]): v["regime"] for v in out["verdicts"]}
    for (k, w), rows in sorted(groups.items()):
        eps = [r["train_eps"] for r in rows]
        F0 = rows[0]["F"]
        axes[0].plot(eps, [r["F"] / F0 for r in rows], marker="o", label=f"{k} classes, N={w}: {verdict[(k, w)]}")
        robust = [r["robust_acc_pgd"].get(str(r["train_eps"]), r["clean_acc"]) for r in rows]
        axes[1].plot(eps, robust, marker="o", label=f"{k} classes, N={w}")
    axes[0].axhline(1.0, color="grey", lw=0.7, ls="--")
    axes[0].set_xlabel("training epsilon")
    axes[0].set_ylabel(f"F / F(eps=0), via {label}")
    axes[0].legend(fontsize=6)
    axes[1].set_xlabel("training epsilon (= attack epsilon)")
    axes[1].set_ylabel("PGD robust accuracy (clean at eps 0)")
    axes[1].legend(fontsize=6)
    fig.suptitle("adversarial training on digits", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def stability_plot(path: Path, out: dict[str, Any], label: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4))
    gt = out["ground_truth"]
    for ax, fld, xlabel in ((axes[0], "l1_coefficient", "l1 coefficient"), (axes[1], "expansion_factor", "dictionary size (x N)")):
        sweep = out.get(fld)
        if not isinstance(sweep, list):
            ax.set_title(f"{fld}: not swept", fontsize=8)
            continue
        vals = [s["value"] for s in sweep]
        for j, g in enumerate(gt):
            ax.plot(vals, [s["F"][j] for s in sweep], marker=".", lw=0.8, label=f"truth {g}")
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ax.set_xticks(vals, [f"{v:g}" for v in vals])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"F via {label}")
        ax.set_title(", ".join(f"r={s['pearson_r']:.2f}" if s["pearson_r"] is not None else "r=n/a" for s in sweep), fontsize=7)
    axes[0].legend(fontsize=5, ncol=2)
    fig.suptitle("stability of F (toy models)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def convergence_plot(path: Path, profile: Any, model: str, label: str, saturation: dict[str, int | None]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for p in profile.points:
        trace = profile.results[p].convergence
        final = trace[-1][1]
        ax.plot([t[0] for t in trace], [t[1] / final for t in trace], lw=0.9, marker=".", ms=3,
                label=f"{p} (sat. {saturation.get(p) or '-'})")
    ax.set_xscale("log")
    ax.axhline(1.0, color="grey", lw=0.7, ls="--")
    ax.set_xlabel("tokens counted")
    ax.set_ylabel("F / final F")
    ax.set_title(f"saturation of F in counted tokens: {model} ({label})", fontsize=8)
    ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
