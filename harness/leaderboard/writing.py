"""Leaderboard files from the store: Markdown, JSON, JSON schemas and the static site.

Per suite: ``leaderboards/<suite>.md`` (tabulate) and ``leaderboards/<suite>.json``
(validated against :class:`~harness.leaderboard.documents.LeaderboardDoc`, whose JSON
schema is published next to it in ``leaderboards/schema/``), plus ``leaderboards/site/``.

The store is read once per build: the records are collected once and handed both to
board building and (as record key -> artifact files) to the site. The site is built
before the boards are written, because each board's JSON lists the plots of its page.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from harness.leaderboard.building import build_board, summarize_suite
from harness.leaderboard.documents import LeaderboardDoc
from harness.leaderboard.markdown import render_markdown
from harness.results import RunRecord
from harness.site import RecordArtifacts, build_site
from harness.store import Store, atomic_write_text

if TYPE_CHECKING:
    from harness.plugins import Registries


def _collect(store: Store, extra_records: list[RunRecord]) -> tuple[dict[str, list[RunRecord]],
                                                                   dict[str, RecordArtifacts]]:
    """One pass over the store: records by suite (the store's, then ``extra_records``) and the
    artifact files of the store's records by record key (extra records bring no files)."""
    by_suite: dict[str, list[RunRecord]] = defaultdict(list)
    artifacts: dict[str, RecordArtifacts] = {}
    for rec in store.records():
        by_suite[rec.cell.suite].append(rec)
        if rec.output is not None:
            artifacts[rec.key] = RecordArtifacts(
                label=rec.label, model=rec.cell.model, seed=rec.cell.seed,
                files={name: store.root / rel for name, rel in rec.output.artifacts.items()},
            )
    for rec in extra_records:
        by_suite[rec.cell.suite].append(rec)
    return by_suite, artifacts


def build_leaderboards(
    store: Store, out_dir: Path, registries: Registries | None, suites: list[str] | None = None,
    extra_records: list[RunRecord] | None = None,
) -> dict[str, LeaderboardDoc]:
    """Write ``<suite>.md``, ``<suite>.json``, the JSON schemas and the static site
    (``site/index.html``) for each suite with records (all suites of the store and
    ``extra_records`` unless ``suites`` narrows it)."""
    out_dir = Path(out_dir)
    by_suite, artifacts = _collect(store, extra_records or [])
    out: dict[str, LeaderboardDoc] = {}
    for suite in suites or sorted(by_suite):
        if not by_suite.get(suite):
            continue
        out[suite] = build_board(suite, by_suite[suite], registries)
        out[suite].summary = summarize_suite(suite, by_suite[suite], registries, out_dir / suite)
    site_dir = out_dir / "site"
    site = build_site(out, site_dir, artifacts, summary_root=out_dir)
    for suite, board in out.items():
        board.plots = site.plots[suite]
    for name, html in site.pages.items():
        atomic_write_text(site_dir / name, html)
    for suite, board in out.items():
        atomic_write_text(out_dir / f"{suite}.md", render_markdown(board))
        atomic_write_text(out_dir / f"{suite}.json", board.model_dump_json(indent=2) + "\n")
    write_schemas(out_dir / "schema")
    return out


def write_schemas(folder: Path) -> None:
    """Publish the JSON schemas of leaderboards and run records (generated from pydantic)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "leaderboard.schema.json", json.dumps(LeaderboardDoc.model_json_schema(), indent=2))
    atomic_write_text(folder / "record.schema.json", json.dumps(RunRecord.model_json_schema(), indent=2))
