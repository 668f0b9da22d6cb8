"""Feature-independence metrics of SAEBench: SCR and TPP (arXiv 2503.09532; SAEBench
``evals/scr_and_tpp/main.py``), on a labelled set with a binary spurious label: by default the world's
topic sentences with the pronoun as spurious concept (any :class:`harness.datasets.LabelledText`
with ``has_spurious``, e.g. bias_in_bios' profession with gender, through :func:`scr_tpp_scores`).

Both metrics zero-ablate N latents and re-score linear probes on mean-pooled residual
activations at the SAE's hook point. Zero-ablation keeps the SAE's reconstruction error, as in
SAEBench (``decode(f with S zeroed) + (x - decode(f))``); because decoding is affine and mean
pooling is linear, the pooled ablated activation is exactly ``mean(x) - mean(f)[S] @ W_dec[S]``,
so no extra model pass is needed (:func:`ablate`).

SCR (spurious correlation removal), per topic pair (A, B) whose stream pronouns differ:
a *biased* probe is trained on A+pronoun(A) vs B+pronoun(B) (topic and pronoun fully
correlated), a *target* probe on A vs B (pronouns balanced) and a *spurious* probe on pronoun(A)
vs the other pronoun (topics balanced). dir1 ablates the N latents with the largest attribution
to the spurious probe and scores the biased probe on the topic test set; dir2 ablates the target
probe's top latents and scores the biased probe on the pronoun test set;
score = (acc_ablated - acc_biased) / (acc_oracle - acc_biased), the oracle being the probe
trained for that test set. As in SAEBench the reported direction is the one the biased probe is
worse at (dir1 if acc_biased(topic) < acc_biased(pronoun), else dir2; on a tie
dir1, where SAEBench reports neither). Pairs whose gap acc_oracle - acc_biased is below
:data:`MIN_GAP` are left out (ours).

TPP (targeted probe perturbation): one-vs-rest probe per topic; ablating the top-N latents of
class i should lower probe i's accuracy and leave the others' alone:
TPP_i = (A_i - A_i^abl(i)) - mean_{j != i} (A_j - A_j^abl(i)); reported: mean over classes.

Attribution (SAEBench ``get_effects_per_class_precomputed_acts``): effect of latent k =
(mean f_k over positives - mean over negatives of the probe's training set) * (W_dec[k] . w);
|.| for SCR; for TPP the mean difference is clamped at 0 first (positive-class latents only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.stats import mean_stderr

#: A pair is left out of SCR when its oracle beats the biased probe by less than this
#: (the normalised score would divide by ~0). Ours; SAEBench has no guard.
MIN_GAP = 0.05


@dataclass
class Probe:
    """A linear probe in residual space: predicts 1 where x @ w + b > 0."""

    w: np.ndarray
    b: float

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(((x @ self.w + self.b) > 0).astype(int) == y))


@dataclass
class PooledSet:
    """Mean-pooled residuals ``x`` [n, d], latents ``f`` [n, d_sae], topic and pronoun labels [n]."""

    x: np.ndarray
    f: np.ndarray
    topic: np.ndarray
    pronoun: np.ndarray


@dataclass
class ScrTppResult:
    """Per N: mean SCR over the usable topic pairs and mean TPP over the topics, with stderr over them."""

    scr: dict[int, float]
    scr_stderr: dict[int, float]
    scr_pairs: int
    tpp: dict[int, float]
    tpp_stderr: dict[int, float]
    tpp_classes: int
    details: dict[str, Any] = field(default_factory=dict)


def fit_probe(x: np.ndarray, y: np.ndarray, seed: int, C: float = 1.0) -> Probe:
    """Logistic regression (scikit-learn, L2, raw inputs so the weights live in residual space; Newton
    solver: the same optimum as the default lbfgs, several times faster on these small problems)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, solver="newton-cholesky", max_iter=1000, random_state=seed).fit(x, y)
    return Probe(clf.coef_[0].astype(np.float64), float(clf.intercept_[0]))


