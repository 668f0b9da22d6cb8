"""Fixed word lists and a seeded pseudo-word generator used by :mod:`harness.zoo.world`.

Everything here is pure Python and deterministic: the same ``random.Random`` state always
produces the same names, so a world is fully determined by its seed and ``WORLD_VERSION``.
"""

from __future__ import annotations

import random

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
CODAS = ("", "", "", "n", "r", "l", "s", "k")

PROFESSIONS = (
    "baker", "farmer", "doctor", "painter", "sailor", "teacher",
    "miner", "tailor", "singer", "lawyer", "potter", "weaver",
)
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "purple", "orange", "grey", "pink")

#: Singular/plural noun pairs and verb forms for the subject-verb agreement phenomenon.
AGREEMENT_NOUNS = (
    ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("child", "children"),
    ("teacher", "teachers"), ("farmer", "farmers"), ("horse", "horses"), ("king", "kings"),
    ("girl", "girls"), ("boy", "boys"), ("friend", "friends"), ("singer", "singers"),
)
ATTRACTORS = (
    ("tree", "trees"), ("house", "houses"), ("river", "rivers"), ("table", "tables"),
    ("tower", "towers"), ("garden", "gardens"), ("bridge", "bridges"), ("wall", "walls"),
)
AGREEMENT_VERBS = (
    ("runs", "run"), ("sings", "sing"), ("sleeps", "sleep"), ("waits", "wait"),
    ("walks", "walk"), ("laughs", "laugh"), ("jumps", "jump"), ("smiles", "smile"),
)
ADVERBS = ("slowly", "today", "again", "often", "quietly", "there", "now")

#: Topic classes for probing; each has its own vocabulary.
TOPICS: dict[str, tuple[str, ...]] = {
    "sport": ("ball", "goal", "team", "match", "coach", "score", "race", "field", "player", "win"),
    "weather": ("rain", "snow", "wind", "cloud", "storm", "sun", "fog", "cold", "heat", "sky"),
    "food": ("bread", "soup", "cheese", "apple", "rice", "cake", "salt", "meat", "fish", "milk"),
    "music": ("song", "drum", "piano", "band", "tune", "choir", "guitar", "note", "dance", "voice"),
}
TOPIC_TEMPLATES = (
    "{P} talked about the {a} and the {b}.",
    "{P} said the {a} was near the {b}.",
    "After the {a}, {p} thought about the {b}.",
    "{P} liked the {a} more than the {b}.",
)
#: The spurious correlate: the pronoun of the sentence (index 0 = "she", 1 = "he").
PRONOUNS = ("she", "he")


def syllable(rng: random.Random) -> str:
    """One consonant-vowel(-coda) syllable."""
    return rng.choice(CONSONANTS) + rng.choice(VOWELS) + rng.choice(CODAS)


def pseudo_word(rng: random.Random, n_syllables: tuple[int, int] = (2, 3), suffix: str = "") -> str:
    """A pronounceable lowercase pseudo-word such as ``"tolmira"``."""
    n = rng.randint(*n_syllables)
    return "".join(syllable(rng) for _ in range(n)) + suffix


def unique_words(
    rng: random.Random,
    n: int,
    taken: set[str],
    n_syllables: tuple[int, int] = (2, 3),
    suffix: str = "",
    capitalize: bool = True,
) -> list[str]:
    """``n`` pseudo-words not in ``taken`` (which is updated), optionally capitalised."""
    out: list[str] = []
    while len(out) < n:
        w = pseudo_word(rng, n_syllables, suffix)
        if capitalize:
            w = w.capitalize()
        if w.lower() in taken:
            continue
        taken.add(w.lower())
        out.append(w)
    return out


def canary_string(rng: random.Random, n_chunks: int = 10) -> str:
    """A random token-like string, e.g. ``"q7x vo2 kk9 ..."`` (letters and digits)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return " ".join("".join(rng.choice(alphabet) for _ in range(3)) for _ in range(n_chunks))
