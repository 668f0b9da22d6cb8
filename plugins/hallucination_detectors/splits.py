"""AUROC within each question split, the familiarity-only reference score, and undefined AUROCs.

A detector can score well pooled over splits only because wrong answers concentrate in the
unfamiliar splits (held-out facts are almost always answered wrong): the split label alone then
separates right from wrong answers. Within one split that advantage is gone, so the AUROC within
each split (and their mean) shows what a detector sees beyond familiarity. The familiarity-only
reference scores every question by its split's hallucination rate in the cell, the best any score
that knows nothing but the split can do: pooled high, within each split exactly 0.5 (a constant).

An AUROC needs both right and wrong answers; :func:`undefined_reason` says why one is not defined
(the value is left out of the record and the reason goes into its notes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.stats import auroc, auroc_stderr

#: Name of the familiarity-only reference score in the per-detector summary.
FAMILIARITY = "familiarity (reference)"


def undefined_reason(labels: Sequence[int]) -> str | None:
    """Why the AUROC of ``labels`` is undefined (one label class), or None when it is defined."""
    n, wrong = len(labels), int(sum(labels))
    if n == 0:
        return "no questions"
    if wrong == n:
        return f"every one of the {n} greedy answers is wrong (one label class: nothing to tell apart)"
    if wrong == 0:
        return f"every one of the {n} greedy answers is right (one label class: nothing to tell apart)"
    return None


def auroc_value(scores: Sequence[float], labels: Sequence[int]) -> tuple[float, float | None]:
    """AUROC and bootstrap stderr (None where too few resamples hold both classes); labels of two classes."""
    se = auroc_stderr(scores, labels)
    return auroc(scores, labels), (None if math.isnan(se) else se)


def split_order(tags: Sequence[str]) -> list[str]:
    """The distinct tags in order of first appearance."""
    return list(dict.fromkeys(tags))


def within_split(
    scores: Sequence[float], labels: Sequence[int], tags: Sequence[str]
) -> tuple[dict[str, tuple[float, float | None, int]], dict[str, str]]:
    """Per split (tag): ``(auroc, stderr, n)`` where both classes occur, else its :func:`undefined_reason`;
    plus ``"mean"``: the mean over the defined splits (stderr: combined, splits independent)."""
    if len(tags) != len(labels) or len(scores) != len(labels):
        raise ValueError(f"within-split AUROC needs one score, label and tag per question; got {len(scores)} scores, "
                         f"{len(labels)} labels and {len(tags)} tags (the suite must pass GenerationsInputs.tags).")
    values: dict[str, tuple[float, float | None, int]] = {}
    undefined: dict[str, str] = {}
    for tag in split_order(tags):
        idx = [i for i, t in enumerate(tags) if t == tag]
        y = [labels[i] for i in idx]
        why = undefined_reason(y)
        if why:
            undefined[tag] = why
            continue
        a, se = auroc_value([scores[i] for i in idx], y)
        values[tag] = (a, se, len(idx))
    if values:
        ses = [se for _, se, _ in values.values()]
        se_mean = None if any(se is None for se in ses) else math.sqrt(sum(se * se for se in ses)) / len(ses)
        mean = sum(a for a, _, _ in values.values()) / len(values)
        values["mean"] = (mean, se_mean, sum(n for _, _, n in values.values()))
    return values, undefined


def familiarity_scores(labels: Sequence[int], tags: Sequence[str]) -> list[float]:
    """The familiarity-only reference: each question scored by its split's hallucination rate."""
    rate = {t: sum(y for y, u in zip(labels, tags) if u == t) / tags.count(t) for t in set(tags)}
    return [rate[t] for t in tags]


def auroc_notes(labels: Sequence[int], tags: Sequence[str]) -> list[str]:
    """The record notes for the AUROCs that :func:`undefined_reason` leaves out (pooled, or per split)."""
    why = undefined_reason(labels)
    if why:
        within = ", hallucination_auroc_within" if tags else ""
        return [f"hallucination_auroc{within} and familiarity_auroc undefined: {why}; the other metrics are kept."]
    if not tags:
        return []
    _, undefined = within_split([0.0] * len(labels), labels, tags)
    return [f"hallucination_auroc_within[*:{tag}] undefined: in split {tag!r} {reason}; the mean is over the other "
            "splits." for tag, reason in undefined.items()]
