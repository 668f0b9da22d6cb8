"""Static leaderboard site: ``leaderboards/site/index.html`` plus one page per suite.

Self-contained (inline CSS and JS, no CDN): opened from disk it works offline. Every
value rendered into HTML is escaped, because method names, labels and descriptions come
from third-party plugins. Sorting moves existing table rows; it never builds HTML from data.

The site draws from the boards and from what its caller hands it (the artifacts of the
records behind them); it reads no store and writes no board. :func:`build_site` puts the
plots into ``site/plots/`` and returns the HTML pages and each suite's plots, which the
leaderboard writer (:mod:`harness.leaderboard.writing`) writes and records in the boards.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from pathlib import Path

from harness.leaderboard.documents import LeaderboardDoc, RowDoc
from harness.leaderboard.markdown import fmt_rank, fmt_value

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:14px;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3;cursor:pointer;user-select:none}th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.failed td{background:#fff0f0}
.muted{color:#666;font-size:13px}details{font-size:12px}pre{white-space:pre-wrap;margin:0}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}nav a{margin-right:1em}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, idx){
    th.addEventListener('click', function(){
      var asc = !th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc');});
      th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = a.cells[idx].getAttribute('data-sort'), y = b.cells[idx].getAttribute('data-sort');
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        if (isNaN(nx) !== isNaN(ny)) { c = isNaN(nx) ? 1 : -1; return c; }
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


@dataclass(frozen=True)
class RecordArtifacts:
    """One run record's artifact files, as the site shows them."""

    label: str
    model: str
    seed: int
    #: artifact name -> the file on disk (the site copies the PNGs among them)
    files: Mapping[str, Path]


@dataclass(frozen=True)
class Site:
    """What :func:`build_site` made: pages to write and the plots of each suite's page."""

    #: file name inside the site folder (``index.html``, ``<suite>.html``) -> HTML
    pages: dict[str, str]
    #: suite -> plot caption -> path relative to the site folder (``plots/<file>.png``)
    plots: dict[str, dict[str, str]]


def _page(title: str, body: str, nav: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width\"><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body>\n<nav>{nav}</nav>\n{body}\n<script>{JS}</script>\n</body></html>\n"
    )


def _td(text: str, sort: object, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<td{c} data-sort="{escape(str(sort), quote=True)}">{escape(text)}</td>'


def _row_html(r: RowDoc, board: LeaderboardDoc) -> str:
    cells = [
        _td(fmt_rank(r), r.rank if r.rank is not None else "", "num"),
        _td(r.label, r.label),
        _td(r.model, r.model),
        _td(f"{len(set(r.seeds))} ({', '.join(map(str, sorted(set(r.seeds))))})", len(set(r.seeds)), "num"),
        _td("-" if r.win_rate is None else f"{r.win_rate:.2f}", "" if r.win_rate is None else r.win_rate, "num"),
    ]
    for c in board.columns:
        v = r.values.get(c.name)
        text = fmt_value(v)
        if v is not None and v.normalised is not None:
            text += f" (norm {v.normalised:.2f})"
        cells.append(_td(text, "" if v is None else v.mean, "num"))
    prov = "\n".join(f"{k}: {v}" for k, v in r.provenance.items())
    if r.method_config:
        prov = f"method config: {r.method_config}\n" + prov
    if r.failures:
        prov = "FAILED: " + "; ".join(r.failures) + "\n" + prov
    cells.append(f"<td><details><summary>{escape(r.status)}</summary><pre>{escape(prov)}</pre></details></td>")
    cls = ' class="failed"' if r.failures else ""
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


def suite_table(board: LeaderboardDoc) -> str:
    arrows = {True: " ↑", False: " ↓", None: ""}
    heads = ["rank", "method", "model", "seeds", "win rate"] + [c.name + arrows[c.higher_is_better]
                                                                 for c in board.columns] + ["provenance"]
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    rows = "\n".join(_row_html(r, board) for r in board.rows)
    return f'<table class="sortable" id="board-{escape(board.suite, quote=True)}"><thead><tr>{head}</tr></thead>' \
           f"<tbody>\n{rows}\n</tbody></table>"


def _primary_plot(board: LeaderboardDoc, out: Path) -> str | None:
    """Bar chart of the primary metric with 95% intervals; returns the file name."""
    col = board.primary_metric
    rows = [r for r in board.rows if col and col in r.values]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.label}\n{r.model}" for r in rows]
    means = [r.values[col].mean for r in rows]
    errs = [1.96 * (r.values[col].stderr or 0.0) for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), 3.2))
    ax.bar(range(len(rows)), means, yerr=errs, capsize=3, color="#4c72b0")
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(col)
    ax.set_title(f"{board.suite}: {col} (95% intervals)", fontsize=9)
    fig.tight_layout()
    name = f"{board.suite}_{col.split('[')[0]}.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _copy_artifacts(board: LeaderboardDoc, artifacts: Mapping[str, RecordArtifacts], out: Path) -> dict[str, str]:
    """Copy the PNG artifacts that the suite's records produced into the site."""
    plots: dict[str, str] = {}
    keys = {k for r in board.rows for k in r.provenance.get("record_keys", [])}
    for key in sorted(keys):
        rec = artifacts.get(key)
        if rec is None:
            continue
        for name, src in sorted(rec.files.items()):
            if src.suffix.lower() != ".png" or not src.is_file():
                continue
            dest = out / f"{board.suite}_{key[:10]}_{src.name}"
            shutil.copyfile(src, dest)
            plots[f"{rec.label} / {rec.model} / seed {rec.seed}: {name}"] = f"plots/{dest.name}"
    return plots


