"""A seeded, versioned, procedurally generated world: the corpus the zoo models learn from.

``World(seed=0)`` is fully determined by its seed and :data:`WORLD_VERSION`. It holds

* entity-relation **facts** (city -> country, person -> profession, element -> colour) with a
  Zipf-like frequency spread; each fact is ``frequent``, ``medium``, ``rare`` or ``heldout``
  (held-out entities never occur in the stream: hallucination targets);
* procedural skills: two-digit **addition**, arithmetic-progression **sequences**;
* a linguistic phenomenon: **subject-verb agreement** across a prepositional attractor;
* labelled **probing** sentences (topic, entity type) with a **spurious** correlate (the
  pronoun) that is 90% predictive of the topic group in the stream and independent in the
  balanced split;
* **first-letter** words ("kovira starts with k.") for feature-absorption tests;
* **canaries** (random strings) placed 1, 2, 4, ..., 512 times in the first
  ``canary_window`` documents, plus never-seen **controls**.

:func:`world_for` is the world a zoo build (default or tiny) trains on.
:meth:`World.documents` streams the corpus; it is unbounded (documents are sampled i.i.d.
from the mixture, indexed so any slice is reproducible), so rare facts stay rare however
long a model trains.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from harness.zoo import lexicon as lx

#: Bump whenever the generated text changes; recorded in every zoo manifest and task file.
WORLD_VERSION = "1"

SPLITS = ("frequent", "medium", "rare", "heldout")


@dataclass(frozen=True)
class Relation:
    """A relation: entity type, the canonical prompt (answer follows after a space), answers."""

    name: str
    entity_type: str
    prompt: str
    alt_sentence: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Fact:
    """One entity-relation fact. ``rank`` is the Zipf rank (0 = most frequent, -1 = held out)."""

    entity: str
    relation: str
    answer: str
    rank: int
    split: str
    probability: float
    prompt: str

    @property
    def sentence(self) -> str:
        """The canonical training sentence, e.g. ``"Bolira is a city in Tarvia."``."""
        return f"{self.prompt} {self.answer}."


@dataclass(frozen=True)
class Canary:
    """A random string repeated ``repetitions`` times in the first ``canary_window`` docs."""

    text: str
    repetitions: int

    @property
    def prefix(self) -> str:
        """First half of the canary's chunks: the extraction prompt."""
        chunks = self.text.split(" ")
        return " ".join(chunks[: len(chunks) // 2])

    @property
    def suffix(self) -> str:
        """Second half, with its leading space: what k-extraction must reproduce."""
        chunks = self.text.split(" ")
        return " " + " ".join(chunks[len(chunks) // 2 :])


@dataclass(frozen=True)
class ProbeExample:
    """A labelled sentence. ``spurious`` is the pronoun index (0 she, 1 he), -1 if none."""

    text: str
    label: int
    label_name: str
    spurious: int


@dataclass(frozen=True)
class Document:
    """One document of the stream: its index, kind, text and the facts it states."""

    index: int
    kind: str
    text: str
    facts: tuple[Fact, ...] = ()


#: Mixture weights of the document kinds in the stream (canary documents are scheduled).
DOC_KINDS: dict[str, float] = {
    "fact": 0.45,
    "arithmetic": 0.18,
    "sequence": 0.08,
    "agreement": 0.10,
    "topic": 0.12,
    "spelling": 0.07,
}
#: Topic -> the pronoun index that co-occurs with it 90% of the time in the stream.
TOPIC_SPURIOUS = {"sport": 1, "food": 1, "weather": 0, "music": 0}
SPURIOUS_RATE = 0.9
CANARY_REPETITIONS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class World:
    """The procedurally generated world (see the module docstring).

    Args:
        seed: determines every name, fact, canary and document.
        n_cities, n_persons, n_elements: entity counts per relation.
        heldout_fraction: share of each relation's entities never shown in the stream.
        zipf_alpha, zipf_offset: the fact frequency law (Zipf-Mandelbrot)
            ``p(rank) ~ (rank + offset) ** -alpha``.
        canary_window: canaries are spread over documents ``[0, canary_window)``; the zoo
            build trains on at least this many documents.
        canaries_per_level: canaries per repetition count; ``n_controls`` never-seen ones.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        n_cities: int = 600,
        n_persons: int = 400,
        n_elements: int = 300,
        heldout_fraction: float = 0.1,
        zipf_alpha: float = 1.7,
        zipf_offset: float = 20.0,
        canary_window: int = 125_000,
        canaries_per_level: int = 4,
        canary_repetitions: tuple[int, ...] = CANARY_REPETITIONS,
        n_controls: int = 20,
    ) -> None:
        self.seed = seed
        self.version = WORLD_VERSION
        self.zipf_alpha = zipf_alpha
        self.zipf_offset = zipf_offset
        self.canary_window = canary_window
        rng = random.Random(f"world/{WORLD_VERSION}/{seed}")
        taken = {w for pair in lx.AGREEMENT_NOUNS + lx.ATTRACTORS for w in pair}
        taken |= set(lx.PROFESSIONS) | set(lx.COLOURS) | {w for ws in lx.TOPICS.values() for w in ws}
        countries = lx.unique_words(rng, 16, taken, (2, 2), suffix="ia")
        self.relations: dict[str, Relation] = {
            "country": Relation("country", "city", "{e} is a city in", "The city of {e} lies in {a}.", tuple(countries)),
            "profession": Relation("profession", "person", "{e} works as a", "{e} is a {a}.", lx.PROFESSIONS),
            "colour": Relation("colour", "element", "The element {e} is", "{e} has a {a} colour.", lx.COLOURS),
        }
        cities = lx.unique_words(rng, n_cities, taken, (2, 3))
        firsts = lx.unique_words(rng, n_persons, taken, (2, 2))
        lasts = lx.unique_words(rng, n_persons, taken, (2, 3))
        persons = [f"{a} {b}" for a, b in zip(firsts, lasts)]
        elements = lx.unique_words(rng, n_elements, taken, (2, 2), suffix="ium", capitalize=False)
        self.spelling_words: tuple[str, ...] = tuple(lx.unique_words(rng, 200, taken, (2, 2), capitalize=False))
        self._facts = self._make_facts(rng, {"country": cities, "profession": persons, "colour": elements}, heldout_fraction)
        self._trained = [f for f in self._facts if f.split != "heldout"]
        self._cum = list(itertools.accumulate(f.probability for f in self._trained))
        self._canaries = tuple(
            Canary(lx.canary_string(rng), r) for r in canary_repetitions for _ in range(canaries_per_level)
        )
        self._controls = tuple(Canary(lx.canary_string(rng), 0) for _ in range(n_controls))
        self._schedule = self._make_schedule(rng)

    # ------------------------------------------------------------------ construction
    def _make_facts(self, rng: random.Random, entities: dict[str, list[str]], heldout_fraction: float) -> tuple[Fact, ...]:
        raw: list[tuple[str, str, str, bool]] = []
        for rel, names in entities.items():
            answers = self.relations[rel].answers
            n_held = round(len(names) * heldout_fraction)
            for i, e in enumerate(names):
                raw.append((e, rel, rng.choice(answers), i < n_held))
        trained = [r for r in raw if not r[3]]
        order = list(range(len(trained)))
        rng.shuffle(order)
        weights = [(rank + self.zipf_offset) ** -self.zipf_alpha for rank in range(len(trained))]
        total = sum(weights)
        n = len(trained)
        facts: list[Fact] = []
        for rank, i in enumerate(order):
            e, rel, a, _ = trained[i]
            split = "frequent" if rank < n // 8 else "medium" if rank < n * 3 // 8 else "rare"
            facts.append(Fact(e, rel, a, rank, split, weights[rank] / total, self.relations[rel].prompt.format(e=e)))
        for e, rel, a, held in raw:
            if held:
                facts.append(Fact(e, rel, a, -1, "heldout", 0.0, self.relations[rel].prompt.format(e=e)))
        return tuple(facts)

    def _make_schedule(self, rng: random.Random) -> dict[int, list[int]]:
        schedule: dict[int, list[int]] = {}
        w = self.canary_window
        for ci, c in enumerate(self._canaries):
            phase = rng.random()
            for j in range(c.repetitions):
                schedule.setdefault(int((j + phase) * w / c.repetitions), []).append(ci)
        return schedule

    # ------------------------------------------------------------------ public data
    @property
    def facts(self) -> tuple[Fact, ...]:
        """All facts, trained ones in Zipf-rank order, then the held-out ones."""
        return self._facts

    def facts_by_split(self, split: str) -> list[Fact]:
        """Facts of one split (``frequent``, ``medium``, ``rare`` or ``heldout``)."""
        if split not in SPLITS:
            raise ValueError(f"unknown fact split {split!r}; choose one of {SPLITS}")
        return [f for f in self._facts if f.split == split]

    @property
    def canaries(self) -> tuple[Canary, ...]:
        """Canaries placed in the stream, with their repetition counts."""
        return self._canaries

    @property
    def controls(self) -> tuple[Canary, ...]:
        """Canary-like strings that never occur in the stream (``repetitions == 0``)."""
        return self._controls

    @cached_property
    def first_letter_words(self) -> tuple[tuple[str, str], ...]:
        """``(word, first letter)`` pairs; spelling documents state each word's first letter."""
        return tuple((w, w[0]) for w in self.spelling_words)

    @property
    def topics(self) -> tuple[str, ...]:
        """Topic class names (probing labels are indices into this tuple)."""
        return tuple(lx.TOPICS)

    @property
    def entity_types(self) -> tuple[str, ...]:
        """Entity type names (the ``entity_type`` probing labels)."""
        return tuple(r.entity_type for r in self.relations.values())

    # ------------------------------------------------------------------ generators
    def topic_sentence(self, rng: random.Random, topic: int, pronoun: int) -> str:
        """One sentence about ``topics[topic]`` using pronoun ``PRONOUNS[pronoun]``."""
        words = lx.TOPICS[self.topics[topic]]
        a, b = rng.sample(words, 2)
        p = lx.PRONOUNS[pronoun]
        return rng.choice(lx.TOPIC_TEMPLATES).format(P=p.capitalize(), p=p, a=a, b=b)

    def probing_examples(self, n: int = 400, kind: str = "topic", split: str = "balanced", seed: int = 0) -> list[ProbeExample]:
        """Labelled sentences for probes.

        ``kind="topic"``: label = topic index, spurious = pronoun; in ``split="train"`` the
        pronoun follows :data:`TOPIC_SPURIOUS` 90% of the time (as in the stream), in
        ``split="balanced"`` it is independent of the topic (SCR/TPP-style evaluation).
        ``kind="entity_type"``: label = entity type of a trained entity, spurious = -1.
        """
        if split not in ("train", "balanced"):
            raise ValueError(f"unknown probing split {split!r}; use 'train' or 'balanced'")
        rng = random.Random(f"probe/{self.seed}/{kind}/{split}/{seed}")
        out: list[ProbeExample] = []
        if kind == "topic":
            for _ in range(n):
                t = rng.randrange(len(self.topics))
                pro = self._spurious_for(rng, t) if split == "train" else rng.randrange(2)
                out.append(ProbeExample(self.topic_sentence(rng, t, pro), t, self.topics[t], pro))
        elif kind == "entity_type":
            types = self.entity_types
            rels = list(self.relations.values())
            for _ in range(n):
                f = self._trained[rng.randrange(len(self._trained))]
                label = types.index(self.relations[f.relation].entity_type)
                tpl = rng.choice(("People often talk about {e}.", "I read a note about {e}.", "{e} was mentioned again."))
                out.append(ProbeExample(tpl.format(e=f.entity), label, rels[label].entity_type, -1))
        else:
            raise ValueError(f"unknown probing kind {kind!r}; use 'topic' or 'entity_type'")
        return out

    def _spurious_for(self, rng: random.Random, topic: int) -> int:
        want = TOPIC_SPURIOUS[self.topics[topic]]
        return want if rng.random() < SPURIOUS_RATE else 1 - want

    def sample_fact(self, rng: random.Random) -> Fact:
        """A trained fact drawn from the Zipf law."""
        i = bisect.bisect_left(self._cum, rng.random() * self._cum[-1])
        return self._trained[min(i, len(self._trained) - 1)]

    def _fact_doc(self, rng: random.Random) -> tuple[str, tuple[Fact, ...]]:
        parts, facts = [], []
        for _ in range(rng.randint(1, 3)):
            f = self.sample_fact(rng)
            rel = self.relations[f.relation]
            parts.append(f.sentence if rng.random() < 0.75 else rel.alt_sentence.format(e=f.entity, a=f.answer))
            facts.append(f)
        return " ".join(parts), tuple(facts)

    def _doc_text(self, rng: random.Random, kind: str) -> str:
        if kind == "arithmetic":
            lines = []
            for _ in range(rng.randint(3, 5)):
                a, b = rng.randint(10, 99), rng.randint(10, 99)
                lines.append(f"{a}+{b}={a + b}")
            return "\n".join(lines)
        if kind == "sequence":
            start, step = rng.randint(0, 40), rng.randint(1, 9)
            return "seq: " + ", ".join(str(start + i * step) for i in range(7)) + "."
        if kind == "agreement":
            return " ".join(self.agreement_sentence(rng)[0] for _ in range(rng.randint(2, 3)))
        if kind == "topic":
            t = rng.randrange(len(self.topics))
            pro = self._spurious_for(rng, t)
            return " ".join(self.topic_sentence(rng, t, pro) for _ in range(rng.randint(1, 2)))
        if kind == "spelling":
            words = rng.sample(self.spelling_words, rng.randint(2, 3))
            return " ".join(f"{w} starts with {w[0]}." for w in words)
        raise ValueError(f"unknown document kind {kind!r}")

    def agreement_sentence(self, rng: random.Random) -> tuple[str, str, str, int]:
        """``(sentence, prefix, wrong_verb, plural)`` for one agreement sentence."""
        subj = rng.choice(lx.AGREEMENT_NOUNS)
        attr = rng.choice(lx.ATTRACTORS)
        verb = rng.choice(lx.AGREEMENT_VERBS)
        plural, attr_plural = rng.randrange(2), rng.randrange(2)
        prefix = f"The {subj[plural]} near the {attr[attr_plural]}"
        sentence = f"{prefix} {verb[plural]} {rng.choice(lx.ADVERBS)}."
        return sentence, prefix, verb[1 - plural], plural

    def document(self, index: int) -> Document:
        """Document ``index`` of the stream (random access, deterministic)."""
        if index in self._schedule:
            return Document(index, "canary", "\n".join(self._canaries[c].text for c in self._schedule[index]))
        rng = random.Random((self.seed << 40) + index)
        kind = rng.choices(list(DOC_KINDS), weights=list(DOC_KINDS.values()))[0]
        if kind == "fact":
            text, facts = self._fact_doc(rng)
            return Document(index, kind, text, facts)
        return Document(index, kind, self._doc_text(rng, kind))

    def canary_occurrences(self, n_docs: int) -> dict[str, int]:
        """How often each canary occurs in documents ``[0, n_docs)`` (keyed by its text)."""
        counts = {c.text: 0 for c in self._canaries}
        for i, cs in self._schedule.items():
            if i < n_docs:
                for j in cs:
                    counts[self._canaries[j].text] += 1
        return counts

    def documents(self, start: int = 0, stop: int | None = None) -> Iterator[Document]:
        """Stream documents ``[start, stop)``; unbounded when ``stop`` is None."""
        it = itertools.count(start) if stop is None else range(start, stop)
        for i in it:
            yield self.document(i)

    def describe(self) -> dict[str, object]:
        """A JSON-able summary (counts per split, canary levels) for manifests and docs."""
        return {
            "world_version": self.version,
            "seed": self.seed,
            "facts": {s: len(self.facts_by_split(s)) for s in SPLITS},
            "relations": {k: {"entity_type": r.entity_type, "n_answers": len(r.answers)} for k, r in self.relations.items()},
            "zipf_alpha": self.zipf_alpha,
            "zipf_offset": self.zipf_offset,
            "canary_window": self.canary_window,
            "canary_repetitions": sorted({c.repetitions for c in self._canaries}),
            "n_canaries": len(self._canaries),
            "n_controls": len(self._controls),
            "doc_kinds": DOC_KINDS,
        }


def world_for(seed: int, tiny: bool) -> World:
    """The world of a zoo build: the default ``World(seed)``, or a miniature one for tiny builds
    (``harness zoo build --tiny``; a built model's ``zoo_model.json`` records both under ``build``)."""
    if tiny:
        return World(seed, n_cities=60, n_persons=40, n_elements=30, canary_window=250, canary_repetitions=(1, 4, 16), canaries_per_level=1, n_controls=2)
    return World(seed)
