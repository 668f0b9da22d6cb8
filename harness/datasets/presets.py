"""Named presets: SAEBench's and INSIDE's data sets as ``hf`` configs with their column mappings.

A user with network access (or a filled Hugging Face cache) types one name, e.g.
``probe_sets: [bias_in_bios_set1, ag_news]``; every field of the ``hf`` config can still be
overridden (``{dataset: trivia_qa, config: {limit: 500}}``). Columns and chosen classes follow
SAEBench's ``dataset_info`` / ``dataset_utils`` and INSIDE's QA sets.

Not preset, and why: SAEBench's Europarl probing set reads one row's translations into
several languages (a row is many examples), and CoQA is conversational (a row is many
questions): neither is one row -> one item. Convert them to a local jsonl first.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.datasets.providers import HFDataset


def _preset(preset: str, roles: tuple[str, ...], description: str, **defaults: Any) -> type[HFDataset]:
    """An ``hf`` subclass whose config has ``defaults`` as its field defaults."""
    fields = HFDataset.Config.model_fields
    annotations = {k: fields[k].annotation for k in defaults}
    namespace: dict[str, Any] = {"__annotations__": annotations, "__module__": __name__}
    for k, v in defaults.items():
        namespace[k] = Field(v, description=fields[k].description)
    config = type("Config", (HFDataset.Config,), namespace)
    attrs: dict[str, Any] = {"name": preset, "roles": roles, "description": description, "Config": config,
                             "__module__": __name__}
    return type(f"Preset_{preset}", (HFDataset,), attrs)


_BIOS = dict(path="LabHC/bias_in_bios", split="train", test_split="test", text_column="hard_text",
             label_column="profession", spurious_column="gender", streaming=False)
_AMAZON = dict(path="canrager/amazon_reviews_mcauley_1and5", split="train", test_split="test", text_column="text",
               streaming=False)

PRESETS: tuple[type[HFDataset], ...] = (
    _preset("openwebtext", ("corpus",), "OpenWebText (SAEBench's core-eval text).", path="Skylion007/openwebtext"),
    _preset("bias_in_bios_set1", ("labelled",), "SAEBench probing: bias_in_bios professions 0,1,2,6,9; gender as the "
            "spurious label (SCR / TPP).", classes=["0", "1", "2", "6", "9"], **_BIOS),
    _preset("bias_in_bios_set2", ("labelled",), "SAEBench probing: bias_in_bios professions 11,13,14,18,19.",
            classes=["11", "13", "14", "18", "19"], **_BIOS),
    _preset("bias_in_bios_set3", ("labelled",), "SAEBench probing: bias_in_bios professions 20,21,22,25,26.",
            classes=["20", "21", "22", "25", "26"], **_BIOS),
    _preset("amazon_reviews_category", ("labelled",), "SAEBench probing: Amazon review categories 1,2,3,5,6; rating "
            "as the spurious label (SCR / TPP).", label_column="category", spurious_column="rating",
            classes=["1", "2", "3", "5", "6"], **_AMAZON),
    _preset("amazon_reviews_sentiment", ("labelled",), "SAEBench probing: Amazon review rating 1 vs 5.",
            label_column="rating", classes=["1.0", "5.0"], **_AMAZON),
    _preset("ag_news", ("labelled",), "SAEBench probing: AG News topics.", path="fancyzhx/ag_news", split="train",
            test_split="test", streaming=False),
    _preset("github_code", ("labelled",), "SAEBench probing: GitHub code language (C, Python, HTML, Java, PHP); "
            "streamed, a seeded test_fraction split.", path="codeparrot/github-code", text_column="code",
            label_column="language", classes=["C", "Python", "HTML", "Java", "PHP"], limit=20000),
    _preset("trivia_qa", ("qa",), "INSIDE's TriviaQA (rc.nocontext validation; answer aliases).",
            path="mandarjoshi/trivia_qa", name="rc.nocontext", split="validation", answers_column="answer.aliases"),
    _preset("nq_open", ("qa",), "INSIDE's Natural Questions (open-domain validation).",
            path="google-research-datasets/nq_open", split="validation", answers_column="answer"),
    _preset("squad", ("qa",), "INSIDE's SQuAD (validation questions, closed book: the context is not shown).",
            path="rajpurkar/squad", split="validation", answers_column="answers.text"),
)
"""Every preset, in the order ``harness datasets`` lists them."""

