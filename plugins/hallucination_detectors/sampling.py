"""Greedy + K temperature samples per question from a causal LM, with what detectors read.

For each question: the greedy answer (judged against the truth and its aliases) and K sampled answers, each cut at
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
    #: Every accepted answer (``truth`` first); the greedy answer is right when it matches one (normalised).
    aliases: tuple[str, ...] = ()


def _answer_length(tokenizer, ids: list[int]) -> int:
    """Tokens of a continuation up to and including the first one that ends the answer."""
    for i, t in enumerate(ids):
        s = tokenizer.decode([t])
        if "." in s or "\n" in s or t == tokenizer.eos_token_id:
            return max(i, 1)  # the stop token itself is not part of the answer
    return len(ids)


@torch.no_grad()
def sample_questions(
    model, tokenizer, prompts: list[str], answers: list[tuple[str, ...]], *, k: int, temperature: float,
    max_new_tokens: int, layer: int, pooling: str, generator: torch.Generator,
) -> list[QuestionSamples]:
    """Greedy + K samples for prompts of equal token length, in one batch of ``len(prompts) x (K + 1)`` rows
    (no padding, so each row computes exactly what it would alone)."""
    return _sample_groups(model, tokenizer, prompts, answers, [len(prompts)], [generator], k=k, temperature=temperature,
                          max_new_tokens=max_new_tokens, layer=layer, pooling=pooling)


@torch.no_grad()
def _sample_groups(
    model, tokenizer, prompts: list[str], answers: list[tuple[str, ...]], sizes: list[int],
    generators: list[torch.Generator], *, k: int, temperature: float, max_new_tokens: int, layer: int, pooling: str,
) -> list[QuestionSamples]:
    """:func:`sample_questions` for consecutive groups of the prompts (``sizes``), all in one forward batch, each
    group's samples drawn from its own generator, exactly as if each group were sampled alone with it."""
    enc = [tokenizer(pr, return_tensors="pt").input_ids for pr in prompts]
    p = enc[0].shape[1]
    if any(e.shape[1] != p for e in enc):
        raise ValueError("sample_questions needs prompts of equal token length (sample_facts groups them).")
    ids = torch.cat([e.repeat(k + 1, 1) for e in enc]).to(model.device)  # per question: row 0 greedy, 1..k sampled
    greedy_rows = torch.arange(0, len(prompts) * (k + 1), k + 1, device=ids.device)
    is_greedy = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    is_greedy[greedy_rows] = True
    bounds = [0]
    for n in sizes:
        bounds.append(bounds[-1] + n * k)  # each group's rows among the sampled (non-greedy) rows
    for _ in range(max_new_tokens):
        logits = model(ids, logits_to_keep=1).logits[:, -1].float()  # the last position's only
        nxt = logits.argmax(-1, keepdim=True)
        probs = torch.softmax(logits[~is_greedy] / temperature, dim=-1).cpu()
        drawn = [torch.multinomial(probs[lo:hi], 1, generator=g) for lo, hi, g in zip(bounds, bounds[1:], generators)]
        nxt[~is_greedy] = torch.cat(drawn).to(ids.device)
        ids = torch.cat([ids, nxt], dim=1)
    out = model(ids, output_hidden_states=True, logits_to_keep=max_new_tokens + 1)
    logp = torch.log_softmax(out.logits.float(), dim=-1)  # positions p - 1 .. p + max_new_tokens - 1
    hidden = out.hidden_states[layer].float()
    results = []
    for q, (prompt, aliases) in enumerate(zip(prompts, answers)):
        texts, lps, embs = [], [], []
        greedy_text = ""
        for row in range(q * (k + 1), (q + 1) * (k + 1)):
            cont = ids[row, p:].tolist()
            n = _answer_length(tokenizer, cont)
            text = tokenizer.decode(cont[:n]).strip()
            if row == q * (k + 1):
                greedy_text = text
                continue
            pos = torch.arange(p, p + n)
            lps.append(logp[row, pos - p, ids[row, pos]].tolist())  # logp's position j is p - 1 + j
            h = hidden[row, p + n - 1] if pooling == "last" else hidden[row, p : p + n].mean(0)
            embs.append(h.cpu().numpy())
            texts.append(text)
        results.append(QuestionSamples(
            prompt=prompt, truth=aliases[0], greedy=greedy_text,
            hallucinated=normalise_answer(greedy_text) not in {normalise_answer(a) for a in aliases},
            texts=texts, token_logprobs=lps, embeddings=np.stack(embs).astype(np.float64), aliases=tuple(aliases),
        ))  # fmt: skip
    return results


