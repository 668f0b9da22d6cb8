"""Feature absorption on first-letter spelling (SAEBench, Karvonen et al. arXiv 2503.09532, after
Chanin et al. "A is for Absorption", arXiv 2409.14507).

Pipeline (SAEBench ``evals/absorption``; our choices in README.md):

1. Every world spelling word ``w`` runs alone as ``BOS + template.format(word=w)`` (default
   ``" {word} starts with"``, the world's spelling sentence without its answer); the residual
   activation at prompt position ``token_pos`` (default -1, the final token) is read.
2. Words are split per letter into train / test (seeded); only letters with at least
   ``min_train_words`` training words are kept.
3. Ground-truth probe: one balanced one-vs-rest logistic regression per letter on the raw
   residual activations; its unit weight row is the letter's probe direction. A test word is a
   probe true positive when its letter's logit is > 0.
4. k-sparse probing: an L1-regularised one-vs-rest probe on the SAE latents ranks latents by
   weight; for k = 1..max_k a balanced logistic regression on the top-k latents is scored by
   test F1; the top-k set grows while F1 improves by more than ``f1_jump_threshold``: the
   letter's main (split) latents.
5. Per true-positive word: SAEBench's absorption fraction and full-absorption test
   (:func:`word_absorption`); per letter the mean over its true positives; the result is the
   mean over letters.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: SAEBench ``FeatureAbsorptionCalculator`` defaults (the shipped code, not the paper's Table 8).
FULL_ABSORPTION_COS_THRESHOLD = 0.025
ABSORPTION_FRACTION_COS_THRESHOLD = 0.1
PROBE_PROJECTION_PROPORTION_THRESHOLD = 0.4
MAX_ABSORBING_LATENTS = 3
EPS = 1e-8
#: SAEBench ground-truth probe: Adam weight decay 1e-4; k-sparse selection probe: L1 decay 0.01.
GT_PROBE_WEIGHT_DECAY = 1e-4
K_SPARSE_L1_DECAY = 0.01
#: SAEBench ``min_GT_probe_f1``: a letter's first-letter feature counts as present above this F1.
MIN_GT_PROBE_F1 = 0.6


@dataclass
class WordAbsorption:
    """One probe-true-positive test word."""

    word: str
    letter: str
    probe_projection: float
    main_projection: float
    absorber_projection: float
    absorption_fraction: float
    is_full_absorption: bool
    top_latent: int
    top_latent_cos: float


@dataclass
class AbsorptionResult:
    mean_absorption_fraction: float
    full_absorption_rate: float
    mean_split_features: float
    std_absorption_fraction: float
    std_full_absorption_rate: float
    std_split_features: float
    n_letters: int
    n_true_positives: int
    probe_accuracy: float
    probe_chance: float
    n_probe_test: int
    n_letters_probe_f1_ok: int
    letters: dict[str, dict[str, Any]] = field(default_factory=dict)
    words: list[WordAbsorption] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        """JSON-ready summary for a cell's ``details``."""
        r = lambda v: round(float(v), 4)  # noqa: E731
        return {
            "mean_absorption_fraction": r(self.mean_absorption_fraction),
            "full_absorption_rate": r(self.full_absorption_rate),
            "mean_split_features": r(self.mean_split_features),
            "n_letters": self.n_letters,
            "n_true_positives": self.n_true_positives,
            "probe_accuracy": r(self.probe_accuracy),
            "probe_chance": r(self.probe_chance),
            "n_probe_test": self.n_probe_test,
            "n_letters_probe_f1_ok": self.n_letters_probe_f1_ok,
            "letters": self.letters,
        }


