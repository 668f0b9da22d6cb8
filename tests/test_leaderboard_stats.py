"""Board statistics a researcher would cite: the paired tie test, descriptive columns, reference
rows, the minimum detectable difference and the board text that names the test."""

import math
import types

import pytest
import toy_plugins
from toy_plugins import ToyScore, ToySuite

from harness import hookimpl
from harness.leaderboard import build_board, render_markdown
from harness.leaderboard.statistics import tied
from harness.protocols import ReportedMetric
from harness.provenance import now_iso
from harness.results import CellKey, MetricValue, Provenance, RunRecord, SuiteOutput
from harness.stats import MDD_FACTOR, minimum_detectable_difference, paired_t_test, t_quantile
from harness.testing import registries_with


class ToyDensity(ReportedMetric):
    name = "toy_density"
    description = "A descriptive quantity of the toy rows (higher first, for display only)."
    higher_is_better = True
    descriptive = True
    scope = "intervention"


def _registries():
    mod = types.ModuleType("toy_density_plugin")
    mod.register_metrics = hookimpl(lambda register: register(ToyDensity))
    return registries_with(("toy", toy_plugins), ("toy_density", mod))


def _rec(label, score, stderr=None, seed=0, method="m", density=None):
    cell = CellKey(suite="toy_suite", suite_version="1", suite_config={}, method=method, method_kind="unlearning_method",
                method_config={"label": label}, model="toy:a", model_fingerprint="f", seed=seed, dtype="auto")
    prov = Provenance(harness_version="0", git_hash="abc", packages={}, device="cpu", python="3", platform="p",
                      started_at=now_iso(), finished_at=now_iso(), wall_time_s=0.1)
    metrics = [MetricValue(metric="toy_score", value=score, stderr=stderr)]
    if density is not None:
        metrics.append(MetricValue(metric="toy_density", value=density))
    return RunRecord(key=cell.key(), cell=cell, label=label, status="ok", output=SuiteOutput(metrics=metrics),
                     provenance=prov)


def _seeds(label, values, stderr=None, **kw):
    return [_rec(label, v, stderr, seed=s, **kw) for s, v in enumerate(values)]


# a: 1, 2, 3; b: 0.10 higher on seeds 0 and 1, 0.12 on seed 2 (toy_score: lower is better).
# Unpaired the means (2.000 vs 2.107, se 0.58 each) are far inside each other's intervals;
# paired, d = -0.10, -0.10, -0.12: mean -0.10667, sd 0.011547, se 0.0066667, t = 16 > t_0.975,2 = 4.303.
A, B_CONSISTENT, B_NOISY = [1.0, 2.0, 3.0], [1.1, 2.1, 3.12], [1.1, 1.9, 3.05]


def test_paired_t_test_on_a_hand_made_case():
    t = paired_t_test(A, B_CONSISTENT)
    assert (t.n, t.mean_diff, t.stderr) == (3, pytest.approx(-0.32 / 3), pytest.approx(math.sqrt(4e-4 / 9)))
    assert t.critical == pytest.approx(4.302653, abs=1e-6) and t.significant
    # within-cell errors folded in: v = 1.3333e-4 + 0.03^2 + 0.04^2, se = sqrt(v / 3) = 0.02963 -> t = 3.6: not significant
    t = paired_t_test(A, B_CONSISTENT, [0.03] * 3, [0.04] * 3)
    assert t.stderr == pytest.approx(math.sqrt((4e-4 / 3 + 0.0025) / 3)) and not t.significant
    # one missing within-cell error: the plain paired test
    assert paired_t_test(A, B_CONSISTENT, [0.03, None, 0.03], [0.04] * 3).significant
    # d = -0.1, +0.1, -0.05: mean -0.01667, se 0.06009 -> t = 0.28
    assert not paired_t_test(A, B_NOISY).significant
    # constant differences: no spread, significant unless they are all zero
    assert paired_t_test([1.0, 2.0], [0.5, 1.5]).significant and not paired_t_test([1.0, 2.0], [1.0, 2.0]).significant
    with pytest.raises(ValueError, match=">= 2 pairs"):
        paired_t_test([1.0], [2.0])
    # Student's t quantiles against the printed table (two-sided 5%), both parities of df, and symmetry
    for df, q in ((1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423)):
        assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-4), df
    assert t_quantile(0.995, 5) == pytest.approx(4.0321, abs=1e-4) and t_quantile(0.025, 4) == -t_quantile(0.975, 4)
    assert t_quantile(0.975, 10_000) == pytest.approx(1.96, abs=1e-3)
    with pytest.raises(ValueError, match="integer df >= 1"):
        t_quantile(0.975, 0)


