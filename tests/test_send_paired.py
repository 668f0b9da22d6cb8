"""The hallucination suite's paired test of SeND against continued training (#22)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import yaml

from harness_plugins.send_mitigators.paired import mcnemar_exact, paired_difference, paired_table


def test_paired_difference_hand_case():
    a = [[1, 1, 0, 0, 1, 0]]
    b = [[1, 0, 0, 1, 1, 1]]
    r = paired_difference(a, b)  # differences 0, 1, 0, -1, 0, -1: mean -1/6
    d = [0, 1, 0, -1, 0, -1]
    mean = sum(d) / 6
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / 5 / 6)
    assert r.mean_diff == pytest.approx(mean) and r.stderr == pytest.approx(se)
    assert r.mean_a == pytest.approx(0.5) and r.mean_b == pytest.approx(4 / 6)
    assert r.p_value == pytest.approx(math.erfc(abs(mean) / se / math.sqrt(2)))
    assert r.discordant == (1, 2) and r.mcnemar_p == pytest.approx(1.0)
    two = paired_difference([a[0], [0] * 6], [b[0], [0] * 6])  # two seeds: per-question means
    assert two.seeds == 2 and two.mean_diff == pytest.approx(mean / 2) and two.mcnemar_p is None


def test_mcnemar_exact_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 2**10)
    assert mcnemar_exact(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 2**10)


def test_identical_rows_show_no_difference_and_a_real_gap_is_significant():
    same = paired_difference([[1, 0] * 50], [[1, 0] * 50])
    assert same.mean_diff == 0 and same.p_value == 1.0
    gap = paired_difference([[0] * 60 + [1] * 40], [[1] * 100])  # 60 of 100 questions fixed
    assert gap.mean_diff == pytest.approx(-0.6) and gap.p_value < 1e-6 and gap.mcnemar_p < 1e-6


def _rec(method, seed, outcomes, qset="q1"):
    metric = {"frequent": "known_fact_accuracy"}
    details = {"outcomes": outcomes, "question_sets": {s: qset for s in outcomes},
               "outcome_metrics": {s: f"{metric.get(s, 'hallucination_rate')}[{s}]" for s in outcomes}}
    return SimpleNamespace(cell=SimpleNamespace(method=method, model="zoo:m", seed=seed),
                           output=SimpleNamespace(details=details))


def test_paired_table_pairs_by_seed_and_refuses_other_questions():
    recs = [_rec("send", 0, {"rare": "0011", "frequent": "1111"}), _rec("continued_training", 0,
                                                                          {"rare": "1111", "frequent": "1100"})]
    md = paired_table(recs)
    assert "`hallucination_rate[rare]` | 4 | 1 | 0.500 | 1.000 | -0.500" in md
    assert "`known_fact_accuracy[frequent]` | 4 | 1 | 1.000 | 0.500 | +0.500" in md
    assert md.count("| yes |") == 2  # fewer wrong rare answers, more right frequent ones: both better
    other = [recs[0], _rec("continued_training", 0, {"rare": "1111"}, qset="q2")]
    assert paired_table(other) is None  # different question sets are never paired
    assert paired_table([recs[0]]) is None


torch = pytest.importorskip("torch")


def test_suite_records_outcomes_and_board_shows_the_paired_test(tmp_path):
    from harness.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "suites": [{"name": "hallucination", "config": {"questions_per_split": 6, "k": 2, "capability_tasks": [],
                                                    "train_splits": ["frequent"]}}],
        "methods": [{"name": "continued_training", "config": {"epochs": 1}},
                    {"name": "send", "config": {"epochs": 3, "n_track": 4}}],
        "models": ["zoo:zoo-32"], "seeds": [0],
    }))
    rc = main(["run", "--spec", str(spec), "--no-progress", "--device", "cpu", "--output-dir", str(tmp_path / "res"),
               "--leaderboard-dir", str(tmp_path / "lb")])
    assert rc == 0
    board = json.loads((tmp_path / "lb" / "hallucination.json").read_text())
    rows = {r["label"]: r for r in board["rows"]}
    assert set(rows) == {"base model", "continued_training", "send"}
    assert "Paired test: `send` minus `continued_training`" in board["summary"]
    assert "`hallucination_rate[rare]` | 6 | 1 |" in board["summary"]
    from harness.store import Store

    recs = {r.label: r for r in Store(tmp_path / "res").records("hallucination")}
    for rec in recs.values():
        out = rec.output.details["outcomes"]
        assert set(out) == {"rare", "heldout", "frequent"} and all(len(o) == 6 for o in out.values())
        rare = next(v for v in rec.output.metrics if v.column == "hallucination_rate[rare]")
        assert rare.value == pytest.approx(out["rare"].count("1") / 6)  # the outcomes are what the metric averages
        freq = next(v for v in rec.output.metrics if v.column == "known_fact_accuracy[frequent]")
        assert freq.value == pytest.approx(out["frequent"].count("1") / 6)
