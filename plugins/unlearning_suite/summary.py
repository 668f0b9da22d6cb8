"""The unlearning board's notes across rows: sequences too short to use, capability tasks at
ceiling, and each method's per-task lm-eval deltas with 95% intervals (:meth:`UnlearningSuite.summarize`).

Computed from the records behind the board, nothing hard-coded: a capability task is flagged
when its accuracy (``capability_acc[<task>]``) is at least :data:`CEILING` in every row of a
model, so its delta is 0 by construction and cannot show a capability change.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness.stats import Z_975, combined_stderr, mean_stderr

#: Accuracy at or above which a capability task counts as at ceiling.
CEILING = 0.99
#: The paper's capability claim: every zero-shot task within this many pp (arXiv 2605.01699).
PAPER_BOUND_PP = 2.8
#: Rows listed first in the delta table (the paper's method), when present.
FIRST = "pga"


@dataclass
class Row:
    """One board row (label, model): per (metric, key) the value and stderr over its seeds."""

    label: str
    model: str
    method: str | None
    per_seed: dict[tuple[str, str | None], list[tuple[float, float | None]]] = field(
        default_factory=lambda: defaultdict(list))

    def get(self, metric: str, key: str | None) -> tuple[float, float | None] | None:
        """Mean over seeds; stderr = between-seed stderr combined with the within-cell ones."""
        vals = self.per_seed.get((metric, key))
        if not vals:
            return None
        mean = sum(v for v, _ in vals) / len(vals)
        within = combined_stderr([se for _, se in vals])
        between = mean_stderr([v for v, _ in vals]) if len(vals) > 1 else 0.0
        return mean, None if within is None else math.sqrt(within**2 + (between or 0.0) ** 2)


def rows_from_records(records: list[Any]) -> list[Row]:
    rows: dict[tuple[str, str], Row] = {}
    for rec in records:
        row = rows.setdefault((rec.label, rec.cell.model), Row(rec.label, rec.cell.model, rec.cell.method))
        for mv in rec.output.metrics:
            row.per_seed[(mv.metric, mv.key)].append((mv.value, mv.stderr))
    return sorted(rows.values(), key=lambda r: (r.model, r.method is None, r.method != FIRST, r.label))


def capability_tasks(rows: list[Row]) -> list[str]:
    return sorted({k for r in rows for (m, k) in r.per_seed if m == "capability_acc" and k not in (None, "mean")})


def ceiling_tasks(rows: list[Row], tasks: list[str]) -> list[str]:
    """Tasks whose accuracy is >= :data:`CEILING` in every given row that scored them."""
    out = []
    for t in tasks:
        accs = [a[0] for r in rows if (a := r.get("capability_acc", t)) is not None]
        if accs and min(accs) >= CEILING:
            out.append(t)
    return out


def _interval(v: tuple[float, float | None]) -> str:
    d, se = v
    if se is None:
        return f"{d:+.1f} (no stderr)"
    return f"{d:+.1f} [{d - Z_975 * se:+.1f}, {d + Z_975 * se:+.1f}]"


def _verdicts(row: Row, tasks: list[str], ceiling: list[str]) -> str:
    """Which tasks' intervals exclude 0 (below: a loss) and which lie within the paper's bound."""
    lost, within = [], []
    for t in tasks:
        v = row.get("capability_delta", t)
        if v is None or v[1] is None or t in ceiling:
            continue
        lo, hi = v[0] - Z_975 * v[1], v[0] + Z_975 * v[1]
        if hi < 0:
            lost.append(t)
        if -PAPER_BOUND_PP <= lo and hi <= PAPER_BOUND_PP:
            within.append(t)
    return (f"{row.label}: loss (interval below 0) on {', '.join(lost) or 'no task'}; interval inside "
            f"±{PAPER_BOUND_PP} pp on {', '.join(within) or 'no task'}")


def data_notes(records: list[Any]) -> list[str]:
    """One line per model whose sequences had items too short for prefix + suffix (from the
    records' ``details.data``; every row of a model reads the same sequences)."""
    out: dict[str, str] = {}
    for rec in records:
        data = (rec.output.details or {}).get("data") or {}
        if data.get("n_too_short") and rec.cell.model not in out:
            out[rec.cell.model] = (f"**Sequences too short on {rec.cell.model}**: {data['n_too_short']} of "
                                   f"{data.get('n_items', '?')} items have fewer than prefix_len + suffix_len tokens "
                                   "and are not used.")
    return [out[m] for m in sorted(out)]


def summarize(records: list[Any]) -> str | None:
    """Markdown notes for the unlearning board: too-short sequences, capability tasks at ceiling,
    per-task deltas with intervals (None when there is nothing to say)."""
    rows = rows_from_records(records)
    tasks = capability_tasks(rows)
    notes = data_notes(records)
    if not tasks:
        return "\n\n".join(notes) + "\n" if notes else None
    lines = [*(n + "\n" for n in notes), "### Capability change (lm-eval)", ""]
    for model in sorted({r.model for r in rows}):
        group = [r for r in rows if r.model == model]
        ceiling = ceiling_tasks(group, tasks)
        if ceiling:
            lines.append(
                f"**At ceiling on {model}** (accuracy >= {CEILING} in every row, {len(group)} rows): "
                f"{', '.join(f'`{t}`' for t in ceiling)}. Its delta is 0 by construction and carries no information "
                "about capability loss; `capability_delta[mean]` still averages it in."
            )
        else:
            lines.append(f"No capability task is at ceiling (accuracy >= {CEILING} in every row) on {model}.")
        edited = [r for r in group if r.method is not None]
        if not edited:
            continue
        lines += ["", f"Per-task delta in pp on {model}, with 95% interval (± {Z_975:.2f} stderr; combined "
                  "independent-binomial stderr, conservative for these paired runs); paper: every task within "
                  f"{PAPER_BOUND_PP} pp.", ""]
        head = [f"{t} (ceiling)" if t in ceiling else t for t in tasks]
        lines += ["| method | " + " | ".join(head) + " |", "|---" * (len(tasks) + 1) + "|"]
        for r in edited:
            cells = [_interval(v) if (v := r.get("capability_delta", t)) is not None else "-" for t in tasks]
            lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
        lines += ["", *[f"- {_verdicts(r, tasks, ceiling)}" for r in edited]]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
