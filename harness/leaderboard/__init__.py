"""Leaderboards from the store: aggregate over seeds, rank by declared direction, render.

The layers, each importing only those before it:

- :mod:`~harness.leaderboard.documents`: the published documents (:class:`LeaderboardDoc`).
- :mod:`~harness.leaderboard.statistics`: aggregation over seeds, ties, ranks, win rates,
  normalisation.
- :mod:`~harness.leaderboard.building`: run records -> one board per suite, and the
  suite's cross-cell summary.
- :mod:`~harness.leaderboard.markdown`: Markdown and the end-of-run summary (documents only).
- :mod:`~harness.leaderboard.writing`: reads the store once, builds the boards and the
  site (:mod:`harness.site`), writes ``<suite>.md``, ``<suite>.json`` and the schemas.

The names below are importable from ``harness.leaderboard``. Those of ``building`` and
``writing`` load on first use, so :mod:`harness.site`, which needs only the documents and
the formatters, imports neither them nor the store by importing this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from harness.leaderboard.documents import (
    LEADERBOARD_SCHEMA_VERSION,
    REFERENCE_LABEL,
    ColumnDoc,
    LeaderboardDoc,
    RowDoc,
    ValueDoc,
)
from harness.leaderboard.markdown import fmt_rank, fmt_value, md_text, render_markdown, render_summary, short_headers

if TYPE_CHECKING:
    from harness.leaderboard.building import build_board, summarize_suite
    from harness.leaderboard.writing import build_leaderboards, write_schemas

_LAZY = {
    "build_board": "harness.leaderboard.building",
    "summarize_suite": "harness.leaderboard.building",
    "build_leaderboards": "harness.leaderboard.writing",
    "write_schemas": "harness.leaderboard.writing",
}

__all__ = [
    "LEADERBOARD_SCHEMA_VERSION", "REFERENCE_LABEL", "ColumnDoc", "LeaderboardDoc", "RowDoc", "ValueDoc",
    "build_board", "build_leaderboards", "fmt_rank", "fmt_value", "md_text", "render_markdown", "render_summary",
    "short_headers", "summarize_suite", "write_schemas",
]


def __getattr__(name: str) -> Any:
    """Load the building and writing names on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'harness.leaderboard' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
