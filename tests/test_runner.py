"""Planning, resume, fault isolation and leaderboards, on torch-free toy plugins."""

import json

import pytest

from harness.config import RunSpec
from harness.errors import SpecError, UnknownNameError
from harness.leaderboard import build_leaderboards
from harness.runner import execute, plan
from harness.store import Store


def _spec(tmp_path, **kw):
    return RunSpec(output_dir=tmp_path / "out", leaderboard_dir=tmp_path / "lb", device="cpu", **kw)


def test_default_plan_uses_every_suite_method_and_default_model(toy_registries, tmp_path):
    cells = plan(_spec(tmp_path), toy_registries)
    assert [(c.label, c.cell.model) for c in cells] == [("base model", "toy:a"), ("toy_eraser", "toy:a")]
    assert len({c.key for c in cells}) == 2


def test_star_expands_to_every_listed_model(toy_registries, tmp_path):
    cells = plan(_spec(tmp_path, models=["toy:*"], methods=[]), toy_registries)
    assert [c.cell.model for c in cells] == ["toy:a", "toy:b"]


def test_plan_grid(toy_registries, tmp_path):
    spec = _spec(tmp_path, models=["toy:a", "toy:b"], seeds=[0, 1],
                 methods=[{"name": "toy_eraser", "config": {"strength": 0.1}, "label": "weak"},
                          {"name": "toy_eraser", "config": {"strength": 0.9}, "label": "strong"}])
    cells = plan(spec, toy_registries)
    assert len(cells) == 2 * 2 * 3 and len({c.key for c in cells}) == 12


def test_a_suite_listed_twice_gives_one_row_per_entry(toy_registries, tmp_path):
    spec = _spec(tmp_path, methods=[], suites=[{"name": "toy_suite", "label": "a"}, {"name": "toy_suite", "label": "b"}])
    assert [c.label for c in plan(spec, toy_registries)] == ["base model @ a", "base model @ b"]


@pytest.mark.parametrize(
    "kw,err,needle",
    [
        ({"suites": ["toy_suit"]}, UnknownNameError, 'Did you mean "toy_suite"'),
        ({"methods": ["toy_eraserr"]}, UnknownNameError, 'Did you mean "toy_eraser"'),
        ({"methods": [{"name": "toy_eraser", "config": {"strenght": 1}}]}, SpecError, 'Did you mean "strength"'),
        ({"methods": [{"name": "toy_eraser", "config": {"strength": "lots"}}]}, SpecError, "strength"),
        ({"methods": [{"name": "toy_eraser", "config": {"strength": 3}}]}, SpecError, "less than or equal to 1"),
        ({"suites": [{"name": "toy_suite", "config": {"fail": 1}}]}, SpecError, 'suite "toy_suite"'),
        ({"models": ["nosuch:a"]}, UnknownNameError, "Unknown model source"),
        ({"methods": [{"name": "toy_eraser", "config": {"strength": 0.1}}, {"name": "toy_eraser"}]}, SpecError,
         'two entries are labelled "toy_eraser" (methods[0] and methods[1])'),
        ({"suites": ["toy_suite", {"name": "toy_suite", "config": {}}]}, SpecError, "label: toy_suite-1"),
    ],
)
def test_bad_input_named_before_any_compute(toy_registries, tmp_path, kw, err, needle):
    with pytest.raises(err) as e:
        plan(_spec(tmp_path, **kw), toy_registries)
    assert needle in str(e.value)
    assert not (tmp_path / "out").exists()


def test_execute_resume_and_leaderboard(toy_registries, tmp_path):
    spec = _spec(tmp_path, seeds=[0, 1])
    store = Store(spec.output_dir)
    cells = plan(spec, toy_registries)
    s1 = execute(cells, store, toy_registries, device="cpu", progress=False)
    assert (s1.done, s1.skipped, s1.failed) == (4, 0, 0)
    s2 = execute(cells, store, toy_registries, device="cpu", progress=False)
    assert (s2.done, s2.skipped) == (0, 4)
    rec = store.get("toy_suite", cells[0].key)
    assert rec.provenance.harness_version and rec.provenance.packages["pydantic"]
    boards = build_leaderboards(store, spec.leaderboard_dir, toy_registries)
    md = (spec.leaderboard_dir / "toy_suite.md").read_text()
    assert "toy_score ↓" in md and "toy_eraser" in md and boards["toy_suite"].rows[0].label == "toy_eraser"
    data = json.loads((spec.leaderboard_dir / "toy_suite.json").read_text())
    rows = {r["label"]: r for r in data["rows"]}
    # lower is better: the eraser (0.5 * 1) beats the base model (1.0); mean over seeds 0 and 1 (+0.005)
    assert rows["toy_eraser"]["rank"] == 1 and rows["base model"]["rank"] == 2
    assert rows["toy_eraser"]["win_rate"] == 1.0 and rows["base model"]["win_rate"] == 0.0
    assert rows["toy_eraser"]["values"]["toy_score"]["delta_vs_reference"] == pytest.approx(-0.5)
    assert rows["toy_eraser"]["values"]["toy_score"]["mean"] == pytest.approx(0.505)
    assert rows["toy_eraser"]["values"]["toy_score"]["stderr"] == pytest.approx(0.005)


