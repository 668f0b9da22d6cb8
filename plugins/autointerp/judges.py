"""Judges of the detection score: explain a latent from its top windows, then predict which windows fire.

A judge has two calls (SAEBench's generation and scoring phases):

- ``explain(examples) -> str`` from the generation windows (active tokens known);
- ``predict(explanation, windows) -> list[bool] | None``: which scoring windows (shown without
  activations) it believes activate the latent; None when its answer cannot be parsed (SAEBench
  drops that latent).

:class:`BaselineJudge` needs no LLM: the explanation is the latent's top tokens, a window is
predicted active when it contains one of them. :class:`ChatJudge` turns both phases into chat
messages (:func:`explanation_messages`, :func:`scoring_messages`) for any ``complete(messages)``:
:class:`OpenAIJudge` (an OpenAI-compatible HTTP endpoint through the ``openai`` client) and
:class:`HFChatJudge` (a local Hugging Face chat model through transformers).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .examples import Window

Messages = list[dict[str, str]]


class Judge(Protocol):
    """What the metric needs from a judge (see the module docstring)."""

    def explain(self, examples: Sequence[Window]) -> str: ...

    def predict(self, explanation: str, windows: Sequence[Window]) -> list[bool] | None: ...


# --------------------------------------------------------------------------- baseline
class BaselineJudge:
    """No LLM: explanation = the ``n_tokens`` tokens carrying most of the latent's activation in the
    generation windows (only tokens above the active threshold count); prediction = the window
    contains one of them. The explanation text is the decoded tokens, ``|``-separated."""

    def __init__(self, n_tokens: int, decode: Callable[[int], str]) -> None:
        self.n_tokens = n_tokens
        self.decode = decode
        self._tokens: dict[str, frozenset[int]] = {}

    def top_tokens(self, examples: Sequence[Window]) -> list[int]:
        mass: dict[int, float] = defaultdict(float)
        for w in examples:
            for tok, act, on in zip(w.tokens, w.acts, w.active):
                if on:
                    mass[tok] += act
        return sorted(mass, key=lambda t: (-mass[t], t))[: self.n_tokens]

    def explain(self, examples: Sequence[Window]) -> str:
        tokens = self.top_tokens(examples)
        text = " | ".join(repr(self.decode(t)) for t in tokens)
        self._tokens[text] = frozenset(tokens)
        return text

    def predict(self, explanation: str, windows: Sequence[Window]) -> list[bool] | None:
        if explanation not in self._tokens:
            raise KeyError("the baseline judge predicts only from explanations it produced itself (its top tokens).")
        tokens = self._tokens[explanation]
        return [any(t in tokens for t in w.tokens) for w in windows]


# --------------------------------------------------------------------------- chat prompts
EXPLAIN_SYSTEM = (
    "You are helping to interpret a feature (a 'latent') of a sparse autoencoder trained on a language model. "
    "You will see short text excerpts, most strongly activating first; tokens where the latent is active are "
    "wrapped in << and >>. In one short sentence of at most 20 words, say what the latent responds to: a word, "
    "a piece of a word, a kind of token, or a topic. Prefer a general description over a list of words. "
    'Answer in the form "This latent activates on ...".'
)
SCORE_SYSTEM = (
    "You are helping to test an explanation of a feature (a 'latent') of a sparse autoencoder. You will get the "
    "explanation and {n} numbered text excerpts in random order. Reply with the numbers of the excerpts in which "
    "you expect the latent to be active on at least one token, separated by commas (for example \"2, 5\"), or "
    'with "None" if you expect it in none of them. Reply with nothing else.'
)


def _clean(text: str) -> str:
    return text.replace("\ufffd", "").replace("\n", "\u21b5")


def render(window: Window, decode: Callable[[int], str], *, mark: bool) -> str:
    """The window as text; with ``mark`` its active tokens are wrapped in ``<<`` ``>>``."""
    return "".join(
        f"<<{_clean(decode(t))}>>" if mark and on else _clean(decode(t)) for t, on in zip(window.tokens, window.active)
    )


def explanation_messages(examples: Sequence[Window], decode: Callable[[int], str]) -> Messages:
    body = "\n".join(f"{i}. {render(w, decode, mark=True)}" for i, w in enumerate(examples, start=1))
    return [{"role": "system", "content": EXPLAIN_SYSTEM},
            {"role": "user", "content": f"The activating excerpts:\n\n{body}"}]


def scoring_messages(explanation: str, windows: Sequence[Window], decode: Callable[[int], str]) -> Messages:
    body = "\n".join(f"{i}. {render(w, decode, mark=False)}" for i, w in enumerate(windows, start=1))
    return [{"role": "system", "content": SCORE_SYSTEM.format(n=len(windows))},
            {"role": "user", "content": f"Explanation: this latent activates on {explanation}.\n\nExcerpts:\n\n{body}"}]


def parse_explanation(text: str) -> str:
    """What follows the last "activates on" (SAEBench's parse), without a final full stop."""
    return text.split("activates on")[-1].strip().rstrip(".").strip()


def parse_predictions(text: str, n: int) -> list[bool] | None:
    """Comma-separated 1-based numbers (or "None") -> one bool per window; None when unparseable or a
    number is out of range (SAEBench drops such a latent)."""
    parts = [p.strip() for p in re.sub(r"\band\b", ",", text.strip().rstrip(".")).replace("None", "").split(",")]
    parts = [p for p in parts if p]
    if not all(p.isdigit() for p in parts):
        return None
    chosen = {int(p) for p in parts}
    if any(not 1 <= c <= n for c in chosen):
        return None
    return [i in chosen for i in range(1, n + 1)]


class ChatJudge:
    """A judge whose two phases are chat completions by ``complete(messages, max_tokens) -> str``."""

    def __init__(self, decode: Callable[[int], str], explanation_tokens: int, prediction_tokens: int) -> None:
        self.decode = decode
        self.explanation_tokens = explanation_tokens
        self.prediction_tokens = prediction_tokens

    def complete(self, messages: Messages, max_tokens: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def explain(self, examples: Sequence[Window]) -> str:
        return parse_explanation(self.complete(explanation_messages(examples, self.decode), self.explanation_tokens))

    def predict(self, explanation: str, windows: Sequence[Window]) -> list[bool] | None:
        reply = self.complete(scoring_messages(explanation, windows, self.decode), self.prediction_tokens)
        return parse_predictions(reply, len(windows))


class OpenAIJudge(ChatJudge):
    """An OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp, ...) through the ``openai`` client."""

    def __init__(self, settings: Any, decode: Callable[[int], str], explanation_tokens: int, prediction_tokens: int) -> None:
        super().__init__(decode, explanation_tokens, prediction_tokens)
        try:
            import openai
        except ImportError as e:
            raise ImportError(
                'autointerp judge "openai" needs the openai client package. Fix: pip install openai '
                '(or the extra: pip install "harness-interp[autointerp]"), or use judge: baseline.'
            ) from e
        if settings.api_key_env is None:
            key = "unused"  # an endpoint without authentication (a local server); the client wants some key
        else:
            key = os.environ.get(settings.api_key_env, "")
            if not key:
                raise ValueError(
                    f"openai.api_key_env: the environment variable {settings.api_key_env} is not set. Fix: export it "
                    "with the endpoint's API key, or set openai.api_key_env: null for an endpoint without one."
                )
        self.model = settings.model
        self.temperature = settings.temperature
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=key, timeout=settings.timeout_s,
                                    max_retries=settings.max_retries)

    def complete(self, messages: Messages, max_tokens: int) -> str:
        out = self.client.chat.completions.create(model=self.model, messages=messages, max_tokens=max_tokens,
                                                  temperature=self.temperature)
        return (out.choices[0].message.content or "").strip()


class HFChatJudge(ChatJudge):
    """A local Hugging Face chat model (greedy decoding) through transformers' chat templates."""

    def __init__(self, settings: Any, decode: Callable[[int], str], explanation_tokens: int, prediction_tokens: int,
                 device: str = "cpu") -> None:
        super().__init__(decode, explanation_tokens, prediction_tokens)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(settings.model, revision=settings.revision)
        if settings.chat_template is not None:
            self.tokenizer.chat_template = settings.chat_template
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"hf_chat.model: the tokenizer of {settings.model!r} has no chat template. Fix: use a chat model, or "
                "give hf_chat.chat_template (a Jinja template string)."
            )
        self.model = AutoModelForCausalLM.from_pretrained(settings.model, revision=settings.revision).to(device).eval()
        self.device = device

    def complete(self, messages: Messages, max_tokens: int) -> str:
        import torch

        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        if not isinstance(ids, torch.Tensor):  # newer transformers return a BatchEncoding
            ids = ids["input_ids"]
        ids = ids.to(self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                      do_sample=False, pad_token_id=pad)
        return self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
