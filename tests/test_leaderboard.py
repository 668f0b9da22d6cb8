"""Leaderboard aggregation, rendering, the static site, and bundles."""

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from toy_plugins import ToyScore, ToySuite

from harness.bundle import load_bundle, write_bundle
from harness.config import RunSpec
from harness.errors import RegistryError
from harness.leaderboard import LeaderboardDoc, build_board, build_leaderboards
from harness.leaderboard.statistics import aggregate
from harness.provenance import now_iso
from harness.results import CellKey, MetricValue, Provenance, RunRecord, SuiteOutput
from harness.runner import execute, plan
from harness.store import Store


def _rec(label, value, stderr=None, seed=0, chance=None, method="m", status="ok"):
    cell = CellKey(suite="toy_suite", suite_version="1", suite_config={}, method=method, method_kind="unlearning_method",
                method_config={"label": label}, model="toy:a", model_fingerprint="f", seed=seed, dtype="auto")
    prov = Provenance(harness_version="0", git_hash="abc", packages={}, device="cpu", python="3", platform="p",
                      started_at=now_iso(), finished_at=now_iso(), wall_time_s=0.1)
    out = SuiteOutput(metrics=[MetricValue(metric="toy_score", value=value, stderr=stderr, chance=chance)])
    return RunRecord(key=cell.key(), cell=cell, label=label, status=status,
                     output=out if status == "ok" else None,
                     error=None if status == "ok" else {"type": "E", "message": "m", "traceback": ""},
                     provenance=prov)


def test_ties_within_interval_share_rank(toy_registries):
    board = build_board("toy_suite", [_rec("a", 1.0, 0.1), _rec("b", 1.1, 0.1), _rec("c", 3.0, 0.1)], toy_registries)
    ranks = {r.label: (r.rank, r.tied) for r in board.rows}
    assert ranks == {"a": (1, True), "b": (1, True), "c": (3, False)}  # lower is better for toy_score
    wins = {r.label: r.win_rate for r in board.rows}
    assert wins == {"a": 0.75, "b": 0.75, "c": 0.0}


def test_rows_tied_at_a_rank_are_listed_best_value_first(toy_registries):
    """Alphabetical order would put "a" (worse) above "z" (better) inside the tie."""
    board = build_board("toy_suite", [_rec("a", 1.1, 0.1), _rec("z", 1.0, 0.1), _rec("m", 3.0, 0.1)], toy_registries)
    assert [(r.label, r.rank) for r in board.rows] == [("z", 1), ("a", 1), ("m", 3)]  # lower is better


def test_normalised_and_reference_delta(toy_registries):
    base = _rec("base model", 2.0, method=None)
    board = build_board("toy_suite", [base, _rec("a", 1.0, chance=0.5)], toy_registries)
    row = next(r for r in board.rows if r.label == "a")
    assert row.values["toy_score"].delta_vs_reference == pytest.approx(-1.0)
    assert row.values["toy_score"].normalised is None  # lower-is-better metric: no chance normalisation


def test_failed_rows_are_marked_not_dropped(toy_registries):
    board = build_board("toy_suite", [_rec("a", 1.0), _rec("b", 0, status="failed")], toy_registries)
    row = next(r for r in board.rows if r.label == "b")
    assert row.status == "failed" and row.rank is None and row.failures


@pytest.fixture
def finished_store(toy_registries, tmp_path):
    spec = RunSpec(output_dir=tmp_path / "out", leaderboard_dir=tmp_path / "lb", device="cpu", seeds=[0, 1])
    store = Store(spec.output_dir)
    execute(plan(spec, toy_registries), store, toy_registries, device="cpu", progress=False)
    return store, spec


def test_json_validates_against_published_schema(finished_store, toy_registries):
    store, spec = finished_store
    build_leaderboards(store, spec.leaderboard_dir, toy_registries)
    schema = json.loads((spec.leaderboard_dir / "schema" / "leaderboard.schema.json").read_text())
    doc = json.loads((spec.leaderboard_dir / "toy_suite.json").read_text())
    jsonschema.validate(doc, schema)
    LeaderboardDoc.model_validate(doc)
    assert doc["plots"] and (spec.leaderboard_dir / "site" / doc["plots"][next(iter(doc["plots"]))]).exists()


def test_site_drops_stale_plots_of_rebuilt_suites_only(finished_store, toy_registries):
    store, spec = finished_store
    plots = spec.leaderboard_dir / "site" / "plots"
    plots.mkdir(parents=True)
    (plots / "toy_suite_0123456789_old_artifact.png").write_bytes(b"x")  # a replaced record's artifact
    (plots / "toy_suite_extra_keep.png").write_bytes(b"x")  # belongs to another suite's page
    (spec.leaderboard_dir / "site" / "toy_suite_extra.html").write_text("<html></html>")
    build_leaderboards(store, spec.leaderboard_dir, toy_registries)
    assert not (plots / "toy_suite_0123456789_old_artifact.png").exists()
    assert (plots / "toy_suite_extra_keep.png").exists()
    doc = json.loads((spec.leaderboard_dir / "toy_suite.json").read_text())
    assert all((spec.leaderboard_dir / "site" / p).exists() for p in doc["plots"].values())


