"""Post-softmax attention patterns: read and replace them in any transformers-5 model.

Transformers 5 models compute attention through a pluggable function looked up per call,
``ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, eager_attention_forward)``.
sdpa and flash kernels never materialise the pattern, and each model's own eager function
keeps it inside one function (no module boundary to hook). So harness registers one more
implementation, ``"harness_pattern"`` (an eager attention that calls per-module callbacks on
the post-softmax pattern before it multiplies the values), plus the eager mask builder under
the same name, and switches a model's config to it only inside :func:`pattern_mode`.

While switched, attention modules without callbacks delegate to sdpa when that was the
model's implementation (so only the hooked layers change kernel); otherwise they run the
same eager math. The original implementation is restored on exit, exceptions included.

Supported: multi-head and grouped-query attention, additive or boolean masks, sliding
windows (via the mask), logit soft-capping (Gemma 2). Not supported: attention sinks
(gpt-oss), which raise a clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = ["IMPL_NAME", "PatternFn", "add_pattern_fn", "pattern_attention_forward", "pattern_mode"]

IMPL_NAME = "harness_pattern"
_FNS = "_harness_pattern_fns"
_FALLBACK = "_harness_attn_fallback"

#: A callback on the pattern ``[batch, head, query, key]``; returns a new pattern or None.
PatternFn = Callable[["torch.Tensor"], "torch.Tensor | None"]


def _register() -> None:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    # register() updates the class-wide mapping; it is idempotent.
    type(ALL_ATTENTION_FUNCTIONS).register(IMPL_NAME, pattern_attention_forward)
    type(ALL_MASK_ATTENTION_FUNCTIONS).register(IMPL_NAME, eager_mask)


def pattern_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eager attention that exposes the post-softmax pattern to the module's callbacks.

    ``query`` is ``[batch, heads, q, d]``; ``key``/``value`` are ``[batch, kv_heads, k, d]``.
    Returns ``(output [batch, q, heads, d], pattern [batch, heads, q, k])`` like every
    transformers attention function.
    """
    import torch
    from torch.nn import functional as F

    fns: list[PatternFn] = getattr(module, _FNS, None) or []
    if not fns and getattr(module, _FALLBACK, None) == "sdpa" and kwargs.get("softcap") is None:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        return ALL_ATTENTION_FUNCTIONS["sdpa"](
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    if getattr(module, "sinks", None) is not None:
        raise NotImplementedError(
            f"{type(module).__name__} uses attention sinks, which harness's pattern hooks do not support yet."
        )
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:  # grouped-query attention: repeat key/value heads
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    softcap = kwargs.get("softcap")
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        mask = attention_mask[:, :, :, : key.shape[-2]]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + mask
    pattern = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    for fn in list(fns):
        new = fn(pattern)
        if new is not None:
            pattern = new.to(dtype=query.dtype, device=query.device)
    weights = F.dropout(pattern, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, pattern


def _configs(model: nn.Module, attn_modules: list[nn.Module]) -> list[Any]:
    configs: dict[int, Any] = {id(model.config): model.config}
    for module in attn_modules:
        cfg = getattr(module, "config", None)
        if cfg is not None:
            configs.setdefault(id(cfg), cfg)
    return list(configs.values())


@contextmanager
def pattern_mode(model: nn.Module, attn_modules: list[nn.Module]) -> Iterator[None]:
    """Switch ``model`` to the ``harness_pattern`` attention inside the block (nestable).

    ``attn_modules`` are the model's attention modules; each remembers the original
    implementation so that modules without callbacks can delegate to it.
    """
    _register()
    configs = _configs(model, attn_modules)
    saved_impl = [(cfg, cfg._attn_implementation) for cfg in configs]
    saved_fallback = [(m, m.__dict__.get(_FALLBACK)) for m in attn_modules]
    original = model.config._attn_implementation
    try:
        for module in attn_modules:
            if original != IMPL_NAME:
                module.__dict__[_FALLBACK] = original
        for cfg in configs:
            cfg._attn_implementation = IMPL_NAME
        yield
    finally:
        for cfg, impl in reversed(saved_impl):
            cfg._attn_implementation = impl
        for module, fallback in saved_fallback:
            if fallback is None:
                module.__dict__.pop(_FALLBACK, None)
            else:
                module.__dict__[_FALLBACK] = fallback


class _PatternHandle:
    """Removes one callback from one attention module (like a torch hook handle)."""

    def __init__(self, module: nn.Module, fn: PatternFn) -> None:
        self.module, self.fn = module, fn

    def remove(self) -> None:
        fns = self.module.__dict__.get(_FNS)
        if fns is None:
            return
        for i, existing in enumerate(fns):
            if existing is self.fn:
                del fns[i]
                break
        if not fns:
            self.module.__dict__.pop(_FNS, None)


def add_pattern_fn(module: nn.Module, fn: PatternFn) -> _PatternHandle:
    """Call ``fn`` on ``module``'s pattern while in :func:`pattern_mode`; returns a handle."""
    module.__dict__.setdefault(_FNS, []).append(fn)
    return _PatternHandle(module, fn)
