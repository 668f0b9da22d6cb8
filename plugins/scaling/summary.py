"""Cross-model results of the ``scaling`` suite: gap ratios, the headline table, plots.

Size sweep = the records at each model's final weights (revision None / ``main``), ordered
by parameter count; checkpoint sweep = the models recorded at two or more revisions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .run import step_of


def gap_ratio(loss_small: float, loss_large: float, acc_small: float, acc_large: float) -> float | None:
    """Confidence-competence gap ratio: relative loss improvement / relative accuracy improvement
    from the smallest to the largest model, ``((Ls - Ll) / Ls) / ((Al - As) / As)``.

    > 1: loss improves faster than accuracy (confidence outpaces competence); ~1: both move
    together; < 0: accuracy fell while loss improved (or the reverse). ``+-inf`` when the
    accuracy did not change but the loss did; None when neither changed or a base is 0.
    """
    if loss_small == 0 or acc_small == 0:
        return None
    rel_loss = (loss_small - loss_large) / loss_small
    rel_acc = (acc_large - acc_small) / acc_small
    if rel_acc == 0:
        return None if rel_loss == 0 else math.copysign(math.inf, rel_loss)
    return rel_loss / rel_acc


@dataclass
class ModelRow:
    """The numbers of one recorded model (one cell; seeds are not averaged here)."""

    model: str
    name: str
    revision: str
    params: int
    kinds: dict[str, str]
    chance: dict[str, float | None]
    values: dict[tuple[str, str | None], tuple[float, float | None]] = field(default_factory=dict)
    swap: dict[str, Any] | None = None

    def get(self, metric: str, key: str | None = None) -> tuple[float, float | None] | None:
        return self.values.get((metric, key))


def rows_from_records(records: list[Any]) -> list[ModelRow]:
    rows: dict[str, ModelRow] = {}
    for rec in sorted(records, key=lambda r: r.cell.seed):
        d = rec.output.details
        if rec.cell.model in rows or "n_params" not in d:
            continue  # first seed only: the zoo cells are deterministic
        row = ModelRow(rec.cell.model, d["model_name"], d["revision"], int(d["n_params"]), d["task_kind"],
                       d["task_chance"], swap=d.get("swap"))
        for mv in rec.output.metrics:
            row.values[(mv.metric, mv.key)] = (mv.value, mv.stderr)
        rows[rec.cell.model] = row
    return list(rows.values())


def _fmt(v: tuple[float, float | None] | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    return f"{v[0]:.{digits}f}" if v[1] is None else f"{v[0]:.{digits}f} ± {1.96 * v[1]:.{digits}f}"


def _ratio(g: float | None) -> str:
    return "-" if g is None else ("∞" if g == math.inf else "-∞" if g == -math.inf else f"{g:.2f}")


def _delta(a: tuple[float, float | None], b: tuple[float, float | None]) -> tuple[float, bool]:
    """Difference b - a and whether it is significant (95%, independent errors)."""
    se = math.sqrt((a[1] or 0.0) ** 2 + (b[1] or 0.0) ** 2)
    d = b[0] - a[0]
    return d, abs(d) > 1.96 * se if se > 0 else d != 0


def headline(sizes: list[ModelRow]) -> list[list[str]]:
    """Per task and per kind: acc and answer loss smallest -> largest, gap ratio, verdict."""
    small, large = sizes[0], sizes[-1]
    tasks = sorted(small.kinds, key=lambda t: (small.kinds[t], t))
    table = []
    by_kind: dict[str, list[str]] = defaultdict(list)
    for t in tasks:
        by_kind[small.kinds[t]].append(t)

    def line(label: str, kind: str, chance: str, acc: list[tuple[float, float | None]],
             ce: list[tuple[float, float | None]] | None) -> list[str]:
        d, sig = _delta(acc[0], acc[1])
        verdict = ("scales" if d > 0 else "declines") if sig else "plateau"
        g = gap_ratio(ce[0][0], ce[1][0], acc[0][0], acc[1][0]) if ce else None
        rel = f"{100 * (ce[1][0] - ce[0][0]) / ce[0][0]:+.0f}%" if ce else "-"
        return [label, kind, chance, _fmt(acc[0]), _fmt(acc[1]), f"{d:+.3f}", _fmt(ce[0]) if ce else "-",
                _fmt(ce[1]) if ce else "-", rel, _ratio(g), verdict]

    for t in tasks:
        acc = [small.get("scaling_acc", t), large.get("scaling_acc", t)]
        ce = [small.get("scaling_answer_ce", t), large.get("scaling_answer_ce", t)]
        if None in acc:
            continue
        ch = small.chance.get(t)
        table.append(line(t, small.kinds[t], "-" if ch is None else f"{ch:.2f}", acc,  # type: ignore[arg-type]
                          None if None in ce else ce))  # type: ignore[arg-type]
    for kind, ts in sorted(by_kind.items()):
        acc = [r.get("scaling_kind_acc", kind) for r in (small, large)]
        ces = [[r.get("scaling_answer_ce", t) for t in ts] for r in (small, large)]
        if None in acc:
            continue
        ce = None if any(None in c for c in ces) else [
            (sum(v[0] for v in c) / len(c), math.sqrt(sum((v[1] or 0) ** 2 for v in c)) / len(c)) for c in ces]
        table.append(line(f"**all {kind}** ({len(ts)})", kind, "", acc, ce))  # type: ignore[arg-type]
    return table


def _md(headers: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def summarize(records: list[Any], out_dir: Path) -> str | None:
    rows = rows_from_records(records)
    if not rows:
        return None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = sorted((r for r in rows if r.revision == "main"), key=lambda r: r.params)
    by_name: dict[str, list[ModelRow]] = defaultdict(list)
    for r in rows:
        by_name[r.name].append(r)
    ckpts = {n: sorted(rs, key=lambda r: step_of(r.revision)) for n, rs in by_name.items() if len(rs) > 1}
    parts = ["### Capability ceilings: knowledge plateau vs procedural scaling", ""]
    if len(sizes) >= 2:
        parts += [
            f"Smallest → largest model at final weights: {sizes[0].model} ({sizes[0].params:,} params) → "
            f"{sizes[-1].model} ({sizes[-1].params:,}). Accuracy: log-likelihood multiple choice (lm-eval `acc`) "
            "± 95% interval; CE: cross-entropy of the gold answer (nats/token). Gap ratio = relative CE "
            "improvement / relative accuracy improvement (> 1: loss improves faster than accuracy). Verdict: "
            "'plateau' when the accuracy change is within its 95% interval.", "",
            _md(["task", "kind", "chance", "acc small", "acc large", "Δ acc", "CE small", "CE large", "Δ CE",
                 "gap ratio", "verdict"], headline(sizes)), "",
        ]
        tasks = sorted(sizes[0].kinds, key=lambda t: (sizes[0].kinds[t], t))
        per_size = [[t] + [_fmt(r.get("scaling_acc", t)) + " / " + _fmt(r.get("scaling_exact_match", t), 2)
                           for r in sizes] for t in tasks]
        per_size.append(["held-out loss"] + [_fmt(r.get("scaling_heldout_loss")) for r in sizes])
        parts += ["Per size: log-likelihood acc / generation exact match.", "",
                  _md(["task"] + [f"{r.name} ({r.params / 1e6:.2f}M)" for r in sizes], per_size), ""]
    else:
        parts += ["(One model size recorded: the size sweep needs two or more models at their final weights.)", ""]
    for name, rs in sorted(ckpts.items(), key=lambda kv: kv[1][-1].params):
        tasks = sorted(rs[0].kinds, key=lambda t: (rs[0].kinds[t], t))
        parts += [f"Checkpoints of {name} (acc):", "",
                  _md(["task"] + [r.revision for r in rs], [[t] + [_fmt(r.get("scaling_acc", t)) for r in rs]
                                                            for t in tasks]), ""]
    for r in rows:
        if not r.swap:
            continue
        sw = r.swap
        tasks = sorted(sw["source_acc"])
        body = [[t, _fmt(r.get("scaling_acc", t)), f"{sw['source_acc'][t]:.3f}"]
                + [_fmt(r.get("attention_swap_acc", f"{t}@{lbl}")) for lbl in sw["layers"]] for t in tasks]
        parts += [f"Attention swap: {r.model} run with the patterns of {sw['source']} (heads: "
                  f"{sw['heads'] or 'all'}); accuracy per swapped layer.", "",
                  _md(["task", "A unswapped", "B itself"] + [f"swap {lbl}" for lbl in sw["layers"]], body), ""]
    from .plots import plot_all

    written = plot_all(sizes, ckpts, out_dir)
    if written:
        parts += ["Plots: " + ", ".join(f"`{p}`" for p in written), ""]
    return "\n".join(parts)