def word_absorption(
    probe_projection: float, latent_projection: np.ndarray, latent_acts: np.ndarray, cos: np.ndarray, main_ids: list[int]
) -> tuple[float, bool, int, float, float]:
    """SAEBench's per-word absorption fraction and full-absorption flag.

    ``probe_projection`` = x . p (p the unit probe direction); ``latent_acts`` f [d_sae];
    ``cos`` [d_sae] = cos(W_dec row, p); ``latent_projection`` = f * cos. Returns
    ``(absorption_fraction, is_full_absorption, top_projecting_latent, main_projection,
    absorber_projection)``.
    """
    main = float(latent_projection[main_ids].sum())
    cand = np.ones(latent_projection.shape[0], dtype=bool)
    cand[main_ids] = False
    cand &= (cos >= ABSORPTION_FRACTION_COS_THRESHOLD) & (latent_projection > 0)
    absorbers = float(np.sort(latent_projection[cand])[::-1][:MAX_ABSORBING_LATENTS].sum())
    # probe_projection <= 0: SAEBench's ratio is then <= 0 < 0.4 (or a division by zero), i.e. 0
    if main >= probe_projection or probe_projection <= 0 or absorbers / probe_projection < PROBE_PROJECTION_PROPORTION_THRESHOLD:
        fraction = 0.0
    elif main <= 0.0:
        fraction = 1.0
    else:
        absorbed = min(absorbers, probe_projection - main)
        fraction = float(np.clip(absorbed / (absorbed + main), 0.0, 1.0))
    top = int(np.argsort(-latent_projection, kind="stable")[0])
    full = (
        bool(np.all(np.abs(latent_acts[main_ids]) < EPS))
        and cos[top] >= FULL_ABSORPTION_COS_THRESHOLD
        and probe_projection > 0
        and latent_projection[top] / probe_projection >= PROBE_PROJECTION_PROPORTION_THRESHOLD
    )
    return fraction, bool(full), top, main, absorbers


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, zero_division=0.0))


def _ground_truth_probe(x_tr: np.ndarray, y_tr: np.ndarray, letters: list[str], seed: int):
    """Unit probe directions [n_letters, d] and a logit function (balanced one-vs-rest LR)."""
    from sklearn.linear_model import LogisticRegression

    c = 1.0 / (GT_PROBE_WEIGHT_DECAY * len(y_tr))
    ws, bs = [], []
    for letter in letters:
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
        clf.fit(x_tr, (y_tr == letter).astype(int))
        ws.append(clf.coef_[0])
        bs.append(clf.intercept_[0])
    w, b = np.stack(ws), np.asarray(bs)
    return w / np.linalg.norm(w, axis=1, keepdims=True).clip(1e-12), lambda x: x @ w.T + b


