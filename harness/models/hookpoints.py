"""Named hook points across architectures: read (:func:`capture`) and write (:func:`intervene`).

Names (TransformerLens-like; ``i`` in ``0..n_layers-1``, negative ``i`` counts from the end):

==============================  ==============================================  ==================
name                            what                                            shape
==============================  ==============================================  ==================
``blocks.{i}.hook_resid_pre``   residual stream entering block i                [batch, seq, d]
``blocks.{i}.hook_resid_post``  residual stream leaving block i                 [batch, seq, d]
``blocks.{i}.attn.hook_out``    attention output (after the output projection)  [batch, seq, d]
``blocks.{i}.attn.hook_pattern`` post-softmax attention pattern                 [batch, head, q, k]
``blocks.{i}.mlp.hook_out``     MLP output                                      [batch, seq, d]
``blocks.{i}.mlp.hook_post``    MLP neurons after the activation (input of the  [batch, seq, d_mlp]
                                down projection; Llama: ``act(gate) * up``)
``hook_final``                  final hidden states, after the final norm       [batch, seq, d]
                                (the LM head's input)
==============================  ==============================================  ==================

Aliases: ``resid_pre.{i}``, ``resid_post.{i}``, ``attn_out.{i}``, ``pattern.{i}``,
``mlp_out.{i}``, ``mlp_post.{i}`` and ``final``. Where the modules are per architecture is in
:mod:`harness.models.adapters`; how patterns are reached is in :mod:`harness.models.attention`.

Conventions: ``resid_post`` of block ``i`` equals ``output_hidden_states[i + 1]`` except for
the last block, whose ``hidden_states[-1]`` transformers replaces by the normed final states
(= ``hook_final``). Every hook is removed when the ``with`` block exits, exceptions included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import UnknownNameError, did_you_mean

from .adapters import get_blocks, site_for
from .attention import add_pattern_fn, pattern_mode
from .interventions import Intervention, as_function
from .loading import LoadedModel

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = [
    "HookPoint",
    "UnknownHookPointError",
    "capture",
    "intervene",
    "hook_point_names",
    "list_hook_points",
    "parse_hook_point",
    "resolve_hook_point",
    "run_with_cache",
]

#: canonical suffix -> kind
_SUFFIXES = {
    "hook_resid_pre": "resid_pre",
    "hook_resid_post": "resid_post",
    "attn.hook_out": "attn_out",
    "attn.hook_pattern": "pattern",
    "mlp.hook_out": "mlp_out",
    "mlp.hook_post": "mlp_post",
}
_KIND_TO_SUFFIX = {kind: suffix for suffix, kind in _SUFFIXES.items()}
_CANONICAL = re.compile(r"^blocks\.(-?\d+)\.(" + "|".join(re.escape(s) for s in _SUFFIXES) + r")$")
_ALIAS = re.compile(r"^(" + "|".join(_KIND_TO_SUFFIX) + r")\.(-?\d+)$")
_ORDER = {"resid_pre": 0, "pattern": 1, "attn_out": 2, "mlp_post": 3, "mlp_out": 4, "resid_post": 5}


class UnknownHookPointError(UnknownNameError):
    """A hook point name that this model does not have."""


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass early; caught by harness only."""


@dataclass(frozen=True)
class HookPoint:
    """A resolved hook point: canonical name, kind and layer (None for ``hook_final``)."""

    name: str
    kind: str
    layer: int | None

    @property
    def sort_key(self) -> tuple[float, int]:
        """Forward order (within a block: pre, pattern, attn out, mlp post, mlp out, post)."""
        return (float("inf") if self.layer is None else self.layer, _ORDER.get(self.kind, 0))


def _unwrap(model: Any) -> nn.Module:
    return model.model if isinstance(model, LoadedModel) else model


def _point(kind: str, layer: int | None) -> HookPoint:
    if layer is None:
        return HookPoint("hook_final", "final", None)
    return HookPoint(f"blocks.{layer}.{_KIND_TO_SUFFIX[kind]}", kind, layer)


def list_hook_points(model: Any) -> list[str]:
    """Every canonical hook point name of ``model``, in forward order."""
    return hook_point_names(len(get_blocks(_unwrap(model))))


def hook_point_names(n: int) -> list[str]:
    """Every canonical hook point name of a model with ``n`` blocks, in forward order (no model needed)."""
    names = [_point(kind, i).name for i in range(n) for kind in sorted(_ORDER, key=_ORDER.get)]
    return [*names, "hook_final"]


def resolve_hook_point(model: Any, point: str | HookPoint) -> HookPoint:
    """Parse a name or alias into a :class:`HookPoint`; unknown names raise with suggestions."""
    if isinstance(point, HookPoint):
        return point
    return parse_hook_point(point, len(get_blocks(_unwrap(model))))


def parse_hook_point(point: str, n: int) -> HookPoint:
    """:func:`resolve_hook_point` for a model with ``n`` blocks, from the name alone (plan-time checks)."""
    text = point.strip()
    if text in ("hook_final", "final"):
        return _point("final", None)
    layer: int | None = None
    kind = ""
    if m := _CANONICAL.match(text):
        layer, kind = int(m.group(1)), _SUFFIXES[m.group(2)]
    elif m := _ALIAS.match(text):
        kind, layer = m.group(1), int(m.group(2))
    if kind and layer is not None and -n <= layer < n:
        return _point(kind, layer % n)
    where = f" (layer {layer} is out of range: the model has {n} blocks, 0..{n - 1})" if kind else ""
    choices = [*hook_point_names(n), "final", *(f"{k}.{i}" for k in _KIND_TO_SUFFIX for i in range(n))]
    raise UnknownHookPointError(
        f"Unknown hook point {point!r}{where}.{did_you_mean(text, choices)} Valid names: "
        + ", ".join(f"blocks.{{i}}.{s}" for s in _SUFFIXES)
        + f" for i in 0..{n - 1}, and hook_final; aliases: "
        + ", ".join(f"{k}.{{i}}" for k in _KIND_TO_SUFFIX)
        + ", final."
    )