def sample_facts(loaded, facts, *, k: int, temperature: float, max_new_tokens: int, pooling: str, seed: int,
                 progress=lambda it, **kw: it, batch_questions: int = 16, max_rows: int = 2048) -> list[QuestionSamples]:
    """Samples for each world fact (``.prompt`` / ``.answer``): :func:`sample_prompts`."""
    return sample_prompts(loaded, [f.prompt for f in facts], [(f.answer,) for f in facts], k=k, temperature=temperature,
                          max_new_tokens=max_new_tokens, pooling=pooling, seed=seed, progress=progress,
                          batch_questions=batch_questions, max_rows=max_rows)


def sample_prompts(loaded, prompts: list[str], answers: list[tuple[str, ...]], *, k: int, temperature: float,
                   max_new_tokens: int, pooling: str, seed: int, progress=lambda it, **kw: it,
                   batch_questions: int = 16, max_rows: int = 2048) -> list[QuestionSamples]:
    """Samples for each prompt with its accepted answers (first = the truth shown), in the prompts' order;
    middle layer = n_layers // 2 + 1 hidden state. Prompts of the same token length are sampled together,
    up to ``batch_questions`` at a time (batches in order of first appearance; one generator, seeded).

    Speed: consecutive chunks of one prompt length run as one forward batch of at most ``max_rows`` rows
    (questions x (K + 1)), each chunk drawing from its own copy of the generator at the state it had when
    the chunks ran one after another (:func:`_replay`), so the answers are those of sampling chunk by
    chunk; rows do not interact (no padding), and on the CPU builds tested each row's numbers do not depend
    on the batch (tests/test_hallucination.py checks it)."""
    if len(prompts) != len(answers) or any(not a for a in answers):
        raise ValueError("sample_prompts needs one non-empty tuple of accepted answers per prompt.")
    model, tok = loaded.model, loaded.require_tokenizer()
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    layer = loaded.n_layers // 2 + 1 if loaded.n_layers > 1 else 1
    by_len: dict[int, list[int]] = {}
    for i, pr in enumerate(prompts):
        by_len.setdefault(len(tok(pr).input_ids), []).append(i)
    chunks = [idx[j : j + batch_questions] for idx in by_len.values() for j in range(0, len(idx), batch_questions)]
    vocab = model.get_output_embeddings().weight.shape[0]
    out: list[QuestionSamples | None] = [None] * len(prompts)
    for batch in progress(_merge(chunks, by_len, max_rows // (k + 1)), desc="sampling"):
        gens = [_replay(gen, len(c) * k, vocab, max_new_tokens) for c in batch]
        flat = [i for c in batch for i in c]
        done = _sample_groups(model, tok, [prompts[i] for i in flat], [answers[i] for i in flat], [len(c) for c in batch],
                              gens, k=k, temperature=temperature, max_new_tokens=max_new_tokens, layer=layer,
                              pooling=pooling)
        for i, q in zip(flat, done):
            out[i] = q
    return [q for q in out if q is not None]


def _merge(chunks: list[list[int]], by_len: dict[int, list[int]], max_questions: int) -> list[list[list[int]]]:
    """Consecutive chunks of one prompt length, merged into forward batches of at most ``max_questions``
    questions (at least one chunk each)."""
    length = {i: n for n, idx in by_len.items() for i in idx}
    batches: list[list[list[int]]] = []
    for c in chunks:
        last = batches[-1] if batches else None
        if last and length[last[0][0]] == length[c[0]] and sum(map(len, last)) + len(c) <= max_questions:
            last.append(c)
        else:
            batches.append([c])
    return batches


def _replay(gen: torch.Generator, rows: int, vocab: int, steps: int) -> torch.Generator:
    """A generator in ``gen``'s current state, for one chunk; ``gen`` is advanced past that chunk's draws
    (``steps`` multinomial draws of ``rows`` rows over ``vocab``: what it consumes depends on the shape only),
    so every chunk draws exactly the numbers it drew when chunks were sampled one after another."""
    own = torch.Generator().manual_seed(0)
    own.set_state(gen.get_state())
    dummy = torch.ones(rows, vocab)
    for _ in range(steps):
        torch.multinomial(dummy, 1, generator=gen)
    return own
