"""Sparse probing (SAEBench, after Gurnee et al. 2023): top-k latents by mean difference.

For each class of a class set, a balanced one-vs-rest binary task: the k latents with the
largest |mean(pos) - mean(neg)| on the training examples are selected, a logistic
regression is fit on them and scored on held-out examples. The same probe on the raw
residual stream (all d_model dimensions) is the reference. Inputs are mean-pooled over each
example's tokens (BOS and padding excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.stats import mean_stderr


@dataclass
class ProbeScore:
    accuracy: float
    stderr: float
    n_tasks: int
    n_test: int


def _balanced_task(labels: np.ndarray, cls: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a balanced one-vs-rest subset: all positives and as many random negatives."""
    pos = np.flatnonzero(labels == cls)
    neg = np.flatnonzero(labels != cls)
    m = min(len(pos), len(neg))
    return np.concatenate([rng.choice(pos, m, replace=False), rng.choice(neg, m, replace=False)])


def top_k_by_mean_diff(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Columns of ``x`` with the k largest |mean over y=1 - mean over y=0|."""
    diff = np.abs(x[y == 1].mean(0) - x[y == 0].mean(0))
    return np.argsort(-diff, kind="stable")[:k]


def _fit_score(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(ytr)) < 2:
        return float(np.mean(yte == ytr[0]))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(xtr, ytr)
    return float(clf.score(xte, yte))


def probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    k: int | None,
    seed: int = 0,
) -> ProbeScore:
    """Mean held-out accuracy over one-vs-rest balanced tasks (k=None: all columns)."""
    rng = np.random.default_rng(seed)
    accs, n_test = [], 0
    for cls in np.unique(y_train):
        if not (y_test == cls).any():
            continue
        tr = _balanced_task(y_train, cls, rng)
        te = _balanced_task(y_test, cls, rng)
        ytr, yte = (y_train[tr] == cls).astype(int), (y_test[te] == cls).astype(int)
        cols = slice(None) if k is None else top_k_by_mean_diff(x_train[tr], ytr, k)
        accs.append(_fit_score(x_train[tr][:, cols], ytr, x_test[te][:, cols], yte, seed))
        n_test += len(te)
    a = np.asarray(accs)
    se = mean_stderr(a) or 0.0
    return ProbeScore(float(a.mean()), se, len(a), n_test)


def text_activations(loaded, hook_point: str, texts: list[str], *, batch_size: int = 32, context_length: int = 64):
    """Per batch of ``texts`` (unpacked, padded): the hook point's activations [B, T, d] (float32) and the
    kept positions [B, T] (BOS and padding out). Kept in the process's memo (:mod:`harness.memo`) by
    (model, hook point, texts, batching): every SAE probed on the same texts shares one model pass."""
    from harness.memo import digest, memo, model_key
    from harness.models import harvest

    def build() -> list[tuple[Any, Any]]:
        import torch

        bos = loaded.require_tokenizer().bos_token_id
        out = []
        with torch.no_grad():
            for acts in harvest(loaded, hook_point, texts, batch_size=batch_size, context_length=context_length,
                                pack=False):  # fmt: skip
                a = acts.acts[hook_point].float()
                out.append((a, acts.keep_mask(bos_token_id=bos).to(a.device)))
        return out

    key = ("sae.text_acts", model_key(loaded), hook_point, digest(texts), batch_size, context_length)
    return memo().get(key, build)


def pooled_features(loaded, sae, hook_point: str, texts: list[str], *, batch_size: int = 32, context_length: int = 64):
    """Mean-pooled residual [n, d] and latent [n, d_sae] activations of each text (numpy)."""
    import torch

    resid, latents = [], []
    with torch.no_grad():
        for a, keep in text_activations(loaded, hook_point, texts, batch_size=batch_size,
                                        context_length=context_length):  # fmt: skip
            f = sae.encode(a.reshape(-1, a.shape[-1])).reshape(*a.shape[:-1], -1)
            w = keep.float().unsqueeze(-1)
            cnt = w.sum(1).clamp_min(1)
            resid.append(((a * w).sum(1) / cnt).cpu())
            latents.append(((f * w).sum(1) / cnt).cpu())
    return torch.cat(resid).numpy().astype(np.float64), torch.cat(latents).numpy().astype(np.float64)