def decoder_rows(sae: Any, chunk: int = 2048) -> np.ndarray:
    """[d_sae, d_in]: what each latent adds to the reconstruction (decode(e_k) - decode(0)), decoded
    ``chunk`` latents at a time (a full identity would be d_sae^2 floats: 1 GiB at d_sae = 16384)."""
    import torch

    with torch.no_grad():
        p = next(sae.parameters())
        d_sae = int(getattr(sae, "d_sae", 0) or sae.W_dec.shape[0])
        base = sae.decode(torch.zeros(1, d_sae, dtype=p.dtype, device=p.device))
        rows = []
        for s in range(0, d_sae, chunk):
            e = min(d_sae, s + chunk)
            one_hot = torch.zeros(e - s, d_sae, dtype=p.dtype, device=p.device)
            one_hot[torch.arange(e - s), torch.arange(s, e)] = 1
            rows.append((sae.decode(one_hot) - base).double().cpu())
    return torch.cat(rows).numpy()


def ablate(x: np.ndarray, f: np.ndarray, rows: np.ndarray, latents: Sequence[int]) -> np.ndarray:
    """Pooled activations with ``latents`` zero-ablated (reconstruction error kept)."""
    idx = np.asarray(latents, dtype=int)
    return x - f[:, idx] @ rows[idx] if idx.size else x


def effects(f: np.ndarray, y: np.ndarray, probe: Probe, rows: np.ndarray, *, scr: bool) -> np.ndarray:
    """SAEBench attribution of each latent to ``probe`` on its training set (f, y)."""
    diff = f[y == 1].mean(0) - f[y == 0].mean(0)
    if not scr:
        diff = np.clip(diff, 0.0, None)
    e = diff * (rows @ probe.w)
    return np.abs(e) if scr else e