def test_consistent_difference_across_seeds_is_not_a_tie(toy_registries):
    board = build_board("toy_suite", _seeds("a", A) + _seeds("b", B_CONSISTENT), toy_registries)
    a, b = board.rows
    assert (a.label, a.rank, a.tied, b.label, b.rank, b.tied) == ("a", 1, False, "b", 2, False)
    assert tied(a.values["toy_score"], b.values["toy_score"])  # the unpaired rule would have tied them
    assert (a.win_rate, b.win_rate) == (1.0, 0.0)  # the same rule decides the win rate
    assert board.tie_test.startswith("`=`: not different by a two-sided paired t test over 3 common seeds (5%")
    assert "paired t test over 3 common seeds" in render_markdown(board)


def test_inconsistent_difference_across_seeds_ties(toy_registries):
    board = build_board("toy_suite", _seeds("a", A) + _seeds("b", B_NOISY), toy_registries)
    assert [(r.label, r.rank, r.tied) for r in board.rows] == [("a", 1, True), ("b", 1, True)]
    assert [r.win_rate for r in board.rows] == [0.5, 0.5]


def test_one_seed_keeps_the_unpaired_rule_and_says_so(toy_registries):
    recs = [_rec("a", 1.0, 0.1), _rec("b", 1.2, 0.1), _rec("c", 3.0, 0.1)]
    board = build_board("toy_suite", recs, toy_registries)
    assert [(r.label, r.rank, r.tied) for r in board.rows] == [("a", 1, True), ("b", 1, True), ("c", 3, False)]
    assert board.tie_test == "`=`: |difference| <= 1.96 x combined standard error (one seed)."
    md = render_markdown(board)
    assert "`=`: |difference| <= 1.96 x combined standard error (one seed)." in md
    assert "95% intervals overlap" not in md


def test_rows_sharing_one_seed_of_several_fall_back_to_the_unpaired_rule(toy_registries):
    recs = [_rec("a", 1.0, 0.1, seed=0), _rec("a", 1.0, 0.1, seed=1), _rec("b", 1.1, 0.1, seed=1),
            _rec("b", 1.1, 0.1, seed=2)]
    board = build_board("toy_suite", recs, toy_registries)
    assert board.tie_test == "`=`: |difference| <= 1.96 x combined standard error (one seed)."
    recs = [_rec("a", 1.0, 0.1, seed=0), _rec("b", 1.1, 0.1, seed=1)]
    assert "(fewer than 2 common seeds)" in build_board("toy_suite", recs, toy_registries).tie_test


def test_mixed_boards_name_both_tests(toy_registries):
    recs = _seeds("a", A) + _seeds("b", B_CONSISTENT) + [_rec("c", 10.0, 0.1, seed=5)]
    text = build_board("toy_suite", recs, toy_registries).tie_test
    assert "paired t test over 3 common seeds" in text and "; otherwise |difference| <= 1.96" in text


def _ranks_and_wins(board):
    return {r.label: (r.rank, r.tied, r.win_rate) for r in board.rows}


def test_a_descriptive_column_changes_no_rank_and_no_win_rate(monkeypatch):
    regs = _registries()
    scores = {"a": 1.0, "b": 2.0, "c": 3.0}
    without = build_board("toy_suite", [_rec(k, v, 0.01) for k, v in scores.items()], regs)
    # the density favours c, the worst row by score: counted, it would lift c's win rate
    recs = [_rec(k, v, 0.01, density=10.0 * v) for k, v in scores.items()]
    monkeypatch.setattr(ToySuite, "metrics", ("toy_density", "toy_score"))  # even declared first
    board = build_board("toy_suite", recs, regs)
    assert board.primary_metric == "toy_score"
    assert _ranks_and_wins(board) == _ranks_and_wins(without) == {"a": (1, False, 1.0), "b": (2, False, 0.5),
                                                                  "c": (3, False, 0.0)}
    col = next(c for c in board.columns if c.name == "toy_density")
    assert col.descriptive and col.higher_is_better and all("toy_density" in r.values for r in board.rows)
    assert "Descriptive, shown but never ranked or counted in win rates: `toy_density`." in render_markdown(board)
    # control: the same column as a score does change the win rates (and, declared first, the ranking)
    monkeypatch.setattr(ToyDensity, "descriptive", False)
    counted = build_board("toy_suite", recs, regs)
    assert counted.primary_metric == "toy_density" and _ranks_and_wins(counted)["c"] == (1, False, 0.5)


def test_a_board_whose_metrics_are_all_descriptive_is_unranked_and_says_so(toy_registries, monkeypatch):
    monkeypatch.setattr(ToyScore, "descriptive", True)
    board = build_board("toy_suite", [_rec("a", 1.0, 0.1), _rec("b", 2.0, 0.1)], toy_registries)
    assert board.primary_metric is None and board.mdd is None
    assert all(r.rank is None and r.win_rate is None for r in board.rows)
    assert "Unranked: no declared metric of this suite is a score" in render_markdown(board)


