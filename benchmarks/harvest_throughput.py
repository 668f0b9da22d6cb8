"""Harvest throughput vs a bare forward pass that stops at the same layer.

Builds a random-initialised GPTNeoX (Pythia-style; sizes configurable), then times, over the
same token batches:

- ``bare forward (stop at layer)``: the model called on pre-made batches already on the
  device, ended by a minimal hook on the target block that raises (nothing stored);
- ``harvest (stop_early)``: :func:`harness.models.harvest` (token batching from a CPU tensor,
  device transfer, hook install/removal per batch, capture);
- ``harvest_flat``: the same plus dropping BOS/padding positions into ``[n, d]``;
- ``ActivationBuffer``: ``harvest_flat`` through the shuffling buffer;
- ``full forward (no stop)``: for reference, what stopping early saves.

Each variant runs ``--repeats`` times, interleaved; the best time is reported (robust to
other load on the machine). Goal: harvest >= 0.95x the bare forward.

    python benchmarks/harvest_throughput.py [--device cpu|cuda|auto] [--layers 6 --d-model 256 ...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable


class _Stop(Exception):
    pass


def _build(args: argparse.Namespace):
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=args.vocab, hidden_size=args.d_model, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, intermediate_size=4 * args.d_model, rotary_pct=0.25,
        max_position_embeddings=max(2048, args.ctx), use_parallel_residual=True, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    return GPTNeoXForCausalLM(config).to(args.device).eval()


def main(argv: list[str] | None = None) -> None:
    import torch
    from tabulate import tabulate

    from harness.models import ActivationBuffer, harvest, harvest_flat
    from harness.models.loading import resolve_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (default)")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--layer", type=int, default=3, help="hooked block (resid_post)")
    parser.add_argument("--ctx", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--n-batches", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.device = resolve_device(args.device)

    model = _build(args)
    point = f"blocks.{args.layer}.hook_resid_post"
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, args.vocab, (args.batch * args.n_batches, args.ctx), generator=gen)
    tokens[:, 0] = 0  # BOS
    on_device = [t.to(args.device) for t in tokens.split(args.batch)]
    n_tokens = tokens.numel()
    block = model.gpt_neox.layers[args.layer]

    def sync() -> None:
        if args.device.type == "cuda":
            torch.cuda.synchronize()

    def bare() -> None:
        def stop(*_):
            raise _Stop

        handle = block.register_forward_hook(stop)
        try:
            for ids in on_device:
                try:
                    model(input_ids=ids, use_cache=False)
                except _Stop:
                    pass
        finally:
            handle.remove()

    def full() -> None:
        for ids in on_device:
            model(input_ids=ids, use_cache=False)

    def run_harvest() -> None:
        for _ in harvest(model, point, tokens, batch_size=args.batch, context_length=args.ctx):
            pass

    def run_flat() -> None:
        for _ in harvest_flat(model, point, tokens, batch_size=args.batch, context_length=args.ctx, bos_token_id=0):
            pass

    def run_buffer() -> None:
        flat = harvest_flat(model, point, tokens, batch_size=args.batch, context_length=args.ctx, bos_token_id=0)
        for _ in ActivationBuffer(flat, buffer_size=n_tokens // 2, batch_size=1024):
            pass

    variants: dict[str, Callable[[], None]] = {
        "bare forward (stop at layer)": bare,
        "harvest (stop_early)": run_harvest,
        "harvest_flat (BOS dropped)": run_flat,
        "ActivationBuffer (shuffled)": run_buffer,
        "full forward (no stop)": full,
    }
    best = {name: float("inf") for name in variants}
    with torch.no_grad():
        for fn in variants.values():  # warm-up
            fn()
        for _ in range(args.repeats):
            for name, fn in variants.items():
                sync()
                start = time.perf_counter()
                fn()
                sync()
                best[name] = min(best[name], time.perf_counter() - start)

    base = n_tokens / best["bare forward (stop at layer)"]
    rows = [[name, n_tokens, f"{secs:.3f}", f"{n_tokens / secs:,.0f}", f"{n_tokens / secs / base:.3f}x"]
            for name, secs in best.items()]  # fmt: skip
    params = sum(p.numel() for p in model.parameters())
    print(
        f"GPTNeoX random init: {args.layers} layers, d={args.d_model}, vocab={args.vocab}, {params / 1e6:.1f}M params; "
        f"{point}; {args.n_batches} batches x {args.batch} x {args.ctx} tokens; device={args.device}; "
        f"torch threads={torch.get_num_threads()}; best of {args.repeats}"
    )
    print(tabulate(rows, headers=["variant", "tokens", "seconds", "tokens/s", "vs bare"], tablefmt="github"))


if __name__ == "__main__":
    main()
