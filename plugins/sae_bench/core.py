"""Core SAEBench-style metrics as plain tensor functions (no model, no plugin machinery).

Every function takes real activations ``x`` [n, d], reconstructions ``x_hat`` [n, d] and
latents ``f`` [n, d_sae] (or the CE / KL sums of a spliced forward pass) and returns floats,
so the metric plugins and the tests share one implementation.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from harness.stats import bootstrap_weights


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float64)


def l0(f: torch.Tensor) -> float:
    """Mean number of non-zero latents per token (signed latents count too)."""
    return float((f != 0).sum(-1).double().mean())


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean over tokens and dimensions of (x - x_hat)^2 (SAEBench ``mse``)."""
    return float((_f64(x) - _f64(x_hat)).pow(2).mean())


def explained_variance(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """1 - sum_t ||x_t - x_hat_t||^2 / sum_t ||x_t - mean(x)||^2 (per-dimension mean over the set)."""
    x, x_hat = _f64(x), _f64(x_hat)
    total = (x - x.mean(0)).pow(2).sum()
    if total <= 0:
        raise ValueError("explained variance is undefined for constant activations")
    return float(1 - (x - x_hat).pow(2).sum() / total)


def explained_variance_saebench(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """SAELens / SAEBench ``explained_variance_legacy``: the per-token ratio
    1 - ||x_t - x_hat_t||^2 / ||x_t - mean(x)||^2, averaged over tokens."""
    x, x_hat = _f64(x), _f64(x_hat)
    resid = (x - x_hat).pow(2).sum(-1)
    total = (x - x.mean(0)).pow(2).sum(-1).clamp_min(1e-12)
    return float((1 - resid / total).mean())


def cosine_similarity(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean over tokens of cos(x_t, x_hat_t) (0 where either vector is zero)."""
    x, x_hat = _f64(x), _f64(x_hat)
    den = x.norm(dim=-1) * x_hat.norm(dim=-1)
    cos = torch.where(den > 0, (x * x_hat).sum(-1) / den.clamp_min(1e-300), torch.zeros_like(den))
    return float(cos.mean())


def l2_ratio(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean over tokens of ||x_hat_t|| / ||x_t|| (SAEBench ``l2_ratio``; 1 = no shrinkage)."""
    x, x_hat = _f64(x), _f64(x_hat)
    return float((x_hat.norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-12)).mean())


def recovered_score(clean: float, with_sae: float, ablated: float) -> float:
    """(ablated - with_sae) / (ablated - clean): 1 = the SAE loses nothing, 0 = as bad as ablation.

    Used for CE-loss recovered (clean/with_sae/ablated CE) and, with ``clean = 0``, for the KL
    score (KL of the spliced / ablated logits to the clean ones).
    """
    den = ablated - clean
    if not math.isfinite(den) or abs(den) < 1e-12:
        raise ValueError(f"recovered score undefined: ablation changes nothing (ablated={ablated}, clean={clean})")
    return float((ablated - with_sae) / den)


def feature_density(f: torch.Tensor) -> torch.Tensor:
    """Fraction of tokens on which each latent is non-zero, [d_sae] (float64)."""
    return (f != 0).double().mean(0)


@torch.no_grad()
def latent_density(sae: Any, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """:func:`feature_density` of ``sae.encode`` over activations ``x`` [n, d_in], encoded ``chunk`` rows at a
    time on the SAE's device (float64 [d_sae] on the CPU)."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"latent density needs activations [n >= 1, d_in]; got shape {tuple(x.shape)}.")
    device = next(sae.parameters()).device
    fire: torch.Tensor | None = None
    for part in x.split(chunk):
        f = sae.encode(part.to(device).float())
        c = (f != 0).sum(0).double().cpu()
        fire = c if fire is None else fire + c
    return fire / x.shape[0]  # type: ignore[operator]


def alive_fraction(density: torch.Tensor) -> float:
    """Fraction of latents that fired at least once on the evaluation tokens."""
    return float((density > 0).double().mean())


def dense_fraction(density: torch.Tensor, threshold: float) -> float:
    """Fraction of latents firing on more than ``threshold`` of the tokens."""
    return float((density > threshold).double().mean())


class ReconstructionAccumulator:
    """Per-token statistics of the reconstruction metrics (exactly the functions above, in one pass).

    Tokens are grouped by context (``ctx``; all in context 0 when not given): :meth:`per_context`
    sums every statistic per context, :meth:`results` reads the point values off the total of
    those sums (:func:`metrics_from_sums`), and :func:`bootstrap_stderr` re-weights the contexts.
    The explained variances need mean(x) over the whole set, so tokens are kept (float64).
    """

    def __init__(self) -> None:
        self.n = 0
        self.fire: torch.Tensor | None = None
        #: Number of contexts seen (contexts without kept tokens included), set by the caller.
        self.contexts = 0
        self._x: list[torch.Tensor] = []
        self._tok: dict[str, list[torch.Tensor]] = {"ctx": [], "l0": [], "sq_err": [], "cos": [], "ratio": []}

    def add(self, x: torch.Tensor, x_hat: torch.Tensor, f: torch.Tensor, ctx: torch.Tensor | None = None) -> None:
        """Add tokens; ``ctx`` [n] (optional) names each token's context for :meth:`per_context`."""
        x, x_hat = _f64(x), _f64(x_hat)
        fire = (f != 0).sum(0).double().cpu()
        self.fire = fire if self.fire is None else self.fire + fire
        t = self._tok
        t["ctx"].append(torch.zeros(x.shape[0], dtype=torch.long) if ctx is None else ctx.long().cpu())
        t["l0"].append((f != 0).sum(-1).double().cpu())
        t["sq_err"].append((x - x_hat).pow(2).sum(-1).cpu())
        t["cos"].append(torch.nn.functional.cosine_similarity(x, x_hat, dim=-1, eps=1e-12).cpu())
        t["ratio"].append((x_hat.norm(dim=-1) / x.norm(dim=-1).clamp_min(1e-12)).cpu())
        self._x.append(x.cpu())
        self.n += x.shape[0]

    def per_context(self) -> dict[str, torch.Tensor]:
        """Per-context sums [C, ...] of every token statistic (contexts as given to :meth:`add`).

        ``evs`` is the per-token SAEBench explained variance around the mean of ALL tokens, so the
        bootstrap re-weights contexts while that mean stays fixed.
        """
        tok = {k: torch.cat(v) for k, v in self._tok.items()}
        ctx = tok.pop("ctx")
        c = max(int(ctx.max()) + 1, self.contexts)
        x = torch.cat(self._x)
        tok["evs"] = 1 - tok["sq_err"] / (x - x.mean(0)).pow(2).sum(-1).clamp_min(1e-12)
        tok["n"] = torch.ones(x.shape[0], dtype=torch.float64)
        tok["x_sq"] = x.pow(2).sum(-1)
        sums = {k: torch.zeros(c, dtype=torch.float64).index_add_(0, ctx, v.double()) for k, v in tok.items()}
        sums["x_sum"] = torch.zeros(c, x.shape[1], dtype=torch.float64).index_add_(0, ctx, x)
        return sums

    def results(self) -> dict[str, Any]:
        per_context = self.per_context()
        total = {k: v.sum(0, keepdim=True) for k, v in per_context.items()}
        if float(total["x_sq"][0] - total["x_sum"].pow(2).sum() / self.n) <= 0:
            raise ValueError("explained variance is undefined for constant activations")
        point = metrics_from_sums(total)
        keys = ("l0", "mse", "explained_variance", "explained_variance_saebench", "cossim", "l2_ratio")
        return {k: float(point[k][0]) for k in keys} | {
            "n_tokens": self.n, "density": self.fire / self.n, "per_context": per_context,
            "activations": torch.cat(self._x).float(),
        }


def metrics_from_sums(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every core metric from summed statistics (each entry [B, ...]: B weightings of the contexts).

    Keys used when present: n, l0, sq_err, x_sq, x_sum [.., d], evs, cos, ratio (reconstruction) and
    ce_clean, ce_sae, ce_zero, kl_sae, kl_zero (spliced forward passes; the prediction count cancels).
    """
    out: dict[str, torch.Tensor] = {}
    if "n" in s:
        n = s["n"]
        total = s["x_sq"] - s["x_sum"].pow(2).sum(-1) / n
        out |= {
            "l0": s["l0"] / n, "mse": s["sq_err"] / (n * s["x_sum"].shape[-1]), "explained_variance": 1 - s["sq_err"] / total,
            "explained_variance_saebench": s["evs"] / n, "cossim": s["cos"] / n, "l2_ratio": s["ratio"] / n,
        }  # fmt: skip
    if "ce_clean" in s:
        out["ce_loss_recovered"] = (s["ce_zero"] - s["ce_sae"]) / (s["ce_zero"] - s["ce_clean"])
        out["kl_score"] = (s["kl_zero"] - s["kl_sae"]) / s["kl_zero"]
    return out


def bootstrap_stderr(per_context: dict[str, torch.Tensor], n_boot: int = 200, seed: int = 0) -> dict[str, float]:
    """Standard error of every core metric by resampling contexts with replacement (``n_boot`` draws).

    Tokens of one context are correlated, so contexts (not tokens) are the sampling unit. The
    weights of a draw are the multiplicities of the drawn contexts (:func:`harness.stats.bootstrap_weights`);
    every metric is a ratio of weighted sums (:func:`metrics_from_sums`), so one matrix product per
    statistic does all draws (the SAE-specific part: which sums, and the ratios read off them).
    """
    c = next(iter(per_context.values())).shape[0]
    if c < 2:
        return {}
    w = bootstrap_weights(c, n_boot, seed)
    sums = {k: w @ v.double() for k, v in per_context.items()}
    return {k: float(v.std(unbiased=True)) for k, v in metrics_from_sums(sums).items()}
