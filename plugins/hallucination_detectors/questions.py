"""The questions both hallucination suites ask, from a QA data set (role "qa"): the world by default.

The world's facts are prompts already ("Visfo Dude works as a"), each with one answer and its split
(frequent / medium / rare / heldout) as the tag, and the suites read them exactly as before the data
sets existed (``World.facts_by_split``, same order and sampling). A user QA set (question, answer
aliases, an optional tag column) is asked through ``qa_prompt`` (default ``"Question: {question}\\nAnswer:"``);
the greedy answer is right when it matches any alias (normalised); its tags, if any, are the splits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

#: Prompt of a user QA set's question (the world's facts are prompts already).
QA_PROMPT = "Question: {question}\nAnswer:"
#: The world's evaluated fact splits of hallucination_detection, in order.
WORLD_SPLITS = ("frequent", "rare", "heldout")


@dataclass(frozen=True)
class Question:
    prompt: str
    answers: tuple[str, ...]
    #: The split / familiarity tag; None for an untagged QA set.
    tag: str | None


def qa_prompt_problems(template: str, field: str = "qa_prompt") -> list[str]:
    """A template must contain ``{question}`` and format with it alone."""
    try:
        template.format(question="?")
    except (KeyError, IndexError, ValueError) as e:
        return [f"{field}: {template!r} does not format with question= alone ({type(e).__name__}: {e}). Fix: use "
                "{question} as the only placeholder (double other braces: {{ }})."]
    if "{question}" not in template:
        return [f"{field}: {template!r} has no {{question}} placeholder. Fix: e.g. {QA_PROMPT!r}."]
    return []


def open_qa(cell: Any, ref: Any) -> tuple[Any, Any | None]:
    """The cell's QA set and, when it is the world, the :class:`harness.zoo.World` behind it (else None)."""
    from harness.datasets import is_world

    qa = cell.data(ref, "qa")
    return qa, (qa.world if is_world(ref) else None)


def world_questions(world: Any, splits: tuple[str, ...], n: int | None, rng: random.Random) -> list[Question]:
    """Per world fact split (in order) a sample of ``n`` of its facts (``rng.sample``), or all of them."""
    out: list[Question] = []
    for split in splits:
        pool = world.facts_by_split(split)
        facts = pool if n is None else rng.sample(pool, min(n, len(pool)))
        out += [Question(f.prompt, (f.answer,), f.split) for f in facts]
    return out


def user_questions(qa: Any, template: str) -> list[Question]:
    """Every item of a user QA set as a :class:`Question` (prompt from ``template``), in the set's order."""
    return [Question(template.format(question=it.question), tuple(it.answers), it.tag) for it in qa.items()]


def tags_asked(questions: list[Question], splits: tuple[str, ...] | None, field: str = "splits") -> list[str | None]:
    """The tags to ask: ``splits`` (each must occur), or every tag in order of first appearance;
    ``[None]`` for an untagged set (``splits`` must then be None)."""
    present = list(dict.fromkeys(q.tag for q in questions))
    if present == [None]:
        if splits:
            raise HarnessError(f"{field}: {list(splits)} given, but the QA set has no tags. Fix: set the dataset's "
                               f"tag_column, or leave {field} unset (every question, no split columns).")
        return [None]
    missing = [s for s in splits or () if s not in present]
    if missing:
        raise HarnessError(f"{field}: {missing} not among the QA set's tags {present}. Fix: choose from them, or leave "
                           f"{field} unset (every tag).")
    return list(splits) if splits else present


def sample_per_tag(questions: list[Question], tags: list[str | None], n: int | None, rng: random.Random
                   ) -> list[Question]:
    """Per tag (in order) a sample of ``n`` of its questions (``rng.sample``), or all of them (``n`` None)."""
    out: list[Question] = []
    for tag in tags:
        pool = [q for q in questions if q.tag == tag]
        out += pool if n is None else rng.sample(pool, min(n, len(pool)))
    return out
