"""harness.stats on hand-computed cases (and sklearn / numpy references where they exist)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import stats


def test_binomial_stderr_by_hand():
    assert stats.binomial_stderr(0.5, 4) == pytest.approx(0.25)  # sqrt(0.25 / 4)
    assert stats.binomial_stderr(0.2, 100) == pytest.approx(0.04)  # sqrt(0.16 / 100)
    assert stats.binomial_stderr(0.0, 7) == 0.0 and stats.binomial_stderr(1.0, 7) == 0.0
    with pytest.raises(ValueError, match="n >= 1"):
        stats.binomial_stderr(0.5, 0)


def test_mean_and_combined_stderr_by_hand():
    # xs = 1, 2, 3, 4: sample variance 5/3, stderr sqrt(5/3 / 4)
    assert stats.mean_stderr([1.0, 2.0, 3.0, 4.0]) == pytest.approx(math.sqrt(5 / 12))
    assert stats.mean_stderr([3.0]) is None and stats.mean_stderr([]) is None
    assert stats.combined_stderr([0.3, 0.4]) == pytest.approx(0.25)  # sqrt(0.09 + 0.16) / 2
    assert stats.combined_stderr([0.3, None]) is None and stats.combined_stderr([]) is None


def test_correlations_and_their_stderr():
    assert stats.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert stats.pearson([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # hand: x = 1,2,3; y = 1,3,2 -> centred (-1,0,1), (-1,1,0): r = 1 / sqrt(2 * 2)
    assert stats.pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert list(stats.ranks([10, 30, 20, 20])) == [0.0, 3.0, 1.5, 1.5]
    assert stats.spearman([0, 0.1, 0.2, 0.3], [9, 8, 8.5, 1]) == pytest.approx(-0.8)
    with pytest.raises(ValueError, match="constant"):
        stats.pearson([1, 2, 3], [5, 5, 5])
    with pytest.raises(ValueError, match="at least 3"):
        stats.pearson([1, 2], [1, 2])
    assert stats.correlation_stderr(0.5, 6) == pytest.approx(math.sqrt(0.75 / 4))
    assert stats.correlation_stderr(0.5, 2) is None


def test_auroc_against_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for trial in range(5):
        y = rng.integers(0, 2, 40)
        y[:2] = [0, 1]
        s = np.round(rng.normal(size=40) + 0.7 * y, 1)  # rounded: ties occur
        assert stats.auroc(s, y) == pytest.approx(sklearn_metrics.roc_auc_score(y, s), abs=1e-12), trial
    assert stats.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert stats.auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert math.isnan(stats.auroc([0.1, 0.2], [1, 1]))


def test_bootstrap_stderr_is_the_resampled_std():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    # the same draws by hand: default_rng(seed).integers(0, n, n) once per resample
    rng = np.random.default_rng(5)
    means = [x[rng.integers(0, 4, 4)].mean() for _ in range(50)]
    assert stats.bootstrap_stderr(np.mean, x, n_boot=50, seed=5) == pytest.approx(float(np.std(means, ddof=1)))
    assert stats.bootstrap_stderr(np.mean, np.ones(5)) == 0.0
    # every resample NaN -> NaN; unequal samples are refused
    assert math.isnan(stats.bootstrap_stderr(lambda a: float("nan"), x, n_boot=10))
    with pytest.raises(ValueError, match="equal lengths"):
        stats.bootstrap_stderr(lambda a, b: 0.0, x, x[:2])
    # AUROC's bootstrap: resamples lacking a class are skipped, the rest give a positive spread
    s, y = [0.1, 0.4, 0.35, 0.8, 0.6, 0.2], [0, 0, 1, 1, 1, 0]
    se = stats.auroc_stderr(s, y)
    assert 0 < se < 0.5 and se == stats.bootstrap_stderr(stats.auroc, np.asarray(s, float), np.asarray(y, int))


def test_bootstrap_weights_are_multiplicities():
    torch = pytest.importorskip("torch")
    w = stats.bootstrap_weights(5, 300, seed=2)
    assert w.shape == (300, 5) and w.dtype == torch.float64
    assert (w.sum(1) == 5).all() and (w >= 0).all() and (w == w.round()).all()
    assert torch.equal(w, stats.bootstrap_weights(5, 300, seed=2))
    # each unit is drawn 5 * 1/5 = 1 time per resample on average
    assert w.mean(0).sub(1).abs().max() < 0.2
    # the draws are torch.randint(n, (n_boot, n)) of a generator seeded with `seed`
    draws = torch.randint(5, (300, 5), generator=torch.Generator().manual_seed(2))
    assert torch.equal(w[0], torch.bincount(draws[0], minlength=5).double())