def _split_features(f_tr, yb_tr, f_te, yb_te, max_k: int, f1_jump_threshold: float, seed: int) -> tuple[list[int], list[float]]:
    """SAEBench's k-sparse probing + ``add_feature_splits_to_metrics_df`` for one letter."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    # scikit-learn >= 1.8 spells the L1 penalty l1_ratio=1 (penalty= is deprecated there)
    l1_arg = {"l1_ratio": 1.0} if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8) else {"penalty": "l1"}
    l1 = LogisticRegression(
        **l1_arg, solver="liblinear", C=1.0 / (K_SPARSE_L1_DECAY * len(yb_tr)), class_weight="balanced",
        max_iter=2000, random_state=seed,
    )  # fmt: skip
    l1.fit(f_tr, yb_tr)
    mean_diff = f_tr[yb_tr == 1].mean(0) - f_tr[yb_tr == 0].mean(0)
    order = np.lexsort((-mean_diff, -l1.coef_[0]))  # by L1 weight, ties by mean difference
    split: list[int] = []
    f1s: list[float] = []
    prev = -100.0
    for k in range(1, min(max_k, f_tr.shape[1]) + 1):
        feats = order[:k]
        clf = LogisticRegression(max_iter=500, class_weight="balanced", random_state=seed).fit(f_tr[:, feats], yb_tr)
        f1 = _f1(yb_te, (clf.decision_function(f_te[:, feats]) > 0).astype(int))
        f1s.append(round(f1, 4))
        if f1 > prev + f1_jump_threshold:
            prev, split = f1, [int(i) for i in feats]
        else:
            break
    return split, f1s


def absorption_from_activations(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    sae: Any,
    *,
    words_test: list[str] | None = None,
    seed: int = 0,
    max_k: int = 10,
    f1_jump_threshold: float = 0.03,
) -> AbsorptionResult:
    """Absorption metrics from residual activations [n, d] with first-letter labels (str arrays)."""
    import torch

    letters = sorted(set(y_train.tolist()))
    probe_dirs, logits = _ground_truth_probe(x_train, y_train, letters, seed)
    w_dec = sae.W_dec.detach().double().cpu().numpy()
    cos_all = (probe_dirs @ w_dec.T) / np.linalg.norm(w_dec, axis=1).clip(1e-12)  # [letters, d_sae]

    def encode(x: np.ndarray) -> np.ndarray:
        w = sae.W_dec
        with torch.no_grad():
            return sae.encode(torch.as_tensor(x, dtype=w.dtype, device=w.device)).double().cpu().numpy()

    f_tr, f_te = encode(x_train), encode(x_test)
    lt = logits(x_test)
    pred = np.asarray(letters)[lt.argmax(1)]
    words_test = words_test or [str(i) for i in range(len(y_test))]
    per_letter: dict[str, dict[str, Any]] = {}
    word_results: list[WordAbsorption] = []
    n_f1_ok = 0
    for li, letter in enumerate(letters):
        yb_tr, yb_te = (y_train == letter).astype(int), (y_test == letter).astype(int)
        probe_f1 = _f1(yb_te, (lt[:, li] > 0).astype(int))
        n_f1_ok += probe_f1 > MIN_GT_PROBE_F1
        main, f1s = _split_features(f_tr, yb_tr, f_te, yb_te, max_k, f1_jump_threshold, seed)
        tp = np.flatnonzero((yb_te == 1) & (lt[:, li] > 0))
        if tp.size == 0:
            continue  # SAEBench's aggregation only sees letters with probe true positives
        cos = cos_all[li]
        rows = []
        for i in tp:
            proj = float(x_test[i] @ probe_dirs[li])
            frac, full, top, main_p, abs_p = word_absorption(proj, f_te[i] * cos, f_te[i], cos, main)
            rows.append(WordAbsorption(words_test[i], letter, proj, main_p, abs_p, frac, full, top, float(cos[top])))
        word_results += rows
        per_letter[letter] = {
            "mean_absorption_fraction": round(sum(r.absorption_fraction for r in rows) / len(rows), 4),
            "full_absorption_rate": round(sum(r.is_full_absorption for r in rows) / len(rows), 4),
            "num_full_absorption": int(sum(r.is_full_absorption for r in rows)),
            "num_probe_true_positives": len(rows),
            "split_feats": main,
            "k_sparse_f1": f1s,
            "probe_f1": round(probe_f1, 4),
        }
    if not per_letter:
        raise ValueError("absorption: the ground-truth probe found no true positives on the test words")
    vals = list(per_letter.values())

    def mean_sd(key: str, fn=lambda v: v) -> tuple[float, float]:
        xs = [float(fn(v[key])) for v in vals]
        return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

    af, af_sd = mean_sd("mean_absorption_fraction")
    fr, fr_sd = mean_sd("full_absorption_rate")
    ns, ns_sd = mean_sd("split_feats", len)
    return AbsorptionResult(
        af, fr, ns, af_sd, fr_sd, ns_sd, len(per_letter), len(word_results), float(np.mean(pred == y_test)),
        1.0 / len(letters), len(y_test), int(n_f1_ok), per_letter, word_results,
    )  # fmt: skip


def vocabulary_words(tokenizer: Any, *, max_words: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """(word, first letter) for the single-token alphabetic words of ``tokenizer``'s vocabulary (SAEBench
    ``get_alpha_tokens``): tokens that decode to a space followed by ASCII letters only, the word being
    the letters (the template puts the space back: ``" {word} starts with"``), its letter lower-cased.
    At most ``max_words`` of them (a sample seeded by ``seed``), sorted."""
    ids = sorted(set(tokenizer.get_vocab().values()))
    special = set(getattr(tokenizer, "all_special_ids", None) or [])
    words: set[str] = set()
    for i in ids:
        if i in special:
            continue
        text = tokenizer.decode([i])
        if len(text) > 1 and text[0] == " " and text[1:].isascii() and text[1:].isalpha():
            words.add(text[1:])
    out = sorted(words)
    if not out:
        raise ValueError("absorption: the tokenizer has no single-token alphabetic words (' word' tokens); fix: "
                         "turn off absorption for this model")
    if max_words is not None and len(out) > max_words:
        keep = np.random.default_rng(seed).choice(len(out), size=max_words, replace=False)
        out = [out[i] for i in sorted(keep)]
    return [(w, w[0].lower()) for w in out]


def split_words(pairs: list[tuple[str, str]], seed: int, test_fraction: float, min_train_words: int):
    """Per-letter seeded split; letters with fewer than ``min_train_words`` training words are dropped."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for letter in sorted({lt for _, lt in pairs}):
        ws = sorted(w for w, lt in pairs if lt == letter)
        ws = [ws[i] for i in rng.permutation(len(ws))]
        n_test = max(1, round(len(ws) * test_fraction))
        if len(ws) - n_test < min_train_words:
            continue
        test += [(w, letter) for w in ws[:n_test]]
        train += [(w, letter) for w in ws[n_test:]]
    return train, test


