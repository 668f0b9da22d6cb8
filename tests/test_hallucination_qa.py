"""Both hallucination suites read their questions from a `qa` data set (#20): the world by default, with
the questions and fine-tuning texts they had before; a user QA set in INSIDE's (TriviaQA-like) schema
on the pythia-70m-shaped random model (skipped where ../shared/data/pythia-70m-shape is absent)."""

from __future__ import annotations

import json
import random
import shutil
from types import SimpleNamespace

import pytest
import yaml

from harness.errors import HarnessError
from harness_plugins.hallucination_detectors.questions import (
    Question,
    qa_prompt_problems,
    sample_per_tag,
    tags_asked,
    world_questions,
)


@pytest.fixture(scope="module")
def world():
    from harness.zoo import World

    return World(seed=0)


def test_world_questions_are_the_facts_sampled_as_before(world):
    from harness.datasets import DatasetRef, open_role

    assert open_role(DatasetRef(), "qa").world.facts == world.facts  # the default ref is World(seed=0)
    for seed in (0, 3):
        rng, old = random.Random(seed), []
        for split in ("frequent", "rare", "heldout"):  # hallucination_detection before the qa field
            pool = world.facts_by_split(split)
            old += rng.sample(pool, min(30, len(pool)))
        new = world_questions(world, ("frequent", "rare", "heldout"), 30, random.Random(seed))
        assert [(q.prompt, q.answers, q.tag) for q in new] == [(f.prompt, (f.answer,), f.split) for f in old]


def test_mitigation_suite_world_data_is_unchanged(world):
    from harness_plugins.send_mitigators import HallucinationSuite, _world_data

    cfg = HallucinationSuite.Config(preset="full")
    texts, evaluated = _world_data(world, cfg)
    assert texts == [f.sentence for s in ("rare", "medium") for f in world.facts_by_split(s)]
    assert [(k, m) for k, m, _ in evaluated] == [("rare", "hallucination_rate"), ("heldout", "hallucination_rate"),
                                                 ("frequent", "known_fact_accuracy")]
    assert [q.prompt for q in evaluated[0][2]] == [f.prompt for f in world.facts_by_split("rare")]  # whole pools
    sampled = _world_data(world, HallucinationSuite.Config(questions_per_split=40))[1]
    rng, old = random.Random(0), []
    for split in ("rare", "heldout", "frequent"):  # the sampling of the 40-per-split preset, kept for that setting
        old.append([f.prompt for f in rng.sample(world.facts_by_split(split), 40)])
    assert [[q.prompt for q in qs] for _, _, qs in sampled] == old
    quick = _world_data(world, HallucinationSuite.Config())[1]  # quick: 200 per split, a split with fewer whole
    assert [len(qs) for _, _, qs in quick] == [200, len(world.facts_by_split("heldout")), len(world.facts_by_split("frequent"))]


def _q(tag):
    return Question("p", ("a",), tag)


def test_tags_asked_and_their_errors():
    tagged = [_q("easy"), _q("hard"), _q("easy")]
    assert tags_asked(tagged, None) == ["easy", "hard"] and tags_asked(tagged, ("hard",)) == ["hard"]
    with pytest.raises(HarnessError, match=r"splits: \['rare'\] not among the QA set's tags \['easy', 'hard'\]"):
        tags_asked(tagged, ("rare",))
    assert tags_asked([_q(None), _q(None)], None) == [None]
    with pytest.raises(HarnessError, match="the QA set has no tags"):
        tags_asked([_q(None)], ("frequent",))
    assert len(sample_per_tag(tagged, ["easy"], 1, random.Random(0))) == 1
    assert qa_prompt_problems("Q: {question} A:") == []
    assert "no {question} placeholder" in qa_prompt_problems("Q: A:")[0]
    assert "does not format" in qa_prompt_problems("Q: {q} A:")[0]


def test_untagged_user_set_halves_and_tagged_set_needs_train_splits():
    from harness_plugins.send_mitigators import HallucinationSuite, _user_data
    from harness.datasets.roles import QAItem

    items = [QAItem(f"Who is {i}?", (f"name{i}", f"alias{i}")) for i in range(10)]
    qa = SimpleNamespace(items=lambda: items)
    texts, evaluated = _user_data(qa, HallucinationSuite.Config())
    (k1, m1, trained), (k2, _, held) = evaluated
    assert (k1, k2, m1) == ("trained", "heldout", "hallucination_rate") and len(trained) == len(held) == 5
    assert {q.prompt for q in trained}.isdisjoint(q.prompt for q in held)
    assert sorted(texts) == sorted(f"Question: {q.prompt.split(': ', 1)[1].split(chr(10))[0]}\nAnswer: {q.answers[0]}."
                                   for q in trained)
    tagged = SimpleNamespace(items=lambda: [QAItem("q?", ("a",), "easy"), QAItem("r?", ("b",), "hard")])
    with pytest.raises(HarnessError, match=r"train_splits: none of \['rare', 'medium'\] is a tag"):
        _user_data(tagged, HallucinationSuite.Config())
    texts, evaluated = _user_data(tagged, HallucinationSuite.Config(train_splits=("easy",)))
    assert texts == ["Question: q?\nAnswer: a."] and [k for k, _, _ in evaluated] == ["easy", "hard"]


# --------------------------------------------------------------------------- the pythia-70m-shaped model
from _hf_configs import PYTHIA_SHAPE_DIR  # noqa: E402

