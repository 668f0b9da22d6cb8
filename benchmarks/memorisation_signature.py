"""Is there a *linear* memorisation signature in a zoo model? Three tests beyond the suite's own.

The unlearning suite's ``memorisation_probe_gap`` (LOO accuracy with true minus shuffled
labels, 19 memorised vs 19 non-memorised canaries on zoo-160) is not clearly > 0. This script
checks whether that is a sample-size problem (too few memorised canaries in the world) or a
property of the model, with more data than the world's 60 canaries give:

1. ``windows``: every ``prefix+suffix`` window of every world canary/control, k-extractability
   per window, probe held out **one canary at a time** (leave-one-group-out, so windows of a
   canary never sit on both sides); ~700 windows, ~180 memorised.
2. ``facts``: entity-relation fact sentences of one template and token length, memorised =
   the answer is greedily extracted (k-extractability with a 1-token suffix), balanced.
3. ``finetune``: a copy of the model fine-tuned on ``--canaries`` fresh canaries repeated
   ``--repetitions`` times (mixed 1:2 with ordinary world documents); memorised fresh canaries vs
   as many **never-seen** ones (the easiest contrast), LOO.

Each test prints the probe accuracy with true labels, the mean over shuffled labels and their
difference per depth (``blocks.{i}.hook_resid_post``, L2-logistic as in the suite), for the
trained model and a random-initialised model of the same shape (the control).

    python benchmarks/memorisation_signature.py                    # zoo-160, all three tests (~6 min on 2 cores)
    python benchmarks/memorisation_signature.py --model PATH --tests windows
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any


def _group_out_accuracy(x: Any, y: Any, groups: Any, l2: float) -> float:
    """Held-out accuracy with one fold per group (the probe never trains on the tested group)."""
    import torch

    from harness_plugins.unlearning_suite.probes import masked_accuracy

    return masked_accuracy(x, y, torch.stack([groups != g for g in groups.unique()]), l2)


def _report(name: str, model: Any, tokens: Any, y: Any, prefix_len: int, pooling: str, accuracy: Callable, shuffles: int) -> list[str]:
    import torch

    from harness.unlearning.data import pooled_activations

    hf = getattr(model, "model", model)
    points = [f"blocks.{i}.hook_resid_post" for i in range(hf.config.num_hidden_layers)]
    acts = pooled_activations(hf, tokens, points, pooling, prefix_len=prefix_len)
    cells = []
    for d in range(len(points)):
        true = accuracy(acts[d], y)
        shuffled = [accuracy(acts[d], y[torch.randperm(len(y), generator=torch.Generator().manual_seed(s))]) for s in range(shuffles)]
        mean = sum(shuffled) / len(shuffled)
        cells.append(f"{true:.2f} / {mean:.2f} ({true - mean:+.2f})")
    return [name, pooling, *cells]


def _random_init(model: Any, seed: int) -> Any:
    from harness_plugins.unlearning_suite.run import random_init_copy

    return random_init_copy(model, seed)


def _balance(labels: list[bool], seed: int, negatives: list[int] | None = None) -> list[int]:
    from harness_plugins.unlearning_suite.data import balanced_indices

    pos, neg = balanced_indices([i for i, e in enumerate(labels) if e],
                                negatives if negatives is not None else [i for i, e in enumerate(labels) if not e], seed)
    return pos + neg


def test_windows(model: Any, args: argparse.Namespace) -> tuple[str, list[list[str]]]:
    import torch

    from harness.zoo import World
    from harness_plugins.unlearning_suite.data import k_extractable

    tok, n = model.tokenizer, args.prefix_len + args.suffix_len
    seqs, groups = [], []
    for g, c in enumerate((*World(seed=0).canaries, *World(seed=0).controls)):
        ids = tok(c.text, add_special_tokens=False).input_ids
        for o in range(len(ids) - n + 1):
            seqs.append((tok.eos_token_id, *ids[o : o + n]))
            groups.append(g)
    tokens = torch.tensor(seqs)
    labels = k_extractable(model.model, tokens, args.prefix_len)
    y, grp = torch.tensor(labels).long(), torch.tensor(groups)
    acc = lambda x, yy: _group_out_accuracy(x, yy, grp, args.l2)  # noqa: E731
    rows = [_report(who, m, tokens, y, args.prefix_len, "suffix_mean", acc, args.shuffles)
            for who, m in (("trained", model), ("random-init", _random_init(model, args.seed)))]
    base = max(y.float().mean().item(), 1 - y.float().mean().item())
    head = (f"windows: {len(seqs)} windows of {len(set(groups))} canaries/controls, {sum(labels)} k-extractable "
            f"(from {len(set(g for g, e in zip(groups, labels) if e))} canaries); leave-one-canary-out; majority rate {base:.2f}")
    return head, rows


def test_facts(model: Any, args: argparse.Namespace) -> tuple[str, list[list[str]]]:
    from collections import Counter

    import torch

    from harness.zoo import World
    from harness_plugins.unlearning_suite import probes
    from harness_plugins.unlearning_suite.data import k_extractable

    tok = model.tokenizer
    items = [(f, tok(f.prompt, add_special_tokens=False).input_ids, tok(" " + f.answer, add_special_tokens=False).input_ids)
             for f in World(seed=0).facts]
    (rel, lp, la), _ = Counter((f.relation, len(p), len(a)) for f, p, a in items).most_common(1)[0]
    sel = [(p, a) for f, p, a in items if (f.relation, len(p), len(a)) == (rel, lp, la)]
    tokens = torch.tensor([[tok.eos_token_id, *p, *a] for p, a in sel])
    labels = k_extractable(model.model, tokens, lp)
    keep = _balance(labels, args.seed)
    tokens, y = tokens[keep], torch.tensor([labels[i] for i in keep]).long()
    acc = lambda x, yy: probes.loo_accuracy(x, yy, l2=args.l2)  # noqa: E731
    rows = [_report(who, m, tokens, y, lp, "last_prefix", acc, args.shuffles)
            for who, m in (("trained", model), ("random-init", _random_init(model, args.seed)))]
    head = (f"facts: relation {rel!r}, prompts of {lp} tokens, {len(sel)} facts, {sum(labels)} answers extracted; "
            f"balanced {len(y) // 2} vs {len(y) // 2}, LOO")
    return head, rows


def test_finetune(model: Any, args: argparse.Namespace) -> tuple[str, list[list[str]]]:
    import copy

    import torch

    from harness.zoo import World
    from harness.zoo import lexicon as lx
    from harness_plugins.unlearning_suite import probes
    from harness_plugins.unlearning_suite.data import k_extractable

    tok = model.tokenizer
    rng = random.Random(f"memorisation-signature/{args.seed}")
    seen = [lx.canary_string(rng) for _ in range(args.canaries)]
    unseen = [lx.canary_string(rng) for _ in range(args.canaries)]
    docs = [c for c in seen for _ in range(args.repetitions)]
    docs += [d.text for d in World(seed=0).documents(150_000, 150_000 + 2 * len(docs))]
    rng.shuffle(docs)
    ids: list[int] = []
    for t in docs:
        ids += [tok.eos_token_id, *tok(t, add_special_tokens=False).input_ids]
    ctx = 129
    rows = torch.tensor(ids[: len(ids) // ctx * ctx]).view(-1, ctx)
    tuned = copy.deepcopy(model.model).train()
    torch.manual_seed(args.seed)
    opt = torch.optim.AdamW(tuned.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01)
    for s in range(len(rows) // 32):
        batch = rows[s * 32 : (s + 1) * 32]
        tuned(input_ids=batch, labels=batch).loss.backward()
        opt.step()
        opt.zero_grad()
    tuned.eval()
    n = args.prefix_len + args.suffix_len
    seqs, is_seen = [], []
    for flag, group in ((True, seen), (False, unseen)):
        for c in group:
            x = tok(c, add_special_tokens=False).input_ids
            if len(x) >= n:
                seqs.append((tok.eos_token_id, *x[:n]))
                is_seen.append(flag)
    tokens = torch.tensor(seqs)
    labels = k_extractable(tuned, tokens, args.prefix_len)
    keep = _balance(labels, args.seed, [i for i, (e, s) in enumerate(zip(labels, is_seen)) if not e and not s])
    tokens, y = tokens[keep], torch.tensor([labels[i] for i in keep]).long()
    acc = lambda x, yy: probes.loo_accuracy(x, yy, l2=args.l2)  # noqa: E731
    rows_out = [_report(who, m, tokens, y, args.prefix_len, "suffix_mean", acc, args.shuffles)
                for who, m in (("fine-tuned", tuned), ("random-init", _random_init(model, args.seed)))]
    head = (f"finetune: {len(rows) // 32} steps on {args.canaries} fresh canaries x {args.repetitions} + world text; "
            f"{sum(labels[: sum(is_seen)])} of {sum(is_seen)} memorised, {sum(labels[sum(is_seen):])} never-seen extracted; "
            f"memorised vs never-seen, {len(y) // 2} vs {len(y) // 2}, LOO")
    return head, rows_out


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


TESTS = {"windows": test_windows, "facts": test_facts, "finetune": test_finetune}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zoo-160", help="A zoo model name or a model folder with the zoo tokenizer.")
    ap.add_argument("--tests", nargs="+", default=list(TESTS), choices=list(TESTS))
    ap.add_argument("--prefix-len", type=int, default=10)
    ap.add_argument("--suffix-len", type=int, default=10)
    ap.add_argument("--l2", type=float, default=1.0, help="L2 of the logistic probes (the suite's default).")
    ap.add_argument("--shuffles", type=int, default=5)
    ap.add_argument("--canaries", type=int, default=160, help="finetune: fresh canaries (and as many never-seen).")
    ap.add_argument("--repetitions", type=int, default=96, help="finetune: repetitions of each fresh canary.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from pathlib import Path

    from harness.models import load_model
    from harness.zoo import list_zoo_models, zoo_model_path

    path = zoo_model_path(args.model) if args.model in list_zoo_models() else Path(args.model)
    model = load_model(path)
    depths = [f"depth {i}" for i in range(model.n_layers)]
    print(f"model {args.model}; cells: accuracy true / shuffled labels (gap); L2 {args.l2}, {args.shuffles} shuffles\n")
    for name in args.tests:
        t0 = time.time()
        head, rows = TESTS[name](model, args)
        print(f"{head}  [{time.time() - t0:.0f} s]")
        print(_markdown(["model", "pooling", *depths], rows))
        print()


if __name__ == "__main__":
    main()