def prompt_activations(
    loaded: Any, hook_point: str, words: list[str], *, template: str, token_pos: int, batch_size: int = 64
) -> np.ndarray:
    """[n, d] residual activations at prompt position ``token_pos`` of ``BOS + template(word)`` (a copy of the
    process memo's, :mod:`harness.memo`: every SAE scored on the same words shares one model pass)."""
    from harness.memo import memo, model_key

    key = ("sae.prompt_acts", model_key(loaded), hook_point, tuple(words), template, token_pos, batch_size)
    return memo().get(key, lambda: _prompt_activations(loaded, hook_point, words, template=template,
                                                       token_pos=token_pos, batch_size=batch_size)).copy()


def _prompt_activations(
    loaded: Any, hook_point: str, words: list[str], *, template: str, token_pos: int, batch_size: int
) -> np.ndarray:
    import torch

    from harness.models import harvest

    tok = loaded.require_tokenizer()
    bos = tok.bos_token_id
    rows = [([bos] if bos is not None else []) + tok(template.format(word=w), add_special_tokens=False)["input_ids"] for w in words]
    width = max(len(r) for r in rows)
    if any(len(r) < abs(token_pos) + (1 if token_pos >= 0 else 0) for r in rows):
        raise ValueError(f"absorption_token_pos={token_pos} is outside a prompt; fix: pick a position inside every prompt")
    out = []
    with torch.no_grad():
        for acts in harvest(loaded, hook_point, rows, batch_size=batch_size, context_length=width, pack=False):
            a = acts.acts[hook_point].float()
            n = acts.attention_mask.sum(1).to(a.device)
            pos = n + token_pos if token_pos < 0 else torch.full_like(n, token_pos)
            out.append(a[torch.arange(a.shape[0], device=a.device), pos].cpu())
    return torch.cat(out).numpy().astype(np.float64)


def absorption_scores(
    loaded: Any,
    sae: Any,
    hook_point: str,
    *,
    seed: int,
    template: str = " {word} starts with",
    token_pos: int = -1,
    test_fraction: float = 0.2,
    min_train_words: int = 4,
    max_k: int = 10,
    f1_jump_threshold: float = 0.03,
    pairs: list[tuple[str, str]] | None = None,
) -> AbsorptionResult:
    """Feature absorption of ``sae`` at ``hook_point`` on ``pairs`` (word, first letter): the world's
    first-letter words by default, or :func:`vocabulary_words` of the model's tokenizer."""
    if "{word}" not in template:
        raise ValueError(f"absorption_template={template!r} has no '{{word}}' placeholder; fix: e.g. ' {{word}} starts with'")
    if pairs is None:
        from harness.zoo import World

        pairs = list(World(seed=0).first_letter_words)
    train, test = split_words(pairs, seed, test_fraction, min_train_words)
    if len({lt for _, lt in train}) < 2:
        raise ValueError(
            f"absorption: fewer than 2 letters have {min_train_words} training words; fix: lower absorption_min_train_words"
        )
    x = prompt_activations(loaded, hook_point, [w for w, _ in train + test], template=template, token_pos=token_pos)
    n = len(train)
    return absorption_from_activations(
        x[:n], np.array([lt for _, lt in train]), x[n:], np.array([lt for _, lt in test]), sae,
        words_test=[w for w, _ in test], seed=seed, max_k=max_k, f1_jump_threshold=f1_jump_threshold,
    )  # fmt: skip