torch = pytest.importorskip("torch")
needs_shape = pytest.mark.skipif(not (PYTHIA_SHAPE_DIR / "config.json").is_file(),
                                 reason="../shared/data/pythia-70m-shape is absent")

#: TriviaQA-like rows (INSIDE's schema): question, answer.value, answer.aliases; a familiarity tag.
TRIVIA = [
    ("Which city is the capital of France?", "Paris", ["Paris", "paris, france"], "frequent"),
    ("Who wrote the play Hamlet?", "William Shakespeare", ["Shakespeare", "William Shakespeare"], "frequent"),
    ("What is the chemical symbol for gold?", "Au", ["Au"], "frequent"),
    ("How many legs does a spider have?", "Eight", ["8", "eight"], "frequent"),
    ("Which planet is known as the red planet?", "Mars", ["Mars"], "rare"),
    ("In which year did the Berlin Wall fall?", "1989", ["1989"], "rare"),
    ("What is the largest ocean on Earth?", "Pacific", ["Pacific", "Pacific Ocean"], "rare"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", ["Leonardo", "da Vinci", "Leonardo da Vinci"], "rare"),
]


@pytest.fixture(scope="module")
def pythia_shape(tmp_path_factory):
    """A random-initialised model of Pythia-70M's exact config, with its real tokenizer, as a local folder."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("pythia-70m-shape-random")
    for f in PYTHIA_SHAPE_DIR.iterdir():
        if f.name.startswith("tokenizer") or f.name == "special_tokens_map.json":
            shutil.copy(f, folder / f.name)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(PYTHIA_SHAPE_DIR)).save_pretrained(folder)
    return folder


def _trivia_file(path, tagged: bool):
    rows = [{"question": q, "answer": {"value": v, "aliases": a}, **({"familiarity": t} if tagged else {})}
            for q, v, a, t in TRIVIA]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(tmp_path, suite, model, methods=None):
    from harness.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"suites": [suite], "models": [str(model)], "methods": methods or [],
                                    "seeds": [0]}))
    rc = main(["run", "--spec", str(spec), "--no-progress", "--device", "cpu", "--output-dir", str(tmp_path / "res"),
               "--leaderboard-dir", str(tmp_path / "lb"), *([] if methods else ["--baselines-only"])])
    assert rc == 0
    return json.loads((tmp_path / "lb" / f"{suite['name']}.json").read_text())


@needs_shape
@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
def test_detection_on_pythia_shape_with_a_local_trivia_set(pythia_shape, tmp_path, tagged):
    qa = {"dataset": "local", "config": {"path": str(_trivia_file(tmp_path / "trivia.jsonl", tagged)),
                                         "answers_column": "answer.aliases",
                                         **({"tag_column": "familiarity"} if tagged else {})}}
    board = _run(tmp_path, {"name": "hallucination_detection",
                            "config": {"qa": qa, "questions_per_split": 4, "k": 2, "max_new_tokens": 2}}, pythia_shape)
    (row,) = board["rows"]
    assert row["status"] == "ok", row["failures"]
    assert row["values"]["hallucination_rate"]["mean"] == pytest.approx(1.0)  # a random model knows no answer
    assert "hallucination_detector_ms[hd_eigenscore]" in row["values"]
    assert not any(c.startswith(("hallucination_auroc", "familiarity_auroc")) for c in row["values"])
    assert any("one label class" in n for n in row["notes"])  # undefined, with the reason (#20)
    split_cols = [c["name"] for c in board["columns"] if c["metric"] == "hallucination_auroc_within"]
    assert split_cols == []  # one label class: no within-split values either


@needs_shape
@pytest.mark.parametrize("tagged", [False], ids=["untagged"])  # tagged sets: test_untagged_user_set_halves_...
def test_mitigation_on_pythia_shape_with_a_local_trivia_set(pythia_shape, tmp_path, tagged):
    qa = {"dataset": "local", "config": {"path": str(_trivia_file(tmp_path / "trivia.jsonl", tagged)),
                                         "answers_column": "answer.aliases",
                                         **({"tag_column": "familiarity"} if tagged else {})}}
    config = {"qa": qa, "k": 2, "capability_tasks": [], **({"train_splits": ["rare"]} if tagged else {})}
    methods = [{"name": "continued_training", "config": {"epochs": 1}},
               {"name": "send", "config": {"epochs": 3, "n_track": 4}}]
    board = _run(tmp_path, {"name": "hallucination", "config": config}, pythia_shape, methods)
    rows = {r["label"]: r for r in board["rows"]}
    assert set(rows) == {"base model", "continued_training", "send"}
    assert all(r["status"] == "ok" for r in rows.values()), [r["failures"] for r in rows.values()]
    keys = {"hallucination_rate[frequent]", "hallucination_rate[rare]"} if tagged else \
        {"hallucination_rate[trained]", "hallucination_rate[heldout]"}
    assert keys <= set(rows["send"]["values"]) and not any("known_fact_accuracy" in c for c in rows["send"]["values"])
    assert "Paired test: `send` minus `continued_training`" in board["summary"]
    from harness.store import Store

    rec = next(r for r in Store(tmp_path / "res").records("hallucination") if r.cell.method == "send")
    assert rec.output.details["train_texts"] == 4  # tagged: the 4 rare items; untagged: half of the 8
    assert rec.cell.datasets  # the local file's identity is part of the key
