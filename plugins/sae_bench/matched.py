"""Scores at a matched L0: a cell's sparsity-fidelity curve read off at a fixed L0 (SAEBench style).

Learners with the same nominal setting (k = 32) reach different sparsities (BatchTopK's k is a
batch mean, so its L0 on held-out text can be 19), and a fidelity score compared across
different L0s favours the denser learner. SAEBench compares SAEs at fixed L0 levels; here every
cell has its own curve (the row at its configured setting plus the ``sweep_values`` retrainings on
the same activations), and the score at ``matched_l0`` is interpolated on that curve, linearly
in log L0 between the two nearest points that bracket the level. A level outside the curve's
L0 range gets no value (never extrapolated).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def curve(own_l0: float, own: dict[str, float], sweep_points: Iterable[dict[str, float]]) -> list[dict[str, float]]:
    """The cell's points, sorted by L0: its own (``{"l0": .., score: ..}``) and the swept ones (same keys);
    a swept point at the own point's L0 is dropped (the same setting retrained)."""
    points = [{"l0": float(own_l0), **own}]
    for p in sweep_points:
        if abs(float(p["l0"]) - float(own_l0)) > 1e-9:
            points.append({"l0": float(p["l0"]), **{k: float(p[k]) for k in own}})
    return sorted(points, key=lambda p: p["l0"])


def at_l0(points: Sequence[dict[str, float]], score: str, level: float) -> float | None:
    """``score`` at L0 = ``level``: exact at a point with that L0, else linear in log L0 between the nearest
    bracketing points; None when ``level`` lies outside the points' L0 range or an L0 is not positive."""
    if level <= 0 or not points:
        return None
    pts = sorted(points, key=lambda p: p["l0"])
    for p in pts:
        if math.isclose(p["l0"], level, rel_tol=1e-9, abs_tol=1e-9):
            return float(p[score])
    for lo, hi in zip(pts, pts[1:]):
        if lo["l0"] < level < hi["l0"]:
            if lo["l0"] <= 0:
                return None
            t = (math.log(level) - math.log(lo["l0"])) / (math.log(hi["l0"]) - math.log(lo["l0"]))
            return float(lo[score] + t * (hi[score] - lo[score]))
    return None


def coverage_note(points: Sequence[dict[str, float]], level: float) -> str:
    """Why a cell has no matched value: its L0 range, and what to change."""
    lo, hi = min(p["l0"] for p in points), max(p["l0"] for p in points)
    return (f"no score at matched L0 {level:g}: this cell's curve spans L0 {lo:.1f}..{hi:.1f} "
            f"({len(points)} point(s)); widen the sweep so that it brackets it (sweep_values; penalty_factors for a "
            "learner swept by its sparsity penalty), or set matched_l0 inside that range")