def _as_points(model: nn.Module, points: str | HookPoint | Iterable[str | HookPoint]) -> list[tuple[str, HookPoint]]:
    items = [points] if isinstance(points, (str, HookPoint)) else list(points)
    return [(p.name if isinstance(p, HookPoint) else p, resolve_hook_point(model, p)) for p in items]


# --------------------------------------------------------------------------- installing
def _install(
    model: nn.Module, point: HookPoint, fn: Callable[[torch.Tensor], torch.Tensor | None], stack: ExitStack
) -> None:
    """Register ``fn`` (activation -> new activation or None) at ``point``; removal goes on ``stack``."""
    site = site_for(model, point.layer, point.kind)
    if site.kind == "pattern":
        stack.callback(add_pattern_fn(site.module, fn).remove)
        return

    shape: list[tuple[int, int]] = []
    if site.flat and site.block is not None:  # OPT's MLP sees [batch*seq, d]: remember [batch, seq]

        def record(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            shape[:] = [tuple(hidden.shape[:2])]

        stack.callback(site.block.register_forward_pre_hook(record, with_kwargs=True).remove)

    def apply(x: torch.Tensor) -> torch.Tensor | None:
        if site.flat and x.ndim == 2 and shape:
            new = fn(x.view(*shape[0], x.shape[-1]))
            return None if new is None else new.reshape(x.shape)
        return fn(x)

    if site.kind == "input":

        def pre_hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if args:
                new = apply(args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            new = apply(kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})

        stack.callback(site.module.register_forward_pre_hook(pre_hook, with_kwargs=True).remove)
    else:

        def post_hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
            if isinstance(output, tuple):
                new = apply(output[0])
                return None if new is None else (new, *output[1:])
            return apply(output)

        stack.callback(site.module.register_forward_hook(post_hook).remove)


def _attn_modules(model: nn.Module) -> list[nn.Module]:
    n = len(get_blocks(model))
    return [site_for(model, i, "pattern").module for i in range(n)]


def _enter_pattern_mode(model: nn.Module, points: Iterable[HookPoint], stack: ExitStack) -> None:
    if any(p.kind == "pattern" for p in points):
        stack.enter_context(pattern_mode(model, _attn_modules(model)))


# --------------------------------------------------------------------------- public API
@contextmanager
def capture(
    model: Any,
    points: str | HookPoint | Iterable[str | HookPoint],
    *,
    detach: bool = True,
    device: str | torch.device | None = None,
    stop: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Record activations at ``points`` during forward passes inside the block.

    Yields a dict ``{name as given: tensor}`` filled by each forward pass (a later pass
    overwrites). ``device`` moves captured tensors (e.g. ``"cpu"``). With ``stop=True`` the
    forward pass ends as soon as every point has been recorded: use :func:`run_with_cache`
    (which catches that) rather than calling the model yourself.
    """
    module = _unwrap(model)
    resolved = _as_points(module, points)
    store: dict[str, torch.Tensor] = {}
    pending: set[str] = set()

    with ExitStack() as stack:
        if stop:

            def reset(*_: Any) -> None:
                pending.clear()
                pending.update(key for key, _ in resolved)

            stack.callback(module.register_forward_pre_hook(reset).remove)

        for key, point in resolved:

            def record(x: torch.Tensor, key: str = key) -> None:
                y = x.detach() if detach else x
                store[key] = y.to(device) if device is not None else y
                if stop:
                    pending.discard(key)
                    if not pending:
                        raise _StopForward

            _install(module, point, record, stack)
        _enter_pattern_mode(module, (p for _, p in resolved), stack)
        yield store


@contextmanager
def intervene(model: Any, edits: Mapping[str | HookPoint, Intervention]) -> Iterator[list[HookPoint]]:
    """Apply ``{point: Replace | Add | ProjectOut | fn}`` during forward passes inside the block.

    ``fn(activation) -> tensor | None`` may return None to leave the activation unchanged.
    Nest with :func:`capture` freely: hooks run in the order the contexts were entered, so a
    ``capture`` entered inside ``intervene`` sees the edited activations. Yields the
    resolved points.
    """
    module = _unwrap(model)
    resolved = {key: resolve_hook_point(module, key) for key in edits}
    with ExitStack() as stack:
        for key, point in resolved.items():
            _install(module, point, as_function(edits[key], pattern=point.kind == "pattern"), stack)
        _enter_pattern_mode(module, resolved.values(), stack)
        yield list(resolved.values())


def run_with_cache(
    model: Any,
    points: str | HookPoint | Iterable[str | HookPoint],
    input_ids: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    stop_early: bool = False,
    device: str | torch.device | None = None,
    **forward_kwargs: Any,
) -> tuple[Any, dict[str, torch.Tensor]]:
    """One forward pass under ``torch.no_grad`` recording ``points``: ``(model output, activations)``.

    With ``stop_early=True`` the pass ends right after the last requested point (the output
    is then None) - the activations are identical to a full pass.
    """
    import torch

    module = _unwrap(model)
    forward_kwargs.setdefault("use_cache", False)
    output = None
    with torch.no_grad(), capture(module, points, device=device, stop=stop_early) as store:
        try:
            output = module(input_ids=input_ids, attention_mask=attention_mask, **forward_kwargs)
        except _StopForward:
            pass
    return output, store
