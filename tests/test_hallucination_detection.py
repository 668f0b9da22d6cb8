"""hallucination_detection: AUROC within splits, the familiarity-only reference, undefined AUROCs (#20, #22)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from harness.metric_inputs import GenerationsInputs
from harness_plugins.hallucination_detectors import (
    FamiliarityAUROC,
    HallucinationAUROC,
    HallucinationAUROCWithin,
    HallucinationAUROCWithinMean,
)
from harness_plugins.hallucination_detectors.splits import auroc_notes, familiarity_scores, within_split

#: 3 splits: frequent mostly right, rare mixed, heldout all wrong (one class there).
TAGS = ["frequent"] * 20 + ["rare"] * 20 + ["heldout"] * 20
LABELS = [1] * 2 + [0] * 18 + [1] * 10 + [0] * 10 + [1] * 20


def _inputs(scores: dict[str, list[float]], labels=LABELS, tags=TAGS) -> GenerationsInputs:
    n = len(labels)
    return GenerationsInputs(prompts=[""] * n, answers=[""] * n, truths=[""] * n, labels=labels, scores=scores,
                             tags=tuple(tags))


def _by_key(values):
    return {v.key: v.value for v in values}


def test_familiarity_only_detector_is_chance_within_splits_and_high_pooled():
    split_rank = {"frequent": 0.0, "rare": 1.0, "heldout": 2.0}
    rng = np.random.default_rng(0)
    # the score knows the split and nothing else (plus noise unrelated to the label)
    familiar = [split_rank[t] + 0.01 * rng.random() for t in TAGS]
    constant = [split_rank[t] for t in TAGS]
    inputs = _inputs({"familiar": familiar, "constant": constant})
    pooled = _by_key(HallucinationAUROC().compute(inputs))
    assert pooled["familiar"] > 0.85 and pooled["constant"] > 0.85
    within = _by_key(HallucinationAUROCWithin().compute(inputs))
    assert within["constant:frequent"] == pytest.approx(0.5) and within["constant:rare"] == pytest.approx(0.5)
    assert "constant:heldout" not in within and "familiar:heldout" not in within  # one class: undefined
    assert abs(within["familiar:rare"] - 0.5) < 0.3  # noise only: near chance, not the pooled value
    mean = _by_key(HallucinationAUROCWithinMean().compute(inputs))
    assert mean["constant"] == pytest.approx(0.5)
    assert mean["familiar"] == pytest.approx((within["familiar:frequent"] + within["familiar:rare"]) / 2)
    ref = FamiliarityAUROC().compute(inputs)
    assert len(ref) == 1 and ref[0].value == pytest.approx(pooled["constant"])  # the reference = split label alone
    notes = auroc_notes(LABELS, TAGS)
    assert len(notes) == 1 and "heldout" in notes[0] and "every one of the 20 greedy answers is wrong" in notes[0]


def test_a_detector_that_sees_the_label_is_high_within_splits():
    seeing = [float(y) + 0.1 * (i % 3) for i, y in enumerate(LABELS)]
    values, undefined = within_split(seeing, LABELS, TAGS)
    assert values["frequent"][0] == pytest.approx(1.0) and values["rare"][0] == pytest.approx(1.0)
    assert values["mean"][0] == pytest.approx(1.0) and set(undefined) == {"heldout"}


def test_familiarity_scores_are_split_rates():
    s = familiarity_scores(LABELS, TAGS)
    assert s[0] == pytest.approx(0.1) and s[25] == pytest.approx(0.5) and s[59] == pytest.approx(1.0)


def test_one_label_class_leaves_aurocs_out_with_a_reason():
    labels = [1] * len(TAGS)
    inputs = _inputs({"a": list(np.linspace(0, 1, len(TAGS)))}, labels=labels)
    assert HallucinationAUROC().compute(inputs) == []
    assert HallucinationAUROCWithin().compute(inputs) == [] and FamiliarityAUROC().compute(inputs) == []
    (note,) = auroc_notes(labels, TAGS)
    assert "hallucination_auroc" in note and "every one of the 60 greedy answers is wrong" in note


def test_within_split_needs_tags():
    inputs = _inputs({"a": [0.0] * len(TAGS)}, tags=())
    with pytest.raises(ValueError, match="GenerationsInputs.tags"):
        HallucinationAUROCWithin().compute(inputs)


torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def wrong_model(tmp_path_factory):
    """zoo-32's tokenizer and config with random weights: it answers every world question wrong."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from harness.zoo import zoo_model_path

    src = zoo_model_path("zoo-32", "main")
    folder = tmp_path_factory.mktemp("random-zoo-32")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, folder / name)
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src)).save_pretrained(folder)
    return folder


def test_cell_with_one_label_class_keeps_its_metrics_and_notes_why(wrong_model, tmp_path, capsys):
    from harness.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "suites": [{"name": "hallucination_detection", "config": {"questions_per_split": 4, "k": 3}}],
        "models": [str(wrong_model)], "seeds": [0],
    }))
    rc = main(["run", "--spec", str(spec), "--no-progress", "--device", "cpu", "--output-dir", str(tmp_path / "res"),
               "--leaderboard-dir", str(tmp_path / "lb")])
    assert rc == 0
    board = json.loads((tmp_path / "lb" / "hallucination_detection.json").read_text())
    (row,) = board["rows"]
    assert row["status"] == "ok"
    assert row["values"]["hallucination_rate"]["mean"] == pytest.approx(1.0)  # the premise: every answer wrong
    assert not any(c.startswith(("hallucination_auroc", "familiarity_auroc")) for c in row["values"])
    assert "hallucination_detector_ms[hd_eigenscore]" in row["values"] and "ees_relative_error" in row["values"]
    assert len(row["notes"]) == 1 and "one label class" in row["notes"][0] and row["notes"][0].startswith("seed 0:")
    md = (tmp_path / "lb" / "hallucination_detection.md").read_text()
    assert "every one of the 12 greedy answers is wrong" in md
