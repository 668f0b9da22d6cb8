"""Interventions and the fitting code of the built-in unlearning methods.

Two kinds of :class:`harness.protocols.Intervention`, both removable:

- :class:`HookEdits`: per hook point a list of affine edits ``h <- h - ((h V^T) - t) U``
  (rank k = rows of U/V), installed with :func:`harness.models.intervene` only inside
  ``apply(model)``;
- :class:`WeightEdit`: replacement parameter tensors copied in on enter and the originals
  copied back on exit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
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


def fit_mean_diff(model: Any, forget: UnlearningData, *, hook: str, layers: list[int] | None, pooling: str, ident: str) -> HookEdits:
    """Project out the (live) class-mean difference at every depth: h <- h - ((h - mu).w) w."""
    import torch

    tokens, y = forget.tensor(), torch.tensor(forget.labels)
    out = HookEdits(id=ident)
    for point in hook_points(model, hook, layers):
        x = pooled_activations(model, tokens, [point], pooling, edits=out.functions(), prefix_len=forget.prefix_len)[0]
        d = x[y == 1].mean(0) - x[y == 0].mean(0)
        d = (d / d.norm().clamp_min(1e-12)).unsqueeze(0)
        out.edits[point] = [AffineEdit(U=d, V=d.clone(), t=(x.mean(0) @ d.T))]
    return out


def leace_edit(x: Any, y: Any, eps: float = 1e-6) -> AffineEdit:
    """Closed-form LEACE (Belrose et al. 2023, arXiv 2306.03819) for a binary concept:
    r(x) = x - W^+ P W (x - mu), W = Sigma^{-1/2} (pseudo-inverse on the data's span),
    P = projection onto W Sigma_xz. Afterwards no linear probe beats the constant predictor."""
    import torch

    x = x.double()
    z = y.double() - y.double().mean()
    mu = x.mean(0)
    xc = x - mu
    sigma = xc.T @ xc / len(x)
    sxz = xc.T @ z / len(x)
    evals, evecs = torch.linalg.eigh(sigma)
    keep = evals > eps * evals.max()
    v, lam = evecs[:, keep], evals[keep]
    W = v @ torch.diag(lam.rsqrt()) @ v.T
    W_pinv = v @ torch.diag(lam.sqrt()) @ v.T
    u = W @ sxz
    u = u / u.norm().clamp_min(1e-30)
    U, V = (W_pinv @ u).unsqueeze(0), (W @ u).unsqueeze(0)
    return AffineEdit(U=U.float(), V=V.float(), t=(mu @ V.T).float())


def fit_leace(model: Any, forget: UnlearningData, *, hook: str, layers: list[int] | None, pooling: str, ident: str) -> HookEdits:
    import torch

    tokens, y = forget.tensor(), torch.tensor(forget.labels)
    out = HookEdits(id=ident)
    for point in hook_points(model, hook, layers):
        x = pooled_activations(model, tokens, [point], pooling, edits=out.functions(), prefix_len=forget.prefix_len)[0]
        out.edits[point] = [leace_edit(x, y)]
    return out


def fit_gradient_ascent(
    model: Any, forget: UnlearningData, retain: UnlearningData, *, steps: int, lr: float,
    retain_weight: float, seed: int, ident: str,
) -> WeightEdit:
    """Ascend the suffix loss of the memorised (label 1) sequences and descend the loss on
    ``retain`` text, on a copy of the model; returns the changed parameters as a WeightEdit."""
    import copy

    import torch

    torch.manual_seed(seed)
    hf = copy.deepcopy(getattr(model, "model", model)).float().train()
    mem = forget.subset(1).tensor()
    ret = retain.tensor()
    p = forget.prefix_len + 1
    opt = torch.optim.Adam(hf.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        logits = hf(input_ids=mem, use_cache=False).logits[:, p - 1 : -1]
        f_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), mem[:, p:].reshape(-1))
        r_logits = hf(input_ids=ret, use_cache=False).logits[:, :-1]
        r_loss = torch.nn.functional.cross_entropy(r_logits.reshape(-1, r_logits.shape[-1]), ret[:, 1:].reshape(-1))
        (-f_loss + retain_weight * r_loss).backward()
        opt.step()
    return WeightEdit(id=ident, params={n: q.detach().clone() for n, q in hf.named_parameters()})
