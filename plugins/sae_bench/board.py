"""Board text of the ``sae`` suite beyond the table: the matched-L0 rule and SCR / TPP's reseed spread."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

#: SAEBench's feature-independence metrics were found unreliable across reseeds of the same SAE recipe.
SCR_TPP_UNRELIABLE = "arXiv:2605.18229"


def matched_l0_note(records: list[Any]) -> str:
    """How the ranking column is read off each cell's curve, with the level(s) the records used."""
    levels = sorted({float(r.cell.suite_config.get("matched_l0", 32)) for r in records})
    shown = ", ".join(f"{v:g}" for v in levels)
    return (f"**Matched L0.** Rows are ranked by `sae_ce_loss_recovered_at_l0`: each cell's L0 vs CE-loss-recovered "
            f"curve (the learner at its configured setting plus its `sweep_values` retrainings, same activations) "
            f"read off at L0 = {shown} (linear in log L0; never extrapolated), as SAEBench compares SAEs at fixed L0. "
            "`sae_ce_loss_recovered` is each row at its own L0 (see the L0 column), which favours the denser learner.")


def scr_tpp_spread(records: list[Any]) -> str | None:
    """Between-seed standard deviation of every SCR / TPP column per row, with the unreliability note."""
    from tabulate import tabulate

    per: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        for m in rec.output.metrics:
            if m.metric in ("sae_scr", "sae_tpp") and m.value is not None:
                per[(rec.cell.model, rec.label)][f"{m.metric}[{m.key}]"].append(float(m.value))
    if not per:
        return None
    cols = sorted({c for v in per.values() for c in v}, key=lambda c: (c.split("[")[0], int(c.split("top")[1][:-1])))
    rows = []
    for (model, label), vals in sorted(per.items()):
        cells = []
        for c in cols:
            xs = vals.get(c, [])
            cells.append(f"{statistics.mean(xs):.3f} (sd {statistics.stdev(xs):.3f})" if len(xs) > 1
                         else (f"{xs[0]:.3f} (1 seed)" if xs else "-"))
        rows.append([model, label, max(len(v) for v in vals.values()), *cells])
    return "\n".join([
        "### SCR and TPP across seeds", "",
        f"SCR and TPP were found unreliable across reseeds of the same SAE recipe ({SCR_TPP_UNRELIABLE}): read "
        "them with their between-seed spread, shown here per row (mean and between-seed sd over the seeds; each "
        "seed retrains the SAE and redraws the probe sentences).", "",
        tabulate(rows, headers=["model", "learner", "seeds", *cols], tablefmt="github", disable_numparse=True), "",
    ])  # fmt: skip
