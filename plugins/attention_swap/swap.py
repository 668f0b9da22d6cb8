"""Attention-pattern swap: run model A with the post-softmax attention patterns of model B.

For every forward pass of A, B first runs on the same ``input_ids`` / ``attention_mask``
and its patterns at the chosen layers are cached; A then runs with its own patterns at
those layers (and heads) replaced by B's, so A's queries and keys are ignored there while
A's values and output weights are kept. Built on :func:`harness.models.intervene` at
``blocks.{i}.attn.hook_pattern`` (:mod:`harness.models.attention`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from harness.errors import HarnessError
from harness.protocols import Intervention


class SwapLayoutError(HarnessError):
    """Models A and B cannot swap attention patterns (tokeniser or head layout differ)."""


def _module(model: Any) -> Any:
    return getattr(model, "model", model) if hasattr(model, "require_tokenizer") else model


def _tokenizer(model: Any) -> Any:
    return getattr(model, "tokenizer", None)


def head_layout(model: Any) -> tuple[int, int]:
    """``(n_layers, n_heads)`` of a model (a LoadedModel or a transformers model)."""
    from harness.models.adapters import get_blocks

    module = _module(model)
    cfg = module.config.get_text_config() if hasattr(module.config, "get_text_config") else module.config
    return len(get_blocks(module)), int(cfg.num_attention_heads)


def _name(model: Any) -> str:
    name = getattr(model, "name", None)
    rev = getattr(model, "revision", None)
    return f"{name}@{rev}" if name and rev else str(name or type(_module(model)).__name__)


def _tokenisation(tokenizer: Any) -> str:
    """What decides how text becomes ids: the backend's model, normaliser, pre-tokeniser and added
    tokens (its padding / truncation state, which calls like ``padding=True`` change, is left out)."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return json.dumps(sorted(tokenizer.get_vocab().items()))
    data = json.loads(backend.to_str())
    data.pop("padding", None)
    data.pop("truncation", None)
    return json.dumps(data, sort_keys=True)


def check_swap_compatible(
    a: Any, b: Any, layers: Sequence[int] | None = None, heads: Sequence[int] | None = None
) -> list[int]:
    """Check that B's patterns can replace A's; returns the layers (default: every layer).

    Requires: the same tokeniser (when both models carry one: same vocabulary and special
    tokens), the same number of attention heads, and every chosen layer/head present in both.
    Raises :class:`SwapLayoutError` naming what differs and what to choose instead.
    """
    ta, tb = _tokenizer(a), _tokenizer(b)
    if ta is not None and tb is not None and _tokenisation(ta) != _tokenisation(tb):
        raise SwapLayoutError(
            f"attention swap: {_name(a)} and {_name(b)} tokenise differently (different vocabulary or special "
            "tokens), so their patterns are over different positions. Swap within one model family."
        )
    (la, ha), (lb, hb) = head_layout(a), head_layout(b)
    if ha != hb:
        raise SwapLayoutError(
            f"attention swap: head layouts differ: {_name(a)} has {ha} heads per layer ({la} layers), "
            f"{_name(b)} has {hb} ({lb} layers). Pick models with the same number of heads (e.g. two checkpoints "
            "of one model)."
        )
    chosen = list(range(min(la, lb))) if layers is None else [int(x) for x in layers]
    bad = [x for x in chosen if not (0 <= x < min(la, lb))]
    if bad or not chosen:
        raise SwapLayoutError(
            f"attention swap: layers {bad or chosen} out of range; {_name(a)} has {la} layers and {_name(b)} "
            f"{lb}: choose layers in 0..{min(la, lb) - 1}."
        )
    bad_heads = [h for h in heads or () if not (0 <= int(h) < ha)]
    if bad_heads or (heads is not None and not list(heads)):
        shown = bad_heads or list(heads or [])
        raise SwapLayoutError(f"attention swap: heads {shown} out of range: choose heads in 0..{ha - 1}.")
    return chosen


class AttentionSwap(Intervention):
    """Replace model A's attention patterns at ``layers`` (``heads``) by those of ``source`` (B).

    ``source``: a :class:`harness.models.LoadedModel` or transformers model; ``source_id``
    identifies it in result caches (default: its fingerprint, else its name). Use it with
    ``evaluate_tasks(..., intervention=AttentionSwap(b, layers=[0]))`` or directly::

        with AttentionSwap(b, layers=[1]).apply(a):
            logits = a.model(input_ids).logits

    Every forward pass of A must see the whole sequence (no KV cache): B is run on the
    same inputs, so incremental decoding raises a :class:`SwapLayoutError`.
    """

    def __init__(
        self, source: Any, layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
        *, source_id: str | None = None,
    ) -> None:
        self.source = source
        self.layers = None if layers is None else [int(x) for x in layers]
        self.heads = None if heads is None else [int(h) for h in heads]
        sid = source_id or getattr(source, "fingerprint", None) or _name(source)
        self.id = f"attention_swap:{sid}:layers={self.layers or 'all'}:heads={self.heads or 'all'}"

    @contextmanager
    def apply(self, model: Any) -> Iterator[Any]:
        import torch

        from harness.models import intervene, run_with_cache

        layers = check_swap_compatible(model, self.source, self.layers, self.heads)
        a, b = _module(model), _module(self.source)
        points = {layer: f"blocks.{layer}.attn.hook_pattern" for layer in layers}
        state: dict[str, Any] = {"busy": False, "cache": {}}

        def pre_hook(_m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if state["busy"]:  # A is B: the nested pass of B must not trigger another
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                raise SwapLayoutError("attention swap: model A was called without input_ids; pass token ids.")
            mask = kwargs.get("attention_mask")
            state["busy"] = True
            try:
                dev = next(b.parameters()).device
                _, cache = run_with_cache(
                    b, list(points.values()), ids.to(dev),
                    attention_mask=None if mask is None else mask.to(dev),
                )
            finally:
                state["busy"] = False
            state["cache"] = cache

        def replacer(name: str) -> Any:
            def fn(x: torch.Tensor) -> torch.Tensor | None:
                if state["busy"]:
                    return None
                p = state["cache"].get(name)
                if p is None or p.shape != x.shape:
                    raise SwapLayoutError(
                        f"attention swap: at {name} model A's pattern has shape {tuple(x.shape)} but B's has "
                        f"{None if p is None else tuple(p.shape)}. Each forward pass of A must see the whole "
                        "sequence: disable the KV cache (use_cache=False) when generating."
                    )
                p = p.to(device=x.device, dtype=x.dtype)
                if self.heads is None:
                    return p
                out = x.clone()
                out[:, self.heads] = p[:, self.heads]
                return out

            return fn

        with ExitStack() as stack:
            stack.callback(a.register_forward_pre_hook(pre_hook, with_kwargs=True).remove)
            stack.enter_context(intervene(a, {name: replacer(name) for name in points.values()}))
            yield model

    def __repr__(self) -> str:
        return f"AttentionSwap({self.id})"
