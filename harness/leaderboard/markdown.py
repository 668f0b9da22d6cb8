"""Text renderings of a board: ``leaderboards/<suite>.md`` (tabulate, GitHub style), the
summary printed at the end of ``harness run``, and the value formatters the site shares.

Imports only :mod:`harness.leaderboard.documents`, so the site may use the formatters
without pulling in board building or file output.
"""

from __future__ import annotations

from collections import defaultdict

from harness.leaderboard.documents import LeaderboardDoc, RowDoc, ValueDoc


def fmt_number(x: float) -> str:
    """A number with 3 decimals (1 from 100 on), as values are shown."""
    return f"{x:.{3 if abs(x) < 100 else 1}f}"


def fmt_value(v: ValueDoc | None) -> str:
    """``mean ± stderr`` with 3 decimals (1 from 100 on); "-" for a missing value."""
    if v is None:
        return "-"
    digits = 3 if abs(v.mean) < 100 else 1
    if v.stderr is None:
        return f"{v.mean:.{digits}f}"
    return f"{v.mean:.{digits}f} ± {v.stderr:.{digits}f}"


def fmt_rank(r: RowDoc) -> str:
    """The rank, with "=" when it is shared; "-" for an unranked row."""
    return "-" if r.rank is None else f"{r.rank}{'=' if r.tied else ''}"


def short_headers(board: LeaderboardDoc) -> tuple[list[str], list[str]]:
    """Column headers (a key alone where no other column shares it) and legend lines."""
    arrows = {True: " ↑", False: " ↓", None: ""}
    keys = [c.key for c in board.columns if c.key]
    heads, legend = [], []
    by_metric: dict[str, list[str]] = defaultdict(list)
    for c in board.columns:
        if c.key and keys.count(c.key) == 1:
            heads.append(c.key + arrows[c.higher_is_better])
            by_metric[c.metric].append(c.key)
        else:
            heads.append(c.name + arrows[c.higher_is_better])
    for metric, ks in by_metric.items():
        legend.append(f"Columns {', '.join(ks)}: `{metric}` of that key.")
    return heads, legend


def md_text(text: str) -> str:
    """Plugin-supplied text made safe for a Markdown table cell: no row/column breakers, no raw HTML."""
    return " ".join(str(text).split()).replace("<", "&lt;").replace("|", "\\|")  # "<" opens no tag


def render_markdown(board: LeaderboardDoc) -> str:
    """The Markdown page of one board (``<suite>.md``), with the suite's summary appended."""
    from tabulate import tabulate

    heads, legend = short_headers(board)
    multi = board.primary_metric is not None and any(len(set(r.seeds)) > 1 for r in board.rows)
    headers = ["rank", "method", "model", "seeds", "win rate"] + (["seed sd"] if multi else []) \
        + [md_text(h) for h in heads]
    table = []
    for r in board.rows:
        status = f" (FAILED: {'; '.join(r.failures)})" if r.failures else ""
        win = "-" if r.win_rate is None else f"{r.win_rate:.2f}"
        sd = []
        if multi:
            v = r.values.get(board.primary_metric or "")
            sd = [fmt_number(v.seed_sd) if v is not None and v.seed_sd is not None else "-"]
        table.append([fmt_rank(r), md_text(r.label + status), md_text(r.model), len(set(r.seeds)), win, *sd]
                     + [fmt_value(r.values.get(c.name)) for c in board.columns])
    lines = [f"## {md_text(board.suite)}", ""]
    if board.description:
        lines += [md_text(board.description), ""]
    lines += [ranking_text(board), ""]
    lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    lines += ["", "Values: mean ± standard error (between seeds plus within-cell sampling error)."
              + (f" `seed sd`: the between-seed standard deviation of `{board.primary_metric}`." if multi else ""),
              *legend]
    lines += power_and_descriptive_lines(board)
    if board.summary:
        lines += ["", board.summary.rstrip()]
    return "\n".join(lines) + "\n"


def ranking_text(board: LeaderboardDoc) -> str:
    """What ranks the board, the tie test it ran (``tie_test``) and what the win rate counts."""
    win = ("Win rate: mean head-to-head wins over the scored metrics (descriptive columns excluded), ties by "
           "the same test counting half.")
    if not board.primary_metric:
        return f"Unranked: no declared metric of this suite is a score with values (descriptive columns are " \
               f"shown, never ranked). {win}"
    if board.rows and all(r.reference for r in board.rows):
        return (f"Unranked: every row is a reference (the suite describes its models, it does not rank them); "
                f"sorted by `{board.primary_metric}`.")
    scope = "within each model" if board.ranked_within == "model" else "across models"
    ties = board.tie_test or "`=`: |difference| <= 1.96 x combined standard error."
    return f"Ranked by `{board.primary_metric}` {scope}; {ties} {win}"


def power_and_descriptive_lines(board: LeaderboardDoc) -> list[str]:
    """Legend lines: the minimum detectable difference, descriptive columns and reference rows."""
    lines = []
    if board.mdd is not None:
        m = board.mdd
        lines.append(f"Minimum detectable difference of `{m.metric}`: {fmt_number(m.value)} "
                     f"(SE_diff {fmt_number(m.se_diff)}, {m.n_seeds} seed{'s' if m.n_seeds != 1 else ''}). "
                     f"{m.definition}")
    descriptive = sorted({c.metric for c in board.columns if c.descriptive})
    if descriptive:
        lines.append("Descriptive, shown but never ranked or counted in win rates: "
                     + ", ".join(f"`{md_text(d)}`" for d in descriptive) + ".")
    for label in sorted({r.label for r in board.rows if r.reference}):
        lines.append(f"`{md_text(label)}`: the unmodified model as a reference, not ranked and not in win rates.")
    for r in board.rows:
        lines += [f"Note on {md_text(r.label)} ({md_text(r.model)}), {md_text(note)}" for note in r.notes]
    return lines


def render_summary(board: LeaderboardDoc, top: int = 5) -> str:
    """A few lines per suite for the end of `harness run`."""
    if not board.primary_metric:
        return f"{board.suite}: {len(board.rows)} rows"
    lines = [f"{board.suite} (by {board.primary_metric}):"]
    for r in board.rows[:top]:
        lines.append(f"  {fmt_rank(r):>4}  {r.label:<28} {r.model:<22} {fmt_value(r.values.get(board.primary_metric))}"
                     + ("  FAILED" if r.failures else ""))
    if len(board.rows) > top:
        lines.append(f"  ... {len(board.rows) - top} more rows")
    return "\n".join(lines)
