"""Paired test of one mitigator against another on the same questions (SeND vs continued training).

Every row of the ``hallucination`` suite answers the same questions (the whole pools, in a fixed order),
so two rows can be compared question by question: per question the difference of the two 0/1
outcomes ("the greedy answer is wrong", or for the frequent split "right"), averaged over the seeds
both rows have; the mean of those differences, its standard error over questions (the unit of
replication), a two-sided p-value (normal approximation of the paired t statistic, n >= 30
questions), McNemar's exact p-value on the discordant questions (one seed), and the relative
change ``mean_diff / rate of the reference``: the paper's "17% better" is a relative change.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Whether a higher outcome is better, per metric whose per-question outcomes the records keep.
HIGHER_IS_BETTER = {"hallucination_rate": False, "known_fact_accuracy": True}


@dataclass(frozen=True)
class PairedDifference:
    """A minus B over questions (outcomes in [0, 1], averaged over common seeds)."""

    n: int
    seeds: int
    mean_a: float
    mean_b: float
    mean_diff: float
    stderr: float
    p_value: float
    #: McNemar's exact two-sided p-value on the discordant questions (one seed only, else None)
    mcnemar_p: float | None
    #: discordant questions: A wrong-or-right where B is not (a=1, b=0) and the reverse (one seed only)
    discordant: tuple[int, int] | None


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: binomial(b + c, 1/2) tail at min(b, c), doubled, at most 1."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_difference(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> PairedDifference:
    """A minus B from per-seed outcome vectors (``a[s][i]``: seed s, question i; the same questions and
    seeds on both sides)."""
    if len(a) != len(b) or not a or any(len(x) != len(a[0]) or len(y) != len(a[0]) for x, y in zip(a, b)):
        raise ValueError("a paired difference needs the same seeds and the same questions on both sides.")
    s, n = len(a), len(a[0])
    if n < 2:
        raise ValueError(f"a paired difference needs at least 2 questions; got {n}.")
    qa = [sum(x[i] for x in a) / s for i in range(n)]
    qb = [sum(y[i] for y in b) / s for i in range(n)]
    d = [x - y for x, y in zip(qa, qb)]
    mean = sum(d) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1) / n)
    p = math.erfc(abs(mean) / se / math.sqrt(2)) if se > 0 else (1.0 if mean == 0 else 0.0)
    mc, disc = None, None
    if s == 1:
        disc = (sum(1 for x, y in zip(a[0], b[0]) if x > y), sum(1 for x, y in zip(a[0], b[0]) if x < y))
        mc = mcnemar_exact(*disc)
    return PairedDifference(n=n, seeds=s, mean_a=sum(qa) / n, mean_b=sum(qb) / n, mean_diff=mean, stderr=se,
                            p_value=p, mcnemar_p=mc, discordant=disc)


def _outcomes(rec: Any) -> dict[str, tuple[str, str, str]]:
    """split -> (column, question-set hash, outcome string) of one record (none for records without them)."""
    d = rec.output.details
    return {sp: (d.get("outcome_metrics", {}).get(sp, ""), d.get("question_sets", {}).get(sp, ""), o)
            for sp, o in d.get("outcomes", {}).items()}


def paired_table(records: list[Any], a: str = "send", b: str = "continued_training") -> str | None:
    """Markdown: per model and split, method ``a`` minus method ``b`` on the same questions (None when
    no model has both rows with per-question outcomes)."""
    rows: dict[tuple[str, str], dict[int, Any]] = defaultdict(dict)
    for r in records:
        if r.cell.method in (a, b):
            rows[r.cell.model, r.cell.method][r.cell.seed] = r
    lines: list[str] = []
    for model in sorted({m for m, _ in rows}):
        ra, rb = rows.get((model, a), {}), rows.get((model, b), {})
        seeds = sorted(set(ra) & set(rb))
        if not seeds:
            continue
        for split in _outcomes(ra[seeds[0]]):
            oa = [_outcomes(ra[s]).get(split) for s in seeds]
            ob = [_outcomes(rb[s]).get(split) for s in seeds]
            if any(o is None for o in oa + ob) or len({o[:2] for o in oa + ob}) != 1:
                continue  # not recorded on both sides, or not the same column and questions
            column = oa[0][0]
            higher = HIGHER_IS_BETTER.get(column.partition("[")[0])
            if higher is None:
                continue
            res = paired_difference([[int(c) for c in o[2]] for o in oa], [[int(c) for c in o[2]] for o in ob])
            rel = res.mean_diff / res.mean_b if res.mean_b else float("nan")
            better = (res.mean_diff > 0) == higher and res.mean_diff != 0
            mc = "-" if res.mcnemar_p is None else f"{res.mcnemar_p:.3g} ({res.discordant[0]} vs {res.discordant[1]})"
            lines.append(f"| {model} | `{column}` | {res.n} | {len(seeds)} | {res.mean_a:.3f} | "
                         f"{res.mean_b:.3f} | {res.mean_diff:+.3f} ± {res.stderr:.3f} | {rel:+.1%} | "
                         f"{res.p_value:.3g} | {mc} | {2.8 * res.stderr:.3f} | {'yes' if better else 'no'} |")
    if not lines:
        return None
    head = (f"**Paired test: `{a}` minus `{b}`** on the same questions (per question the difference of the 0/1 "
            "outcomes, averaged over the seeds both rows have; ± = standard error over questions; p: two-sided, "
            "normal approximation; McNemar: exact, on the discordant questions, one seed; relative: difference / "
            f"`{b}`'s value, the paper's measure; MDD = 2.8 x the standard error):")
    table = ["| model | metric | questions | seeds | " + a + " | " + b + " | difference | relative | p | McNemar p "
             "(discordant) | MDD | " + a + " better |", "|---" * 12 + "|"]
    return "\n".join([head, "", *table, *lines])
