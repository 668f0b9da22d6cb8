import json

import pytest

from harness.provenance import now_iso
from harness.results import CellKey, MetricValue, Provenance, RunRecord, SuiteOutput
from harness.store import Store, atomic_write_text


def _record(status="ok", value=1.0, seed=0) -> RunRecord:
    cell = CellKey(suite="s", suite_version="1", suite_config={}, method=None, method_kind=None, method_config=None,
                model="toy:a", model_fingerprint="f", seed=seed, dtype="auto")
    prov = Provenance(harness_version="0", git_hash=None, packages={}, device="cpu", python="3", platform="p",
                      started_at=now_iso(), finished_at=now_iso(), wall_time_s=0.0)
    out = SuiteOutput(metrics=[MetricValue(metric="m", value=value)]) if status == "ok" else None
    err = None if status == "ok" else {"type": "E", "message": "x", "traceback": ""}
    return RunRecord(key=cell.key(), cell=cell, label="base", status=status, output=out, error=err, provenance=prov)


def test_put_get_roundtrip(tmp_path):
    store = Store(tmp_path)
    rec = _record()
    assert store.put(rec)
    assert store.get("s", rec.key) == rec and store.is_done("s", rec.key)
    assert [r.key for r in store.records()] == [rec.key]


def test_ok_record_never_overwritten(tmp_path):
    store = Store(tmp_path)
    store.put(_record(value=1.0))
    assert not store.put(_record(value=2.0))
    assert store.get("s", _record().key).output.metrics[0].value == 1.0


def test_failed_record_replaced_by_success(tmp_path):
    store = Store(tmp_path)
    store.put(_record(status="failed"))
    assert not store.is_done("s", _record().key)
    assert store.put(_record(value=3.0))
    assert store.get("s", _record().key).status == "ok"


def test_concurrent_retries_of_a_failed_cell_keep_the_success(tmp_path, monkeypatch):
    """Two sweeps retry one failed cell: the slow failing retry read 'failed' first, the
    success lands while it waits; the lock makes the failure wait, so 'ok' survives."""
    import threading
    import time

    store = Store(tmp_path)
    store.put(_record(status="failed"))
    real_get = Store.get
    slow = threading.Event()

    def get(self, suite, key):
        rec = real_get(self, suite, key)
        if threading.current_thread().name == "failing-retry":
            slow.set()
            time.sleep(0.3)  # the window in which the other sweep publishes its success
        return rec

    monkeypatch.setattr(Store, "get", get)
    failing = threading.Thread(target=lambda: Store(tmp_path).put(_record(status="failed")), name="failing-retry")
    failing.start()
    slow.wait(5)
    assert Store(tmp_path).put(_record(value=4.0))
    failing.join(5)
    final = real_get(store, "s", _record().key)
    assert final.status == "ok" and final.output.metrics[0].value == 4.0


def test_replace_keeps_superseded(tmp_path):
    store = Store(tmp_path)
    store.put(_record(value=1.0))
    store.replace(_record(value=2.0))
    assert store.get("s", _record().key).output.metrics[0].value == 2.0
    old = list((tmp_path / "records" / "s" / ".superseded").glob("*.json"))
    assert len(old) == 1 and json.loads(old[0].read_text())["output"]["metrics"][0]["value"] == 1.0


def test_unreadable_and_tampered_records_reported_not_deleted(tmp_path):
    store = Store(tmp_path)
    good = _record(seed=0)
    store.put(good)
    bad = tmp_path / "records" / "s" / ("0" * 64 + ".json")
    bad.write_text("{not json")
    tampered = _record(seed=1)
    data = json.loads(tampered.model_dump_json())
    data["cell"]["seed"] = 5  # content no longer matches the key
    (tmp_path / "records" / "s" / f"{tampered.key}.json").write_text(json.dumps(data))
    with pytest.warns(UserWarning) as w:
        keys = [r.key for r in store.records()]
    assert keys == [good.key]
    assert len(w) == 2 and bad.exists()


def test_atomic_write_no_clobber(tmp_path):
    p = tmp_path / "a" / "f.txt"
    assert atomic_write_text(p, "one", overwrite=False)
    assert not atomic_write_text(p, "two", overwrite=False)
    assert p.read_text() == "one" and list(p.parent.iterdir()) == [p]


def _count_reads(monkeypatch) -> dict:
    reads: dict = {}
    real = Store._read

    def counting(path):
        reads[path.name] = reads.get(path.name, 0) + 1
        return real(path)

    monkeypatch.setattr(Store, "_read", staticmethod(counting))
    return reads


def test_a_record_is_parsed_once_per_version_of_its_file(tmp_path, monkeypatch):
    reads = _count_reads(monkeypatch)
    store = Store(tmp_path)
    key = _record().key
    assert store.get("s", key) is None and store.status("s", key) is None and reads == {}  # a stat is no read
    store.put(_record(status="failed"))
    assert store.status("s", key) == "failed" and not store.is_done("s", key)
    assert [r.key for r in store.records()] == [key] and reads == {f"{key}.json": 1}
    assert store.put(_record(value=3.0))  # replaces the failed record: a new file, read afresh
    assert store.status("s", key) == "ok" and store.get("s", key).output.metrics[0].value == 3.0
    assert reads == {f"{key}.json": 2}
    assert not Store(tmp_path).put(_record(value=4.0))  # another Store instance reads for itself
    assert reads == {f"{key}.json": 3} and store.is_done("s", key) and reads == {f"{key}.json": 3}
    path = store.record_path("s", key)
    path.write_text(path.read_text().replace('"label": "base"', '"label": "renamed"'))  # edited in place
    assert store.get("s", key).label == "renamed" and reads == {f"{key}.json": 4}
    path.unlink()
    assert store.get("s", key) is None and list(store.records()) == []


def test_a_second_harness_run_reads_each_record_once(tmp_path, monkeypatch):
    from pathlib import Path

    from harness import plugins
    from harness.cli import main

    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "executors")  # the toy plugins from --plugins-dir, the executors
    plugins.reset()
    toy = str(Path(__file__).parent / "toy")
    argv = ["--plugins-dir", toy, "run", "--suite", "toy_suite", "--model", "toy:a", "--model", "toy:b",
            "--seed", "0", "--seed", "1", "--device", "cpu", "--output-dir", str(tmp_path / "o"),
            "--leaderboard-dir", str(tmp_path / "lb"), "--no-progress"]
    reads = _count_reads(monkeypatch)
    try:
        assert main(argv) == 0
        files = sorted(p.name for p in (tmp_path / "o" / "records" / "toy_suite").glob("*.json"))
        assert len(files) == 8 and sorted(reads) == files and set(reads.values()) == {1}  # the leaderboards' read
        reads.clear()
        first_board = (tmp_path / "lb" / "toy_suite.md").read_text()
        assert main(argv) == 0  # todo split, executor, store re-checks, leaderboards, site: one read each
        assert sorted(reads) == files and set(reads.values()) == {1}
        assert (tmp_path / "lb" / "toy_suite.md").read_text() == first_board
    finally:
        plugins.reset()
