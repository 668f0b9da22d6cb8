"""Greedy + K temperature samples per question from a causal LM, with what detectors read.

For each question: the greedy answer (judged against the truth) and K sampled answers, each cut at
its first '.' or newline; per sample the answer's token log-probs, its text and a middle-layer
hidden state (last answer token, or the mean over the answer's tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.evaluation.generation import normalise_answer


@dataclass
class QuestionSamples:
    prompt: str
    truth: str
    greedy: str
    hallucinated: bool
    texts: list[str]
    token_logprobs: list[list[float]]
    embeddings: np.ndarray  # [K, d]


def _answer_length(tokenizer, ids: list[int]) -> int:
    """Tokens of a continuation up to and including the first one that ends the answer."""
    for i, t in enumerate(ids):
        s = tokenizer.decode([t])
        if "." in s or "\n" in s or t == tokenizer.eos_token_id:
            return max(i, 1)  # the stop token itself is not part of the answer
    return len(ids)


@torch.no_grad()
def sample_question(
    model, tokenizer, prompt: str, truth: str, *, k: int, temperature: float, max_new_tokens: int,
    layer: int, pooling: str, generator: torch.Generator,
) -> QuestionSamples:
    prompt_ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
    p = prompt_ids.shape[1]
    ids = prompt_ids.repeat(k + 1, 1)  # row 0 greedy, rows 1..k sampled
    for _ in range(max_new_tokens):
        logits = model(ids).logits[:, -1].float()
        greedy = logits[:1].argmax(-1, keepdim=True)
        probs = torch.softmax(logits[1:] / temperature, dim=-1)
        sampled = torch.multinomial(probs.cpu(), 1, generator=generator).to(ids.device)
        ids = torch.cat([ids, torch.cat([greedy, sampled])], dim=1)
    out = model(ids, output_hidden_states=True)
    logp = torch.log_softmax(out.logits.float(), dim=-1)
    hidden = out.hidden_states[layer].float()
    texts, lps, embs = [], [], []
    greedy_text = ""
    for row in range(k + 1):
        cont = ids[row, p:].tolist()
        n = _answer_length(tokenizer, cont)
        text = tokenizer.decode(cont[:n]).strip()
        if row == 0:
            greedy_text = text
            continue
        pos = torch.arange(p, p + n)
        lps.append(logp[row, pos - 1, ids[row, pos]].tolist())
        h = hidden[row, p + n - 1] if pooling == "last" else hidden[row, p : p + n].mean(0)
        embs.append(h.cpu().numpy())
        texts.append(text)
    return QuestionSamples(
        prompt=prompt, truth=truth, greedy=greedy_text,
        hallucinated=normalise_answer(greedy_text) != normalise_answer(truth),
        texts=texts, token_logprobs=lps, embeddings=np.stack(embs).astype(np.float64),
    )


def sample_facts(loaded, facts, *, k: int, temperature: float, max_new_tokens: int, pooling: str, seed: int,
                 progress=lambda it, **kw: it) -> list[QuestionSamples]:
    """Samples for each fact (``.prompt`` / ``.answer``); middle layer = n_layers // 2 + 1 hidden state."""
    model, tok = loaded.model, loaded.require_tokenizer()
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    layer = loaded.n_layers // 2 + 1 if loaded.n_layers > 1 else 1
    return [
        sample_question(model, tok, f.prompt, f.answer, k=k, temperature=temperature,
                        max_new_tokens=max_new_tokens, layer=layer, pooling=pooling, generator=gen)
        for f in progress(facts, desc="sampling")
    ]