def top_n(e: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest effects among the non-zero ones (SAEBench ``select_top_n_features``)."""
    k = min(n, int(np.count_nonzero(e)))
    return np.argsort(-e, kind="stable")[:k]


def _stats(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), mean_stderr(a) or 0.0


# --------------------------------------------------------------------------- SCR
@dataclass
class ScrPair:
    """Probes and test sets of one topic pair (a, b); label 1 = topic a / pronoun pa / both."""

    biased: Probe
    target: Probe
    spurious: Probe
    target_train: np.ndarray  # indices into the train set
    spurious_train: np.ndarray
    target_test: np.ndarray  # indices into the test set
    spurious_test: np.ndarray
    y_target_train: np.ndarray
    y_spurious_train: np.ndarray
    y_target_test: np.ndarray
    y_spurious_test: np.ndarray

    def clean(self, test: PooledSet) -> dict[str, float]:
        xt, xs = test.x[self.target_test], test.x[self.spurious_test]
        return {
            "biased_on_target": self.biased.accuracy(xt, self.y_target_test),
            "biased_on_spurious": self.biased.accuracy(xs, self.y_spurious_test),
            "oracle_target": self.target.accuracy(xt, self.y_target_test),
            "oracle_spurious": self.spurious.accuracy(xs, self.y_spurious_test),
        }


def _quadrants(s: PooledSet, a: int, b: int, pa: int, rng: np.random.Generator):
    """(a&pa, a&~pa, b&pa, b&~pa) index lists (shuffled) and the per-quadrant size m."""
    cells = ((a, pa), (a, 1 - pa), (b, pa), (b, 1 - pa))
    q = [rng.permutation(np.flatnonzero((s.topic == t) & (s.pronoun == p))) for t, p in cells]
    m = min(len(q[0]) // 2, len(q[3]) // 2, len(q[1]), len(q[2]))
    if m < 2:
        raise ValueError(f"too few probing sentences for the topic pair ({a}, {b}); raise scr_tpp_train/test_examples")
    return q, m


def _scr_sets(s: PooledSet, a: int, b: int, pa: int, rng: np.random.Generator):
    """SAEBench ``get_spurious_corr_data``: target, spurious and biased index sets with labels."""
    (aa, an, ba, bn), m = _quadrants(s, a, b, pa, rng)
    target = (np.concatenate([aa[:m], an[:m], ba[:m], bn[:m]]), np.repeat([1, 0], 2 * m))
    spurious = (np.concatenate([aa[:m], ba[:m], an[:m], bn[:m]]), np.repeat([1, 0], 2 * m))
    biased = (np.concatenate([aa[: 2 * m], bn[: 2 * m]]), np.repeat([1, 0], 2 * m))
    return target, spurious, biased


def build_scr_pair(train: PooledSet, test: PooledSet, a: int, b: int, pa: int, *, seed: int, C: float = 1.0) -> ScrPair:
    rng = np.random.default_rng([seed, a, b])
    tr_t, tr_s, tr_b = _scr_sets(train, a, b, pa, rng)
    te_t, te_s, _ = _scr_sets(test, a, b, pa, rng)
    return ScrPair(
        biased=fit_probe(train.x[tr_b[0]], tr_b[1], seed, C),
        target=fit_probe(train.x[tr_t[0]], tr_t[1], seed, C),
        spurious=fit_probe(train.x[tr_s[0]], tr_s[1], seed, C),
        target_train=tr_t[0], spurious_train=tr_s[0], target_test=te_t[0], spurious_test=te_s[0],
        y_target_train=tr_t[1], y_spurious_train=tr_s[1], y_target_test=te_t[1], y_spurious_test=te_s[1],
    )  # fmt: skip


def scr_score(pair: ScrPair, test: PooledSet, rows: np.ndarray, latents: Sequence[int], direction: int) -> float:
    """Normalised SCR of ablating ``latents``: dir 1 scores the biased probe on the target (topic) test
    set, dir 2 on the spurious (pronoun) test set."""
    if direction == 1:
        idx, y, oracle = pair.target_test, pair.y_target_test, pair.target
    else:
        idx, y, oracle = pair.spurious_test, pair.y_spurious_test, pair.spurious
    x = test.x[idx]
    base = pair.biased.accuracy(x, y)
    top = oracle.accuracy(x, y)
    changed = pair.biased.accuracy(ablate(x, test.f[idx], rows, latents), y)
    return (changed - base) / (top - base)


def scr(train: PooledSet, test: PooledSet, rows: np.ndarray, pairs, n_values: Sequence[int], *, seed: int, C: float = 1.0):
    """SCR per N over topic ``pairs`` [(a, b, pronoun of a)]: (mean, stderr, pairs used, details)."""
    per_pair: dict[str, Any] = {}
    scores: dict[int, list[float]] = {n: [] for n in n_values}
    for a, b, pa in pairs:
        try:
            pair = build_scr_pair(train, test, a, b, pa, seed=seed, C=C)
        except ValueError as e:  # a quadrant (class x spurious value) too small in a user's data set
            per_pair[f"{a}-{b}"] = {"skipped": str(e)}
            continue
        clean = pair.clean(test)
        direction = 1 if clean["biased_on_target"] <= clean["biased_on_spurious"] else 2
        rec: dict[str, Any] = {"direction": direction, **{k: round(v, 4) for k, v in clean.items()}}
        for d in (1, 2):  # both directions go to the details (SAEBench scr_dir1/2); the chosen one is the metric
            which = "target" if d == 1 else "spurious"
            gap = clean[f"oracle_{which}"] - clean[f"biased_on_{which}"]
            if gap < MIN_GAP:
                rec[f"dir{d}"] = f"skipped: oracle - biased accuracy {gap:.3f} < {MIN_GAP}"
                continue
            # dir 1 removes what the spurious (pronoun) probe reads; dir 2 what the target (topic) probe reads
            probe, idx, y = (
                (pair.spurious, pair.spurious_train, pair.y_spurious_train) if d == 1
                else (pair.target, pair.target_train, pair.y_target_train)
            )  # fmt: skip
            e = effects(train.f[idx], y, probe, rows, scr=True)
            vals = {n: scr_score(pair, test, rows, top_n(e, n), d) for n in n_values}
            rec[f"dir{d}"] = {f"top{n}": round(v, 4) for n, v in vals.items()}
            if d == direction:
                for n, v in vals.items():
                    scores[n].append(v)
        per_pair[f"{a}-{b}"] = rec
    used = len(scores[n_values[0]]) if n_values else 0
    out = {n: _stats(v) for n, v in scores.items() if v}
    return out, used, per_pair


# --------------------------------------------------------------------------- TPP
def _one_vs_rest(labels: np.ndarray, cls: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """SAEBench ``prepare_probe_data`` (TPP): all positives, as many negatives drawn evenly from the other classes."""
    pos = np.flatnonzero(labels == cls)
    others = [c for c in np.unique(labels) if c != cls]
    per = int(np.ceil(len(pos) / max(len(others), 1)))
    neg = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per] for c in others])
    neg = rng.permutation(neg)[: len(pos)]
    return np.concatenate([pos, neg]), np.concatenate([np.ones(len(pos), int), np.zeros(len(neg), int)])


def tpp(train: PooledSet, test: PooledSet, rows: np.ndarray, n_values: Sequence[int], *, seed: int, C: float = 1.0):
    """TPP per N over the topic classes: (mean, stderr), classes, per-class details."""
    rng = np.random.default_rng([seed, 7])
    classes = [int(c) for c in np.unique(train.topic) if (test.topic == c).any()]
    if len(classes) < 2:
        raise ValueError("TPP needs at least two classes in both the train and the test set")
    probes, tests, clean, eff = {}, {}, {}, {}
    for c in classes:
        idx, y = _one_vs_rest(train.topic, c, rng)
        probes[c] = fit_probe(train.x[idx], y, seed, C)
        eff[c] = effects(train.f[idx], y, probes[c], rows, scr=False)
        tests[c] = _one_vs_rest(test.topic, c, rng)
        clean[c] = probes[c].accuracy(test.x[tests[c][0]], tests[c][1])
    per_class: dict[str, Any] = {}
    scores: dict[int, list[float]] = {n: [] for n in n_values}
    for i in classes:
        rec: dict[str, Any] = {"clean": round(clean[i], 4)}
        for n in n_values:
            abl = ablate(test.x, test.f, rows, top_n(eff[i], n))
            drop = {j: clean[j] - probes[j].accuracy(abl[tests[j][0]], tests[j][1]) for j in classes}
            unintended = float(np.mean([drop[j] for j in classes if j != i]))
            scores[n].append(drop[i] - unintended)
            rec[f"top{n}"] = {"intended": round(drop[i], 4), "unintended": round(unintended, 4)}
        per_class[str(i)] = rec
    return {n: _stats(v) for n, v in scores.items()}, len(classes), per_class


# --------------------------------------------------------------------------- model side
def pooled_set(loaded: Any, sae: Any, hook_point: str, examples: Sequence[Any], labels: Sequence[str],
               spurious: Sequence[str]) -> PooledSet:
    """Pooled activations of ``examples`` (:class:`harness.datasets.LabelledExample`), class and spurious
    labels numbered by their position in ``labels`` / ``spurious``."""
    from .probing import pooled_features

    x, f = pooled_features(loaded, sae, hook_point, [e.text for e in examples])
    li, si = {v: i for i, v in enumerate(labels)}, {v: i for i, v in enumerate(spurious)}
    return PooledSet(x, f, np.array([li[e.label] for e in examples]), np.array([si[e.spurious] for e in examples]))


def topic_pairs(world: Any) -> list[tuple[int, int, int]]:
    """(a, b, pronoun of a) for every topic pair whose stream pronouns differ (SAEBench: 4 pairs per dataset)."""
    from harness.zoo.world import TOPIC_SPURIOUS

    names = world.topics
    return [
        (a, b, TOPIC_SPURIOUS[names[a]])
        for a in range(len(names)) for b in range(len(names))
        if TOPIC_SPURIOUS[names[a]] == 1 and TOPIC_SPURIOUS[names[b]] == 0
    ]  # fmt: skip


def leaning_pairs(label: np.ndarray, spurious: np.ndarray, n_classes: int) -> list[tuple[int, int, int]]:
    """SCR pairs of a data set without a given pairing: classes ranked by the share of spurious value 0
    among their training examples; the i-th most 0-leaning class is paired (with value 0) with the
    i-th most 1-leaning one, as SAEBench pairs a mostly-male profession (with male) with a mostly-female
    one (professor / nurse). ``n_classes // 2`` disjoint pairs."""
    share = [float(np.mean(spurious[label == c] == 0)) if (label == c).any() else 0.5 for c in range(n_classes)]
    order = sorted(range(n_classes), key=lambda c: (-share[c], c))
    half = n_classes // 2
    return [(a, b, 0) for a, b in zip(order[:half], order[::-1][:half])]


def _spurious_values(data: Any, train: Sequence[Any], test: Sequence[Any]) -> list[str]:
    """The two spurious values in a fixed order (the world: its pronouns; otherwise sorted)."""
    world = getattr(data, "world", None)
    if world is not None:
        from harness.zoo.lexicon import PRONOUNS

        return list(PRONOUNS)
    values = sorted({e.spurious for e in train} | {e.spurious for e in test}, key=str)
    if len(values) != 2 or None in values:
        shown = ", ".join(map(str, values[:6])) or "none"
        raise HarnessError(
            f"scr_tpp_set {data.name}: SCR pairs each class with one of two spurious values; spurious_column has "
            f"{len(values)} ({shown}). Fix: point spurious_column at a two-valued column (e.g. gender)."
        )
    return values


def scr_tpp_scores(
    loaded: Any,
    sae: Any,
    hook_point: str,
    *,
    data: Any = None,
    world: Any = None,
    seed: int = 0,
    n_values: Sequence[int] = (2, 5, 10, 20),
    n_train: int = 800,
    n_test: int = 800,
    C: float = 1.0,
) -> ScrTppResult:
    """SCR and TPP of ``sae`` at ``hook_point`` on a labelled set with a spurious label.

    ``data`` is a :class:`harness.datasets.LabelledText` (``has_spurious``); None = the world's balanced
    topic sentences (of ``world``, default world 0) with the pronoun as spurious label. The train and test
    draws use seed ``2000 + seed`` (the world's: probing sentences 3000 + seed and 4000 + seed, apart from
    sparse probing's). Test sentences that also occur in the training draw are dropped (the world has few
    distinct topic sentences), so every probe is scored on held-out text. SCR pairs: the world's topic /
    pronoun pairing (:func:`topic_pairs`), otherwise :func:`leaning_pairs`.
    """
    if data is None:
        from harness.datasets.providers import WorldLabelled

        if world is None:
            from harness.zoo import World

            world = World(seed=0)
        data = WorldLabelled(world, "topic")
    rows = decoder_rows(sae)
    if n_values and max(n_values) > rows.shape[0]:
        raise ValueError(f"scr_tpp_n: N={max(n_values)} exceeds the dictionary size {rows.shape[0]}; use smaller values")
    tr = data.examples("train", n_train, seed=2000 + seed)
    seen = {e.text for e in tr}
    te = [e for e in data.examples("test", n_test, seed=2000 + seed) if e.text not in seen]
    names = list(data.labels)
    spurious = _spurious_values(data, tr, te)
    train = pooled_set(loaded, sae, hook_point, tr, names, spurious)
    test = pooled_set(loaded, sae, hook_point, te, names, spurious)
    world = getattr(data, "world", None)
    pairs = topic_pairs(world) if world is not None else leaning_pairs(train.topic, train.pronoun, len(names))
    s, pairs_used, per_pair = scr(train, test, rows, pairs, n_values, seed=seed, C=C)
    t, n_classes, per_class = tpp(train, test, rows, n_values, seed=seed, C=C)
    details: dict[str, Any] = {
        "train_sentences": len(tr), "test_sentences": len(te), "topics": names,
        "scr_pairs": {"-".join(names[int(i)] for i in k.split("-")): v for k, v in per_pair.items()},
        "tpp_classes": {names[int(k)]: v for k, v in per_class.items()},
    }  # fmt: skip
    if world is None:
        details["data"] = {"name": data.name, "spurious_values": spurious, "pairs_paired_with": spurious[0]}
    return ScrTppResult(
        scr={n: v[0] for n, v in s.items()}, scr_stderr={n: v[1] for n, v in s.items()}, scr_pairs=pairs_used,
        tpp={n: v[0] for n, v in t.items()}, tpp_stderr={n: v[1] for n, v in t.items()}, tpp_classes=n_classes,
        details=details,
    )  # fmt: skip