def test_failing_cell_recorded_and_run_continues(toy_registries, tmp_path):
    spec = _spec(tmp_path, suites=[{"name": "toy_suite", "config": {"fail_label": "toy_eraser"}}])
    store = Store(spec.output_dir)
    cells = plan(spec, toy_registries)
    summary = execute(cells, store, toy_registries, device="cpu", progress=False)
    assert (summary.done, summary.failed) == (1, 1)
    failed = store.get("toy_suite", cells[1].key)
    assert failed.status == "failed" and "boom" in failed.error["message"] and "RuntimeError" in failed.error["traceback"]
    board = build_leaderboards(store, spec.leaderboard_dir, toy_registries)["toy_suite"]
    md = (spec.leaderboard_dir / "toy_suite.md").read_text()
    assert "FAILED" in md and "boom" in md
    failed_row = next(r for r in board.rows if r.label == "toy_eraser")
    assert failed_row.status == "failed" and failed_row.values == {} and failed_row.rank is None


def test_force_recomputes_and_keeps_old(toy_registries, tmp_path):
    spec = _spec(tmp_path)
    store = Store(spec.output_dir)
    cells = plan(spec, toy_registries)
    execute(cells, store, toy_registries, device="cpu", progress=False)
    s = execute(cells, store, toy_registries, device="cpu", force=True, progress=False)
    assert s.done == 2
    assert len(list((spec.output_dir / "records" / "toy_suite" / ".superseded").glob("*.json"))) == 2


def test_suite_default_methods_narrow_the_default_rows(toy_registries, tmp_path, monkeypatch):
    from toy_plugins import ToySuite

    monkeypatch.setattr(ToySuite, "default_methods", ())
    assert [c.label for c in plan(_spec(tmp_path), toy_registries)] == ["base model"]
    monkeypatch.setattr(ToySuite, "default_methods", ("toy_eraser",))
    assert [c.label for c in plan(_spec(tmp_path), toy_registries)] == ["base model", "toy_eraser"]


def test_default_seeds_come_from_the_suite_and_a_spec_overrides_them(toy_registries, tmp_path, monkeypatch):
    suite = toy_registries.suites.get("toy_suite")
    monkeypatch.setattr(suite, "default_seeds", (0, 1, 2))
    cells = plan(_spec(tmp_path, methods=[]), toy_registries)
    assert [c.cell.seed for c in cells] == [0, 1, 2]
    assert [c.cell.seed for c in plan(_spec(tmp_path, methods=[], seeds=[7]), toy_registries)] == [7]


def test_board_shows_the_between_seed_sd_of_its_primary_metric(toy_registries, tmp_path):
    import statistics

    spec = _spec(tmp_path, seeds=[0, 1, 2])
    execute(plan(spec, toy_registries), Store(spec.output_dir), toy_registries, device="cpu", progress=False)
    board = build_leaderboards(Store(spec.output_dir), spec.leaderboard_dir, toy_registries, ["toy_suite"])["toy_suite"]
    recs = [r for r in Store(spec.output_dir).records("toy_suite") if r.label == "toy_eraser"]
    values = [m.value for r in recs for m in r.output.metrics if m.metric == "toy_score"]
    row = next(r for r in board.rows if r.label == "toy_eraser")
    sd = row.values[board.primary_metric].seed_sd
    assert len(values) == 3 and sd == pytest.approx(statistics.stdev(values))
    md = (spec.leaderboard_dir / "toy_suite.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| rank"))
    assert "seed sd" in header and f"{sd:.3f}" in md
