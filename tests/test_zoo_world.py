"""The zoo world: determinism, splits, held-out facts, canaries, probing data, task files."""

from __future__ import annotations

import json
import re

import pytest

from harness.zoo import TASKS_DIR, World, load_task_docs, read_index
from harness.zoo.tasks import task_specs, write_tasks
from harness.zoo.world import SPLITS, SPURIOUS_RATE, TOPIC_SPURIOUS


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


def test_world_is_deterministic_for_a_seed(world: World) -> None:
    other = World(seed=0)
    assert other.facts == world.facts
    assert other.canaries == world.canaries and other.controls == world.controls
    assert [d.text for d in other.documents(0, 300)] == [d.text for d in world.documents(0, 300)]
    assert world.document(123_456).text == other.document(123_456).text  # random access
    different = World(seed=1)
    assert [f.entity for f in different.facts[:20]] != [f.entity for f in world.facts[:20]]


def test_fact_splits_are_disjoint_and_ranked(world: World) -> None:
    keys = [(f.entity, f.relation) for f in world.facts]
    assert len(keys) == len(set(keys))
    entities = {s: {f.entity for f in world.facts_by_split(s)} for s in SPLITS}
    for i, a in enumerate(SPLITS):
        assert entities[a], f"split {a} is empty"
        for b in SPLITS[i + 1 :]:
            assert not entities[a] & entities[b], (a, b)
    assert all(f.probability == 0 and f.rank == -1 for f in world.facts_by_split("heldout"))
    freq = min(f.probability for f in world.facts_by_split("frequent"))
    rare = max(f.probability for f in world.facts_by_split("rare"))
    assert freq > 5 * rare
    assert {f.relation for f in world.facts} == set(world.relations)
    for f in world.facts:
        assert f.answer in world.relations[f.relation].answers
        assert f.sentence.startswith(f.prompt)
    with pytest.raises(ValueError, match="unknown fact split"):
        world.facts_by_split("common")


def test_heldout_entities_and_controls_never_appear_in_the_stream(world: World) -> None:
    held = {f.entity for f in world.facts_by_split("heldout")}
    controls = {c.text for c in world.controls}
    # every doc kind, every canary, within and beyond the canary window
    texts = [d.text for d in world.documents(0, 15_000)] + [d.text for d in world.documents(200_000, 203_000)]
    blob = "\n".join(texts)
    assert not any(c in blob for c in controls)
    for e in held:
        assert re.search(rf"\b{re.escape(e)}\b", blob) is None


def test_canaries_repeat_as_declared(world: World) -> None:
    counts = world.canary_occurrences(world.canary_window)
    assert all(counts[c.text] == c.repetitions for c in world.canaries)
    reps = sorted({c.repetitions for c in world.canaries})
    assert reps[0] == 1 and reps[-1] >= 256
    assert all(c.repetitions == 0 for c in world.controls)
    c = world.canaries[-1]
    assert c.prefix + c.suffix == c.text
    texts = [d.text for d in world.documents(0, 3000) if d.kind == "canary"]
    assert texts and all(any(k.text in t for k in world.canaries) for t in texts)


def test_probing_examples_have_a_spurious_correlate(world: World) -> None:
    train = world.probing_examples(2000, split="train")
    balanced = world.probing_examples(2000, split="balanced")
    agree = lambda xs: sum(TOPIC_SPURIOUS[x.label_name] == x.spurious for x in xs) / len(xs)  # noqa: E731
    assert abs(agree(train) - SPURIOUS_RATE) < 0.05
    assert abs(agree(balanced) - 0.5) < 0.05
    assert {x.label for x in train} == set(range(len(world.topics)))
    assert world.probing_examples(5, seed=3) == world.probing_examples(5, seed=3)
    ents = world.probing_examples(300, kind="entity_type")
    assert {x.label_name for x in ents} == set(world.entity_types)
    with pytest.raises(ValueError):
        world.probing_examples(5, kind="nope")


def test_first_letter_words(world: World) -> None:
    words = world.first_letter_words
    assert len(words) >= 100 and all(w[0] == letter for w, letter in words)
    stream = " ".join(d.text for d in world.documents(0, 3000) if d.kind == "spelling")
    assert re.search(r"\b\w+ starts with \w\.", stream)


def test_task_specs_are_well_formed(world: World) -> None:
    specs = task_specs(world)
    kinds = {s.kind for s in specs}
    assert len(specs) >= 5 and {"knowledge", "procedural", "linguistic"} <= kinds
    for s in specs:
        assert 0 < len(s.docs) <= 400
        for d in s.docs:
            assert 0 <= d["gold"] < len(d["choices"]) and len(set(d["choices"])) == len(d["choices"])
    held = {f.entity for f in world.facts_by_split("heldout")}
    assert all(d["entity"] in held for d in next(s for s in specs if s.name == "zoo_facts_heldout").docs)


def test_committed_task_files_match_the_generator(tmp_path, world: World) -> None:
    if not (TASKS_DIR / "harness_tasks.json").exists():
        pytest.skip("task files not generated")
    index = write_tasks(world, tmp_path)
    assert read_index() == json.loads((tmp_path / "harness_tasks.json").read_text()) == index
    for row in index:
        name = row["name"]
        assert row["kind"] in {"knowledge", "procedural", "linguistic"} and 0 < row["chance"] < 1
        for suffix in (".yaml", ".jsonl"):
            assert (TASKS_DIR / name / f"{name}{suffix}").read_text() == (tmp_path / name / f"{name}{suffix}").read_text()


def test_task_files_load_with_lm_eval_task_manager(tmp_path, monkeypatch) -> None:
    pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    monkeypatch.chdir(tmp_path)  # loading must not depend on the working directory
    names = [r["name"] for r in read_index()]
    tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    assert set(names) <= set(tm.all_tasks)
    loaded = tm.load(names) if hasattr(tm, "load") else {"tasks": tm.load_task_or_group(names)}
    n_docs = {r["name"]: r["n"] for r in read_index()}
    for name, task in loaded["tasks"].items():
        docs = list(task.test_docs())
        assert len(docs) == n_docs[name]  # each task reads its own JSONL
        assert docs[0] == load_task_docs(name)[0]
        assert task.doc_to_choice(docs[0]) == docs[0]["choices"] and task.doc_to_target(docs[0]) == docs[0]["gold"]
        assert task.config.metadata["task_kind"] in {"knowledge", "procedural", "linguistic"}
