"""Removable interventions of unlearning methods and the depth-by-depth fitting they share.

Two kinds of :class:`harness.protocols.Intervention`, both removable:

- :class:`HookEdits`: per hook point a list of affine edits ``h <- h - ((h V^T) - t) U``
  (rank k = rows of U/V), installed with :func:`harness.models.intervene` only inside
  ``apply(model)``;
- :class:`WeightEdit`: replacement parameter tensors copied in on enter and the originals
  copied back on exit.

Fitting: :func:`fit_depthwise` fits one closed-form edit per depth on the live (upstream
edits active) pooled activations (``leace``, ``mean_diff_projection``);
:func:`fit_probe_edits` is the PGA family's live-refitted probe edit (``pga``, ``md_pga``,
``pga_adversarial``). :func:`stable_id` names an intervention by everything it depends on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.protocols import Intervention

from .data import UnlearningData, pooled_activations
from .probes import fit_logistic


def stable_id(method: str, config: Any, seed: int, forget: UnlearningData, model: Any) -> str:
    """Hash of everything an edit depends on (method, config, seed, data, model identity)."""
    payload = {
        "method": method,
        "config": config.model_dump(mode="json") if hasattr(config, "model_dump") else config,
        "seed": seed,
        "data": hashlib.sha256(repr((forget.sequences, forget.labels)).encode()).hexdigest(),
        "model": str(getattr(model, "fingerprint", None) or getattr(model, "name", None) or type(model).__name__),
    }
    return method + "-" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AffineEdit:
    """``h <- h - ((h @ V.T) - t) @ U``: changes h only inside the row span of U."""

    U: Any  #: [k, d]
    V: Any  #: [k, d]
    t: Any  #: [k]

    def __call__(self, h: Any) -> Any:
        U, V, t = (a.to(h.device, h.dtype) for a in (self.U, self.V, self.t))
        return h - ((h @ V.T) - t) @ U


def _chain(edits: list[AffineEdit]) -> Any:
    def fn(h: Any) -> Any:
        for e in edits:
            h = e(h)
        return h

    return fn


@dataclass
class HookEdits(Intervention):
    """A removable set of affine activation edits ``{hook point: [AffineEdit, ...]}``."""

    id: str
    edits: dict[str, list[AffineEdit]] = field(default_factory=dict)

    def functions(self) -> dict[str, Any]:
        return {p: _chain(e) for p, e in self.edits.items() if e}

    def apply(self, model: Any) -> contextlib.AbstractContextManager[Any]:
        from harness.models import intervene

        return intervene(getattr(model, "model", model), self.functions())


@dataclass
class WeightEdit(Intervention):
    """Replacement parameters ``{name: tensor}``; restored to the originals on exit."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def apply(self, model: Any) -> Iterator[Any]:
        import torch

        hf = getattr(model, "model", model)
        named = dict(hf.named_parameters())
        saved = {n: named[n].detach().clone() for n in self.params}
        try:
            with torch.no_grad():
                for n, v in self.params.items():
                    named[n].copy_(v.to(named[n].device, named[n].dtype))
            yield model
        finally:
            with torch.no_grad():
                for n, v in saved.items():
                    named[n].copy_(v)


def hook_points(model: Any, hook: str, layers: list[int] | None) -> list[str]:
    n = getattr(model, "n_layers", None) or getattr(model, "model", model).config.num_hidden_layers
    return [f"blocks.{i}.hook_{hook}" if hook.startswith("resid") else f"blocks.{i}.{hook.replace('_', '.hook_')}" for i in (layers if layers is not None else range(n))]


def probe_direction(x: Any, y: Any, l2: float) -> Any:
    """Unit direction in activation space of a logistic probe fitted on standardised x."""
    w, _, _, sd = fit_logistic(x, y, l2=l2)
    d = (w[0] / sd[0, 0]).float()
    return d / d.norm().clamp_min(1e-12)


def reflect_edit(x: Any, y: Any, dirs: Any, strength: float) -> AffineEdit:
    """Edit along orthonormal ``dirs`` [k, d] with target t = midpoint of the class means' projections:
    strength 1 sets every projection to t (chance), 2 reflects each class across t (below chance)."""
    proj = x.float() @ dirs.T
    t = 0.5 * (proj[y == 1].mean(0) + proj[y == 0].mean(0))
    return AffineEdit(U=strength * dirs, V=dirs.clone(), t=t)


def orthonormal_append(dirs: list[Any], d: Any) -> Any:
    for q in dirs:
        d = d - (d @ q) * q
    return d / d.norm().clamp_min(1e-12)


def fit_probe_edits(
    model: Any, forget: UnlearningData, *, hook: str, layers: list[int] | None, pooling: str,
    directions: int, rounds: int, strength: float, l2: float, ident: str,
) -> HookEdits:
    """PGA family: depth by depth (upstream edits active, so the direction is fitted "live"),
    ``rounds`` times: fit a fresh probe, take its direction (orthogonal to those already used
    at this depth; ``directions`` of them per round), apply the overshooting affine edit."""
    import torch

    tokens, y = forget.tensor(), torch.tensor(forget.labels)
    out = HookEdits(id=ident)
    for point in hook_points(model, hook, layers):
        used: list[Any] = []
        out.edits[point] = []
        for _ in range(rounds):
            x = pooled_activations(model, tokens, [point], pooling, edits=out.functions(), prefix_len=forget.prefix_len)[0]
            new = []
            for _ in range(directions):
                xr = x - (x @ torch.stack(used + new).T) @ torch.stack(used + new) if used + new else x
                new.append(orthonormal_append(used + new, probe_direction(xr, y, l2)))
            out.edits[point].append(reflect_edit(x, y, torch.stack(new), strength))
            used += new
    return out


def fit_depthwise(
    model: Any, forget: UnlearningData, edit: Callable[[Any, Any], AffineEdit], *, hook: str,
    layers: list[int] | None, pooling: str, ident: str,
) -> HookEdits:
    """Depth by depth (upstream edits active, so each edit is fitted "live"): pool the
    activations at the depth and add ``edit(x, y)`` (x ``[n, d]``, y the 0/1 labels) there."""
    import torch

    tokens, y = forget.tensor(), torch.tensor(forget.labels)
    out = HookEdits(id=ident)
    for point in hook_points(model, hook, layers):
        x = pooled_activations(model, tokens, [point], pooling, edits=out.functions(), prefix_len=forget.prefix_len)[0]
        out.edits[point] = [edit(x, y)]
    return out
