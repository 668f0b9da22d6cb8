"""Fast built-in evaluation of zoo checkpoints (no lm-eval needed).

* task accuracy: the same zero-shot multiple-choice scoring as lm-eval's ``acc`` (sum of
  continuation log-probabilities, argmax over choices), on the docs of
  :func:`harness.zoo.tasks.task_specs`; each context is preceded by ``<|endoftext|>`` as
  every training document is;
* canary memorisation: a canary is *k-extractable* when greedy decoding from its prefix
  reproduces its suffix token for token; also the teacher-forced suffix token accuracy;
* held-out loss: mean next-token loss on stream documents far beyond the training window.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from harness.zoo.world import Canary, World

EVAL_LOSS_START = 50_000_000  # document index of the held-out loss slice (never trained on)


def _load(path: str | Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path))
    model.eval()
    return model, AutoTokenizer.from_pretrained(str(path))


def choice_logprobs(model: Any, tokenizer: Any, pairs: list[tuple[str, str]], batch_size: int = 128) -> list[float]:
    """Sum of log p(continuation | <eos> + context) for each ``(context, continuation)``."""
    import torch

    eos = tokenizer.eos_token_id
    seqs, spans = [], []
    for ctx, cont in pairs:
        c = tokenizer(ctx, add_special_tokens=False).input_ids
        k = tokenizer(cont, add_special_tokens=False).input_ids
        seqs.append([eos, *c, *k])
        spans.append((1 + len(c), 1 + len(c) + len(k)))
    out: list[float] = []
    with torch.no_grad():
        for i in range(0, len(seqs), batch_size):
            chunk = seqs[i : i + batch_size]
            width = max(map(len, chunk))
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, s in enumerate(chunk):
                ids[j, : len(s)] = torch.tensor(s)
                mask[j, : len(s)] = 1
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            for j, s in enumerate(chunk):
                a, b = spans[i + j]
                tgt = torch.tensor(s[a:b])
                out.append(float(logp[j, a - 1 : b - 1].gather(-1, tgt[:, None]).sum()))
    return out


def task_accuracy(model: Any, tokenizer: Any, docs: list[dict[str, Any]]) -> float:
    """lm-eval-style ``acc`` of ``model`` on multiple-choice ``docs`` (context/choices/gold)."""
    pairs = [(d["context"], c) for d in docs for c in d["choices"]]
    scores = choice_logprobs(model, tokenizer, pairs)
    hits, k = 0, 0
    for d in docs:
        n = len(d["choices"])
        s = scores[k : k + n]
        k += n
        hits += int(max(range(n), key=s.__getitem__) == d["gold"])
    return hits / max(1, len(docs))


def canary_memorisation(model: Any, tokenizer: Any, canaries: list[Canary]) -> list[tuple[bool, float]]:
    """For each canary ``(extracted, suffix_token_accuracy)``: greedy k-extraction of the suffix
    from ``<eos> + prefix``, and the teacher-forced fraction of suffix tokens that are the argmax.
    Canaries are batched by (prefix, suffix) token lengths, so no padding is needed."""
    import torch

    enc = [([tokenizer.eos_token_id, *tokenizer(c.prefix, add_special_tokens=False).input_ids], tokenizer(c.suffix, add_special_tokens=False).input_ids) for c in canaries]
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (pre, suf) in enumerate(enc):
        groups[(len(pre), len(suf))].append(i)
    out: list[tuple[bool, float]] = [(False, 0.0)] * len(canaries)
    with torch.no_grad():
        for (lp, ls), idx in groups.items():
            pre = torch.tensor([enc[i][0] for i in idx])
            suf = torch.tensor([enc[i][1] for i in idx])
            pred = model(input_ids=torch.cat([pre, suf], 1)).logits[:, lp - 1 : -1].argmax(-1)
            tok_acc = (pred == suf).float().mean(1)
            ids = pre
            for _ in range(ls):
                ids = torch.cat([ids, model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
            hit = (ids[:, lp:] == suf).all(1)
            for k, i in enumerate(idx):
                out[i] = (bool(hit[k]), float(tok_acc[k]))
    return out


def heldout_loss(model: Any, tokenizer: Any, world: World, n_docs: int = 300) -> float:
    """Mean next-token loss on documents ``[EVAL_LOSS_START, +n_docs)`` of the stream."""
    texts = [d.text for d in world.documents(EVAL_LOSS_START, EVAL_LOSS_START + n_docs)]
    return text_loss(model, tokenizer, texts)[0]


#: Logits elements (rows x positions x vocab) one :func:`text_loss` forward pass may hold (128 MiB in fp32).
MAX_LOGITS_ELEMENTS = 2**25


def text_loss(model: Any, tokenizer: Any, texts: list[str], *, batch_size: int = 64, max_length: int | None = None,
              max_logits_elements: int = MAX_LOGITS_ELEMENTS) -> tuple[float, int]:
    """``(mean next-token loss in nats, predicted tokens)`` over ``texts``, each preceded by EOS (as every
    zoo training document is) and cut to ``max_length`` tokens (default: the model's positions).

    Documents go ``batch_size`` at a time; a batch whose logits would exceed ``max_logits_elements``
    (a large vocabulary or long documents) runs in smaller row chunks (same sum up to float rounding)."""
    import torch

    limit = max_length or getattr(model.config, "max_position_embeddings", None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    seqs = [[tokenizer.eos_token_id, *ids][:limit] for ids in tokenizer(texts, add_special_tokens=False).input_ids]
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    vocab = int(head.weight.shape[0]) if getattr(head, "weight", None) is not None else int(model.config.vocab_size)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(seqs), batch_size):
            group = seqs[i : i + batch_size]
            rows = max(1, min(len(group), max_logits_elements // max(max(map(len, group)) * vocab, 1)))
            for j in range(0, len(group), rows):
                chunk = group[j : j + rows]
                width = max(map(len, chunk))
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for k, s in enumerate(chunk):
                    ids[k, : len(s)] = torch.tensor(s)
                    mask[k, : len(s)] = 1
                ids, mask = ids.to(device), mask.to(device)
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
                labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
                total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum", ignore_index=-100))
                count += int(mask[:, 1:].sum())
                del logits
    return total / max(count, 1), count


def evaluate_checkpoint(path: str | Path, world: World, tasks: list[Any] | None = None) -> dict[str, Any]:
    """Task accuracies, canary memorisation by repetition count, controls and held-out loss."""
    from harness.zoo.tasks import task_specs

    model, tok = _load(path)
    tasks = tasks if tasks is not None else task_specs(world)
    acc = {t.name: round(task_accuracy(model, tok, t.docs), 4) for t in tasks}
    ext: dict[int, list[float]] = defaultdict(list)
    tacc: dict[int, list[float]] = defaultdict(list)
    allc = [*world.canaries, *world.controls]
    for c, (e, a) in zip(allc, canary_memorisation(model, tok, allc)):
        ext[c.repetitions].append(float(e))
        tacc[c.repetitions].append(a)
    return {
        "tasks": acc,
        "canary_extracted": {str(r): round(sum(v) / len(v), 3) for r, v in sorted(ext.items())},
        "canary_token_acc": {str(r): round(sum(v) / len(v), 3) for r, v in sorted(tacc.items())},
        "heldout_loss": round(heldout_loss(model, tok, world), 4),
    }


def evaluate_model_dir(model_dir: str | Path, revisions: list[str], world: World) -> dict[str, Any]:
    """:func:`evaluate_checkpoint` for each existing revision folder of one model."""
    from harness.zoo.tasks import task_specs

    tasks = task_specs(world)
    d = Path(model_dir)
    return {r: evaluate_checkpoint(d / r, world, tasks) for r in revisions if (d / r).exists()}

