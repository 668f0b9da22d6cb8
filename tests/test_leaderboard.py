"""Leaderboard aggregation, rendering, the static site, and bundles."""

import json
import shutil

import jsonschema
import pytest
from toy_plugins import ToySuite

from harness.bundle import load_bundle, write_bundle
from harness.config import RunSpec
from harness.leaderboard import LeaderboardDoc, build_board, build_leaderboards
from harness.provenance import now_iso
from harness.results import Cell, MetricValue, Provenance, RunRecord, SuiteOutput
from harness.runner import execute, plan
from harness.store import Store


def _rec(label, value, stderr=None, seed=0, chance=None, method="m", status="ok"):
    cell = Cell(suite="toy_suite", suite_version="1", suite_config={}, method=method, method_kind="unlearning_method",
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