def test_reference_row_is_unranked_and_labelled(toy_registries, monkeypatch):
    monkeypatch.setattr(ToySuite, "reference_label", "neuron basis (reference)")
    monkeypatch.setattr(ToySuite, "rank_reference", False)
    recs = [_rec("base model", 0.1, 0.01, method=None), _rec("a", 1.0, 0.01), _rec("b", 2.0, 0.01)]
    board = build_board("toy_suite", recs, toy_registries)
    ref = next(r for r in board.rows if r.method is None)
    assert (ref.label, ref.rank, ref.win_rate, ref.reference) == ("neuron basis (reference)", None, None, True)
    # the best value of all, yet the others rank (and play) among themselves only
    assert _ranks_and_wins(board) == {"a": (1, False, 1.0), "b": (2, False, 0.0),
                                      "neuron basis (reference)": (None, False, None)}
    assert board.rows[-1] is ref
    a = next(r for r in board.rows if r.label == "a")
    assert a.values["toy_score"].delta_vs_reference == pytest.approx(0.9)  # still the reference of the deltas
    md = render_markdown(board)
    assert "`neuron basis (reference)`: the unmodified model as a reference, not ranked" in md
    # by default the reference row is ranked with the others, labelled "base model"
    monkeypatch.setattr(ToySuite, "rank_reference", True)
    monkeypatch.setattr(ToySuite, "reference_label", "base model")
    ranked = build_board("toy_suite", recs, toy_registries)
    assert _ranks_and_wins(ranked)["base model"] == (1, False, 1.0) and not any(r.reference for r in ranked.rows)


def test_superposition_keeps_its_neuron_basis_row_out_of_the_ranking():
    from harness_plugins.superposition import SuperpositionSuite

    assert SuperpositionSuite.rank_reference is False and "neuron basis" in SuperpositionSuite.reference_label


def test_mdd_from_stderrs_with_one_seed(toy_registries):
    recs = [_rec("a", 1.0, 0.1), _rec("b", 2.0, 0.4), _rec("c", 3.0, 0.2)]
    m = build_board("toy_suite", recs, toy_registries).mdd
    # SE_diff = sqrt(2) x median(0.1, 0.4, 0.2) = 0.28284; MDD = 2.8016 x 0.28284 = 0.79241
    assert (m.metric, m.basis, m.n_seeds) == ("toy_score", "stderr", 1)
    assert m.se_diff == pytest.approx(math.sqrt(2) * 0.2) and m.value == pytest.approx(0.792408, abs=1e-6)
    assert "Minimum detectable difference of `toy_score`: 0.792 (SE_diff 0.283, 1 seed)" in render_markdown(
        build_board("toy_suite", recs, toy_registries))


def test_mdd_from_paired_differences(toy_registries):
    c = [1.0, 2.5, 3.0]  # vs a: d = 0, -0.5, 0 -> se sqrt(1/12 / 3) = 0.16667; vs b: d = 0.1, -0.4, 0.12 -> 0.17026
    recs = _seeds("a", A) + _seeds("b", B_CONSISTENT) + _seeds("c", c)
    m = build_board("toy_suite", recs, toy_registries).mdd
    se = sorted([math.sqrt(4e-4 / 9), math.sqrt(1 / 36), paired_t_test(B_CONSISTENT, c).stderr])[1]
    assert (m.basis, m.n_seeds) == ("paired", 3) and m.se_diff == pytest.approx(1 / 6)
    assert m.se_diff == pytest.approx(se) and m.value == pytest.approx(MDD_FACTOR / 6)
    assert MDD_FACTOR == pytest.approx(2.801585, abs=1e-6)
    assert minimum_detectable_difference(0.5) == pytest.approx(1.400792, abs=1e-6)


def test_board_power_script_reads_a_store_and_published_boards(toy_registries, tmp_path):
    import importlib.util

    from conftest import REPO

    from harness.leaderboard import build_leaderboards
    from harness.store import Store

    spec = importlib.util.spec_from_file_location("board_power", REPO / "benchmarks" / "board_power.py")
    power = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(power)
    store = Store(tmp_path / "out")
    for rec in _seeds("a", A) + _seeds("b", B_CONSISTENT):
        rec.output.metrics[0].n = 50
        store.put(rec)
    mdd = f"{MDD_FACTOR * math.sqrt(4e-4 / 9):.3f}"
    assert power.from_store(store.root, toy_registries) == [f"| toy_suite | toy_score | 3 | 50 | {mdd} (paired, SE_diff 0.007) |"]
    build_leaderboards(store, tmp_path / "lb", toy_registries)
    # published boards carry no per-seed values: the MDD from the rows' standard errors
    se = build_board("toy_suite", store.records(), toy_registries).rows
    expected = MDD_FACTOR * math.sqrt(2) * (se[0].values["toy_score"].stderr + se[1].values["toy_score"].stderr) / 2
    assert power.from_boards(tmp_path / "lb", toy_registries) == [
        f"| toy_suite | toy_score | 3 | - | {expected:.3f} (stderr, SE_diff {expected / MDD_FACTOR:.3f}) |"]