def test_build_reads_each_record_file_once_and_shows_its_png_artifacts(toy_registries, tmp_path, monkeypatch):
    store = Store(tmp_path / "out")
    recs = [_rec("a", 1.0, 0.1, seed=0), _rec("a", 1.2, 0.1, seed=1), _rec("b", 2.0)]
    rel = f"artifacts/{recs[0].key}/map.png"
    png = b"\x89PNG\r\n\x1a\n not really an image"
    (store.root / rel).parent.mkdir(parents=True)
    (store.root / rel).write_bytes(png)
    recs[0].output.artifacts.update(map=rel, table=f"artifacts/{recs[0].key}/table.csv")  # a csv is not shown
    for rec in recs:
        store.put(rec)
    reads: Counter[str] = Counter()
    read = Store._read
    monkeypatch.setattr(Store, "_read", staticmethod(lambda path: (reads.update([Path(path).name]), read(path))[1]))
    board = build_leaderboards(store, tmp_path / "lb", toy_registries)["toy_suite"]
    assert reads == {f"{rec.key}.json": 1 for rec in recs}  # one store pass feeds the boards and the site
    dest = f"plots/toy_suite_{recs[0].key[:10]}_map.png"
    assert {k: v for k, v in board.plots.items() if "seed" in k} == {"a / toy:a / seed 0: map": dest}
    assert (tmp_path / "lb" / "site" / dest).read_bytes() == png
    assert json.loads((tmp_path / "lb" / "toy_suite.json").read_text())["plots"] == board.plots
    assert dest in (tmp_path / "lb" / "site" / "toy_suite.html").read_text()


def test_site_escapes_plugin_text(toy_registries, tmp_path, monkeypatch):
    monkeypatch.setattr(ToySuite, "description", "<script>window.pwned=1</script>")
    store = Store(tmp_path / "out")
    rec = _rec('<img src=x onerror="alert(1)">', 1.0)
    store.put(rec)
    build_leaderboards(store, tmp_path / "lb", toy_registries)
    html = (tmp_path / "lb" / "site" / "toy_suite.html").read_text()
    assert "<script>window.pwned" not in html and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    index = (tmp_path / "lb" / "site" / "index.html").read_text()
    assert "<script>window.pwned" not in index and "https://" not in index and "http://" not in index


def test_publish_and_load_bundle(finished_store, toy_registries, tmp_path):
    store, _ = finished_store
    bundle = write_bundle(store, tmp_path / "bundle", toy_registries)
    assert (bundle / "leaderboards" / "site" / "index.html").exists()
    assert (bundle / "schema" / "record.schema.json").exists()
    loaded = load_bundle(bundle)
    assert len(loaded.records) == 4 and loaded.refused == []