def _copy_summary_plots(suite: str, summary_dir: Path, out: Path) -> dict[str, str]:
    """Copy the PNGs a suite's ``summarize`` wrote (``<leaderboard dir>/<suite>/``) into the site."""
    plots: dict[str, str] = {}
    for src in sorted(summary_dir.glob("*.png")) if summary_dir.is_dir() else []:
        dest = out / f"{suite}_summary_{src.name}"
        shutil.copyfile(src, dest)
        plots[f"across models: {src.stem.replace('_', ' ')}"] = f"plots/{dest.name}"
    return plots


def _remove_stale_plots(plots_dir: Path, plots: Mapping[str, Mapping[str, str]], pages: set[str]) -> None:
    """Delete plots of the rebuilt suites (the keys of ``plots``) that no page shows any more (e.g.
    artifacts of replaced records). A file belongs to the longest page name it starts with
    (``hallucination_detection_x`` is not ``hallucination``'s), so other suites' plots are kept."""
    shown = {Path(p).name for suite_plots in plots.values() for p in suite_plots.values()}
    for f in plots_dir.iterdir():
        owners = [n for n in pages if f.name.startswith(f"{n}_")]
        if owners and max(owners, key=len) in plots and f.name not in shown:
            f.unlink()


def build_site(boards: Mapping[str, LeaderboardDoc], site_dir: Path,
               artifacts: Mapping[str, RecordArtifacts] | None = None, summary_root: Path | None = None) -> Site:
    """Draw and copy the plots into ``site_dir/plots`` and render ``index.html`` and ``<suite>.html``.

    ``artifacts``: record key -> that record's artifact files, for the records behind the
    boards (their ``record_keys``); their PNGs are shown on the suite's page.
    ``summary_root``: the leaderboard folder whose ``<suite>/`` sub-folders hold the plots of
    each suite's :meth:`~harness.protocols.Suite.summarize` (shown on the suite's page).
    The pages are returned, not written: the caller writes them into ``site_dir``."""
    site_dir = Path(site_dir)
    plots_dir = site_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    suites = sorted(boards)
    nav = '<a href="index.html">all suites</a>' + "".join(
        f'<a href="{escape(s, quote=True)}.html">{escape(s)}</a>' for s in suites)
    index_parts = ["<h1>harness leaderboards</h1>",
                   '<p class="muted">Click a column header to sort. Values: mean ± standard error; '
                   "rank ties (=) where each board's tie test finds no difference (a paired t test over the "
                   "seeds two rows share, else |difference| within 1.96 combined standard errors).</p>"]
    pages: dict[str, str] = {}
    all_plots: dict[str, dict[str, str]] = {}
    for s in suites:
        board = boards[s]
        plots = {}
        primary = _primary_plot(board, plots_dir)
        if primary:
            plots[f"{board.primary_metric} by row"] = f"plots/{primary}"
        if summary_root is not None:
            plots.update(_copy_summary_plots(s, Path(summary_root) / s, plots_dir))
        plots.update(_copy_artifacts(board, artifacts or {}, plots_dir))
        all_plots[s] = plots
        imgs = "".join(f'<figure><img src="{escape(p, quote=True)}" alt="{escape(n, quote=True)}">'
                       f"<figcaption class=\"muted\">{escape(n)}</figcaption></figure>" for n, p in plots.items())
        ranked = "within each model" if board.ranked_within == "model" else "across models"
        body = (f"<h1>{escape(s)}</h1><p>{escape(board.description)}</p>"
                f'<p class="muted">Ranked by {escape(board.primary_metric or "-")} {ranked}. '
                f'{escape((board.tie_test or "").replace("`", ""))} '
                f"harness {escape(board.harness_version)}, generated {escape(board.generated_at)}.</p>"
                f"{suite_table(board)}{imgs}")
        if board.summary:  # the suite's cross-cell Markdown (Suite.summarize), shown as text
            body += f"<h2>Across models</h2><pre>{escape(board.summary)}</pre>"
        pages[f"{s}.html"] = _page(f"harness: {s}", body, nav)
        index_parts.append(f'<h2><a href="{escape(s, quote=True)}.html">{escape(s)}</a></h2>'
                           f"<p>{escape(board.description)}</p>{suite_table(board)}")
    _remove_stale_plots(plots_dir, all_plots, {p.stem for p in site_dir.glob("*.html")} | set(suites))
    if not suites:
        index_parts.append("<p>No results yet: run <code>harness run</code>.</p>")
    pages["index.html"] = _page("harness leaderboards", "\n".join(index_parts), nav)
    return Site(pages=pages, plots=all_plots)
