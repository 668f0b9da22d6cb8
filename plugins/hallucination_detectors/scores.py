"""Detector maths (numpy; pure functions, imported lazily by the plugin module).

Every score is oriented "higher = more likely a hallucination". AUROC and its bootstrap stderr live in
:mod:`harness.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def covariance(z: np.ndarray) -> np.ndarray:
    """K x K centred covariance ``Z^T J Z`` of K answers' embeddings ``z [K, d]`` (INSIDE: J = I - 11^T/d
    centres each answer over its d features, divided by d - 1, i.e. ``np.cov(z)``)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 2:
        raise ValueError(f"embeddings must be [K >= 2 answers, d >= 2 features]; got shape {z.shape}.")
    zc = z - z.mean(axis=1, keepdims=True)
    return zc @ zc.T / (z.shape[1] - 1)


def eigenscore(z: np.ndarray, alpha: float = 1e-3) -> float:
    """Exact EigenScore ``(1/K) log det(cov + alpha I)`` (slogdet)."""
    a = covariance(z)
    k = a.shape[0]
    sign, logdet = np.linalg.slogdet(a + alpha * np.eye(k))
    return float(logdet / k)


def top_eigenvalue(a: np.ndarray, iters: int = 50, rng: np.random.Generator | None = None) -> float:
    """Largest eigenvalue of a symmetric PSD matrix by power iteration (Rayleigh quotient)."""
    rng = rng or np.random.default_rng(0)
    v = rng.standard_normal(a.shape[0])
    for _ in range(iters):
        w = a @ v
        nrm = np.linalg.norm(w)
        if nrm == 0.0:
            return 0.0
        v = w / nrm
    return float(v @ a @ v)


def chebyshev_log_coefficients(lo: float, n_moments: int, n_nodes: int | None = None) -> np.ndarray:
    """Chebyshev coefficients c_0..c_{M-1} of ``log x`` on x in [lo, 1] in the variable t in [-1, 1]
    (x = lo + (1 - lo)(t + 1)/2), by Chebyshev-Gauss quadrature; c_0 already halved, so
    ``log x ~ sum_m c_m T_m(t)`` with ``T_m(t) = cos(m arccos t)``."""
    n = n_nodes or max(4 * n_moments, 128)
    theta = (np.arange(n) + 0.5) * math.pi / n
    t = np.cos(theta)  # the nodes; T_m(t_j) = cos(m theta_j) because theta_j = arccos t_j
    f = np.log(lo + (1.0 - lo) * (t + 1.0) / 2.0)
    m = np.arange(n_moments)
    c = 2.0 / n * (np.cos(np.outer(m, theta)) * f).sum(axis=1)
    c[0] /= 2.0
    return c


def efficient_eigenscore(
    z: np.ndarray, alpha: float = 1e-3, n_probes: int = 20, n_moments: int = 20, seed: int = 0,
    power_iters: int = 50, safety: float = 1.05,
) -> float:
    """Efficient EigenScore (SeND, arXiv 2410.15460): Chebyshev-Hutchinson estimate of the EigenScore.

    1. ``A = cov(z) + alpha I`` (standardised answers' covariance), scaled by ``s = safety * lambda_max``
       (power iteration; the margin covers its under-estimate) so spec(A/s) lies in ``[a, 1]``, a = alpha/s.
    2. ``B = (2 A/s - (1 + a) I) / (1 - a)`` maps [a, 1] onto [-1, 1]; log is expanded there.
    3. Hutchinson moments ``z_j^T T_m(B) z_j`` (Rademacher probes), T_m by the three-term recurrence
       (= cos(m arccos x); the authors' code uses cos(m x), which is not a Chebyshev polynomial).
    4. ``EES = (K log s + sum_m c_m mean_j z_j^T T_m(B) z_j) / K``.
    """
    if n_probes < 1 or n_moments < 2:
        raise ValueError(f"need n_probes >= 1 and n_moments >= 2; got n_probes={n_probes}, n_moments={n_moments}.")
    a = covariance(z)
    k = a.shape[0]
    a = a + alpha * np.eye(k)
    rng = np.random.default_rng(seed)
    s = safety * top_eigenvalue(a, power_iters, rng)
    lo = alpha / s
    b = (2.0 * a / s - (1.0 + lo) * np.eye(k)) / (1.0 - lo)
    c = chebyshev_log_coefficients(lo, n_moments)
    v = rng.choice([-1.0, 1.0], size=(k, n_probes))
    t_prev, t_cur = v, b @ v
    total = c[0] * (v * t_prev).sum() + c[1] * (v * t_cur).sum()
    for m in range(2, n_moments):
        t_prev, t_cur = t_cur, 2.0 * (b @ t_cur) - t_prev
        total += c[m] * (v * t_cur).sum()
    return float((k * math.log(s) + total / n_probes) / k)


def perplexity(token_logprobs: Sequence[Sequence[float]]) -> float:
    """Mean over the K samples of exp(-mean token log-prob)."""
    return float(np.mean([math.exp(-sum(lp) / max(len(lp), 1)) for lp in token_logprobs]))


def predictive_entropy(token_logprobs: Sequence[Sequence[float]]) -> float:
    """Length-normalised predictive entropy (Malinin & Gales 2021): ``-mean_k (1/L_k) sum_t log p``."""
    return float(-np.mean([sum(lp) / max(len(lp), 1) for lp in token_logprobs]))


def rouge_l(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 between two token lists (longest common subsequence)."""
    if not a or not b:
        return float(len(a) == len(b))
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(a), lcs / len(b)
    return 2 * p * r / (p + r)


def lexical_similarity(texts: Sequence[str]) -> float:
    """Negated mean pairwise ROUGE-L between the K samples (agreeing answers -> low score)."""
    toks = [t.lower().split() for t in texts]
    pairs = [(i, j) for i in range(len(toks)) for j in range(i + 1, len(toks))]
    if not pairs:
        raise ValueError("lexical_similarity needs at least 2 sampled texts.")
    return -float(np.mean([rouge_l(toks[i], toks[j]) for i, j in pairs]))