def _rewrite(bundle, rel, mutate, update_manifest):
    path = bundle / rel
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    if update_manifest:
        import hashlib

        m = json.loads((bundle / "manifest.json").read_text())
        m["records"][rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        (bundle / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize(
    "mutate,update_manifest,reason",
    [
        (lambda d: d["output"]["metrics"][0].update(value=0.0), False, "does not match manifest.json"),
        (lambda d: d["cell"].update(seed=7), True, "key does not match"),
        (lambda d: d.pop("provenance"), True, "fails the record schema"),
        (lambda d: d["output"]["metrics"][0].update(value="high"), True, "fails the record schema at output"),
    ],
)
def test_tampered_bundle_records_refused(finished_store, toy_registries, tmp_path, mutate, update_manifest, reason):
    store, _ = finished_store
    bundle = write_bundle(store, tmp_path / "bundle", toy_registries)
    rel = sorted(json.loads((bundle / "manifest.json").read_text())["records"])[0]
    _rewrite(bundle, rel, mutate, update_manifest)
    loaded = load_bundle(bundle)
    assert len(loaded.records) == 3 and len(loaded.refused) == 1
    assert reason in loaded.refused[0] and rel in loaded.refused[0]


def test_merge_bundle_with_own_store(finished_store, toy_registries, tmp_path):
    store, spec = finished_store
    bundle = write_bundle(store, tmp_path / "bundle", toy_registries)
    other = Store(tmp_path / "other")
    other.put(_rec("someone-else", 0.1))
    boards = build_leaderboards(other, tmp_path / "lb2", toy_registries, extra_records=load_bundle(bundle).records)
    labels = {r.label for r in boards["toy_suite"].rows}
    assert labels == {"someone-else", "base model", "toy_eraser"}


def test_publish_refuses_existing_bundle(finished_store, toy_registries, tmp_path):
    store, _ = finished_store
    write_bundle(store, tmp_path / "b", toy_registries)
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="already holds a bundle"):
        write_bundle(store, tmp_path / "b", toy_registries)
    shutil.rmtree(tmp_path / "b")


def test_seed_error_keeps_within_cell_error(toy_registries):
    # deterministic across seeds: the within-cell error must survive aggregation
    recs = [_rec("a", 1.0, 0.1, seed=s) for s in range(4)]
    v = build_board("toy_suite", recs, toy_registries).rows[0].values["toy_score"]
    assert v.n_seeds == 4 and v.stderr == pytest.approx(0.1 / 2)
    # without within-cell errors: the plain standard error of the mean over seeds
    recs = [_rec("a", x, None, seed=s) for s, x in enumerate([1.0, 2.0, 3.0])]
    assert build_board("toy_suite", recs, toy_registries).rows[0].values["toy_score"].stderr == pytest.approx(
        (1.0 / 3) ** 0.5)


def test_median_metric_aggregates_by_the_median(toy_registries, monkeypatch):
    monkeypatch.setattr(ToyScore, "aggregation", "median")
    recs = [_rec("a", x, None, seed=s) for s, x in enumerate([1.0, 2.0, 10.0])]  # mean 13/3, median 2
    v = build_board("toy_suite", recs, toy_registries).rows[0].values["toy_score"]
    # between-seed variance: (100 + 49 + 289) / 9 / 2 = 73/3; mean's se sqrt(73/9); median's x sqrt(pi/2)
    se = (73 / 9) ** 0.5 * (math.pi / 2) ** 0.5
    assert v.mean == 2.0 and v.n_seeds == 3 and v.stderr == pytest.approx(se)
    assert (v.ci_low, v.ci_high) == (pytest.approx(2.0 - 1.96 * se), pytest.approx(2.0 + 1.96 * se))
    # within-cell errors enter the combined variance as for the mean; even count: middle pair's mean
    v = aggregate([(1.0, 0.3), (2.0, 0.3), (4.0, 0.3), (100.0, 0.3)], "median")
    var = sum((x - 26.75) ** 2 for x in (1.0, 2.0, 4.0, 100.0)) / 3 + 0.09
    assert v.mean == 3.0 and v.stderr == pytest.approx((var / 4 * math.pi / 2) ** 0.5)
    # one seed: the cell's own value and error, whichever the aggregation
    one = aggregate([(5.0, 0.2)], "median")
    assert (one.mean, one.stderr) == (5.0, 0.2) and one == aggregate([(5.0, 0.2)])


def test_median_decides_the_rank(toy_registries, monkeypatch):
    # a: 22 seeds at 0 and 18 at 10 (mean 4.5, median 0); b: 2.25 on every seed; lower is better.
    # a's se: 0.80 for the mean, 1.00 for the median; both differences (2.25) exceed 1.96 se: no tie
    recs = [_rec("a", 0.0 if s < 22 else 10.0, seed=s) for s in range(40)]
    recs += [_rec("b", 2.25, seed=s) for s in range(40)]
    by_mean = build_board("toy_suite", recs, toy_registries)
    assert [(r.label, r.rank, r.tied) for r in by_mean.rows] == [("b", 1, False), ("a", 2, False)]
    monkeypatch.setattr(ToyScore, "aggregation", "median")
    by_median = build_board("toy_suite", recs, toy_registries)
    assert [(r.label, r.rank, r.tied) for r in by_median.rows] == [("a", 1, False), ("b", 2, False)]
    assert by_median.rows[0].values["toy_score"].mean == 0.0


def test_unknown_aggregation_is_refused_with_the_metric_named(toy_registries, monkeypatch):
    monkeypatch.setattr(ToyScore, "aggregation", "geomean")
    with pytest.raises(RegistryError, match="'toy_score' declares aggregation 'geomean'.*'mean' or 'median'"):
        build_board("toy_suite", [_rec("a", 1.0)], toy_registries)
    with pytest.raises(ValueError, match="'geomean' is not one of"):
        aggregate([(1.0, None)], "geomean")  # type: ignore[arg-type]


def test_markdown_table_breakers_are_escaped(toy_registries, tmp_path, monkeypatch):
    monkeypatch.setattr(ToySuite, "description", "<script>x</script>\n| a | b |")
    store = Store(tmp_path / "out")
    store.put(_rec("evil | label\n|---|", 1.0))
    store.put(_rec("good", 2.0))
    build_leaderboards(store, tmp_path / "lb", toy_registries)
    md = (tmp_path / "lb" / "toy_suite.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 4  # header, rule, two rows: nothing broke out of its row
    import re

    cols = [len(re.split(r"(?<!\\)\|", line)) for line in table]
    assert len(set(cols)) == 1, cols
    assert "<script>" not in md and "&lt;script>" in md and "evil \\| label" in md
