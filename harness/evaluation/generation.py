"""Generation-based exact-match scoring (greedy decoding), next to lm-eval's log-likelihood
scoring: for suites that ask "does the model *say* the answer", e.g. rare-fact recall.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

_TOKEN = re.compile(r"\w+|[^\w\s]")


def _is_word(tok: str) -> bool:
    return tok[0].isalnum() or tok[0] == "_"


def _tokens(text: str) -> list[str]:
    toks = _TOKEN.findall(text.lower())
    start, end = 0, len(toks)
    while start < end and not _is_word(toks[start]):
        if toks[start] in ("+", "-") and start + 1 < end and toks[start + 1][0].isdigit():
            break  # keep the sign of a number
        start += 1
    while end > start and not _is_word(toks[end - 1]):
        end -= 1
    return toks[start:end]


def normalise_answer(text: str) -> str:
    """Lower-case, words and punctuation marks separated by one space, leading and trailing
    punctuation dropped (a leading sign of a number is kept): ``" Paris."`` -> ``"paris"``."""
    return " ".join(_tokens(text))


@dataclass(frozen=True)
class ExactMatchItem:
    """One scored prompt."""

    prompt: str
    target: str
    prediction: str
    correct: bool


def _matches(prediction: str, target: str, match: Literal["exact", "prefix"]) -> bool:
    pred, tgt = _tokens(prediction), _tokens(target)
    if not tgt:
        return not pred
    return pred == tgt if match == "exact" else pred[: len(tgt)] == tgt


def generate_exact_match(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    targets: Sequence[str],
    max_new_tokens: int | None = None,
    batch_size: int = 16,
    *,
    match: Literal["exact", "prefix"] = "prefix",
    stop: Sequence[str] = ("\n",),
    intervention: Any = None,
    add_special_tokens: bool = False,
) -> tuple[float, list[ExactMatchItem]]:
    """Greedy-generate a continuation of each prompt and compare it with its target.

    The generation is cut at the first ``stop`` string, then both sides are normalised
    (:func:`normalise_answer`). ``match="exact"``: the whole cut generation must equal the
    target; ``"prefix"`` (default): it must *start with* the target's words, so
    ``"france . rome is in"`` counts for target ``"France"`` (word boundary respected:
    ``"frances"`` does not).

    ``max_new_tokens`` defaults to the longest target's token count + 2. Prompts are
    left-padded and batched; ``intervention`` (as in :func:`evaluate_tasks`) is active
    throughout. Returns (accuracy, per-item results in input order).
    """
    import torch

    from harness.evaluation.bridge import _intervention_context, intervention_id

    if len(prompts) != len(targets):
        raise ValueError(f"prompts ({len(prompts)}) and targets ({len(targets)}) differ in length.")
    if not prompts:
        return 0.0, []
    intervention_id(intervention)  # fail early on an intervention without a stable id
    if max_new_tokens is None:
        max_new_tokens = 2 + max(len(tokenizer(" " + t, add_special_tokens=False)["input_ids"]) for t in targets)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("tokenizer has neither a pad nor an eos token; set tokenizer.pad_token first.")

    device = next(model.parameters()).device
    was_training = model.training
    items: list[ExactMatchItem] = []
    try:
        model.eval()
        with _intervention_context(intervention, model), torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                batch = list(prompts[start : start + batch_size])
                # left-pad by hand so the tokenizer's padding_side is left untouched
                enc = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in batch]
                width = max(len(e) for e in enc)
                ids = torch.tensor([[pad_id] * (width - len(e)) + list(e) for e in enc], device=device)
                mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=device)
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad_id,
                )
                for i, prompt in enumerate(batch):
                    text = tokenizer.decode(out[i, width:], skip_special_tokens=True)
                    for s in stop:
                        text = text.split(s, 1)[0] if s else text
                    target = targets[start + i]
                    items.append(ExactMatchItem(prompt, target, text, _matches(text, target, match)))
    finally:
        model.train(was_training)
    return sum(it.correct for it in items) / len(items), items
