"""RAVEL-style cause and isolation scores, independent of where the activations and answers come from.

Per attribute ``r`` the caller gives :class:`AttributeItems`: the activation at the entity position
of each item's prompt for ``r`` and the answer (value id) the model gives. Then

1. **selection** (:func:`select_latents`): on the selection half of ``r``'s items, the ``k``
   latents whose activations best separate one value of ``r`` from the others (largest
   standardised mean difference, maximum over values);
2. **intervention** (:func:`patch`): the base item's latents ``L_r`` are replaced by the source
   item's, and the activation becomes ``x + decode(z') - decode(z)`` (the SAE error is kept, as
   SAEBench does);
3. **cause** of ``r``: on pairs of evaluation items of ``r`` with different values, the share
   where the patched model answers the *source's* value;
   **isolation** of ``r``: on pairs of evaluation items of every other attribute ``s``, patched
   with ``L_r``, the share where the model still answers the *base's* value of ``s``.

``predict(attribute, base_rows, x_patched) -> value ids`` runs the model on the base items'
prompts with the patched activation at their entity position (-1 = none of the values).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

Predict = Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AttributeItems:
    """One attribute: activations ``reps`` ``[n, d]`` at the entity position and answers ``[n]`` (value ids)."""

    name: str
    reps: torch.Tensor
    answers: torch.Tensor


@dataclass(frozen=True)
class RavelResult:
    """Cause and isolation per attribute (and the number of pairs behind each)."""

    cause: dict[str, float]
    isolation: dict[str, float]
    n_cause: dict[str, int]
    n_isolation: dict[str, int]
    latents: dict[str, list[int]]

    @property
    def complete(self) -> bool:
        """Both scores exist for at least one attribute."""
        return bool(self.cause) and bool(self.isolation)

    @property
    def mean_cause(self) -> float:
        return sum(self.cause.values()) / len(self.cause)

    @property
    def mean_isolation(self) -> float:
        return sum(self.isolation.values()) / len(self.isolation)

    @property
    def score(self) -> float:
        """SAEBench's disentanglement score: the mean of cause and isolation."""
        return (self.mean_cause + self.mean_isolation) / 2


def select_latents(z: torch.Tensor, answers: torch.Tensor, k: int) -> list[int]:
    """The ``k`` latents of ``z`` ``[n, d_sae]`` with the largest standardised mean difference between one
    value of ``answers`` and the rest (maximum over values with at least 2 items; ties: lower index)."""
    z = z.double()
    sd = z.std(0, unbiased=False)
    best = torch.zeros(z.shape[1], dtype=torch.float64)
    for v in answers.unique().tolist():
        m = answers == v
        if int(m.sum()) < 2 or int((~m).sum()) < 1:
            continue
        diff = (z[m].mean(0) - z[~m].mean(0)).abs()
        best = torch.maximum(best, torch.where(sd > 0, diff / sd.clamp_min(1e-12), torch.zeros_like(diff)))
    order = sorted(range(z.shape[1]), key=lambda j: (-float(best[j]), j))
    return order[:k]


def pairs(answers: torch.Tensor, n_pairs: int, gen: torch.Generator) -> torch.Tensor:
    """Up to ``n_pairs`` (base, source) row pairs with different answers, ``[m, 2]``."""
    n = answers.numel()
    if n < 2:
        return torch.zeros((0, 2), dtype=torch.long)
    i = torch.randint(0, n, (4 * n_pairs,), generator=gen)
    j = torch.randint(0, n, (4 * n_pairs,), generator=gen)
    ok = answers[i] != answers[j]
    return torch.stack([i[ok], j[ok]], -1)[:n_pairs]


def patch(sae: object, x_base: torch.Tensor, x_source: torch.Tensor, latents: list[int]) -> torch.Tensor:
    """``x_base + decode(z') - decode(z_base)``, ``z'`` = the base's latents with ``latents`` taken from the source."""
    with torch.no_grad():
        z_b, z_s = sae.encode(x_base), sae.encode(x_source)
        z_new = z_b.clone()
        z_new[:, latents] = z_s[:, latents]
        return x_base + sae.decode(z_new) - sae.decode(z_b)


def ravel_scores(
    items: Mapping[str, AttributeItems], sae: object, predict: Predict, *, k: int, n_pairs: int, seed: int
) -> RavelResult:
    """Cause and isolation of every attribute of ``items`` (needs at least two attributes)."""
    if len(items) < 2:
        raise ValueError(f"RAVEL isolation needs at least two attributes; got {list(items)}.")
    gen = torch.Generator().manual_seed(seed)
    device = next(iter(sae.parameters()), torch.zeros(0)).device if hasattr(sae, "parameters") else torch.device("cpu")
    sel, ev = {}, {}
    for name, it in items.items():
        idx = torch.arange(it.answers.numel())
        sel[name], ev[name] = idx[0::2], idx[1::2]
    chosen = {}
    for name, it in items.items():
        with torch.no_grad():
            z = sae.encode(it.reps[sel[name]].to(device)).float().cpu()
        chosen[name] = select_latents(z, it.answers[sel[name]], k)
    cause, iso, n_c, n_i = {}, {}, {}, {}
    for r, it in items.items():
        p = ev[r][pairs(it.answers[ev[r]], n_pairs, gen)]
        if not len(p):
            continue  # fewer than two values among the evaluation items: no cause pairs, attribute skipped
        x = patch(sae, it.reps[p[:, 0]].to(device), it.reps[p[:, 1]].to(device), chosen[r]).cpu()
        pred = predict(r, p[:, 0], x)
        cause[r], n_c[r] = float((pred == it.answers[p[:, 1]]).double().mean()), len(p)
        kept, total = 0, 0
        for s, other in items.items():
            if s == r:
                continue
            q = ev[s][pairs(other.answers[ev[s]], n_pairs, gen)]
            xq = patch(sae, other.reps[q[:, 0]].to(device), other.reps[q[:, 1]].to(device), chosen[r]).cpu()
            kept += int((predict(s, q[:, 0], xq) == other.answers[q[:, 0]]).sum())
            total += len(q)
        if total:
            iso[r], n_i[r] = kept / total, total
    return RavelResult(cause, iso, n_c, n_i, chosen)
