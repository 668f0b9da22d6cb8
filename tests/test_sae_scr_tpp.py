"""SCR / TPP (plugins/sae_bench/scr_tpp.py): hand-checkable synthetic cases, the exact pooled
ablation for every registered learner and against a token-level ablation, and a zoo smoke run."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from harness.testing import registries_with  # noqa: E402
from harness_plugins.sae_bench import scr_tpp as st  # noqa: E402

D = 8
B_DEC = np.linspace(-0.5, 0.5, D)  # a decoder bias: the pooled ablation must not depend on it


def _set(f: np.ndarray, topic, pronoun, rng, noise=0.1) -> st.PooledSet:
    """Pooled activations = decode(f) + a small 'reconstruction error'; decoder rows = identity."""
    x = f + B_DEC + noise * rng.normal(size=f.shape)
    return st.PooledSet(x, f, np.asarray(topic), np.asarray(pronoun))


def _scr_world(n, seed, alpha, beta):
    """Two topics; latent 0 = pronoun (signed, strength beta), latent 1 = topic (alpha), 2..7 unrelated."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, n)
    p = rng.integers(0, 2, n)
    f = np.abs(rng.normal(size=(n, D)))
    f[:, 0] = beta * (2 * p - 1)
    f[:, 1] = alpha * (2 * (t == 0) - 1)
    return _set(f, t, p, rng)


@pytest.mark.parametrize(
    "alpha,beta,direction,spurious_latent",
    [(1.0, 3.0, 1, 0), (3.0, 1.0, 2, 1)],  # biased probe reads the pronoun (dir1) / the topic (dir2)
)
def test_scr_synthetic_hand_checked(alpha, beta, direction, spurious_latent):
    """The biased probe follows the stronger concept: on the other test set it is at chance (0.5), the oracle at
    1.0; zero-ablating the latent of the stronger concept restores 1.0, so SCR = (1 - .5) / (1 - .5) = 1."""
    train, test = _scr_world(600, 0, alpha, beta), _scr_world(600, 1, alpha, beta)
    rows = np.eye(D)
    pair = st.build_scr_pair(train, test, 0, 1, 1, seed=0)
    clean = pair.clean(test)
    weak = "biased_on_target" if direction == 1 else "biased_on_spurious"
    strong = "biased_on_spurious" if direction == 1 else "biased_on_target"
    assert abs(clean[weak] - 0.5) < 0.1 and clean[strong] > 0.97
    assert clean["oracle_target"] > 0.97 and clean["oracle_spurious"] > 0.97
    assert st.scr_score(pair, test, rows, [spurious_latent], direction) == pytest.approx(1.0, abs=0.05)
    assert abs(st.scr_score(pair, test, rows, [5], direction)) < 0.1  # an unrelated latent
    assert abs(st.scr_score(pair, test, rows, [], direction)) == 0.0
    # full pipeline: attribution picks the spurious latent first, the chosen direction follows SAEBench's rule
    out, used, details = st.scr(train, test, rows, [(0, 1, 1)], [1, 3], seed=0)
    assert used == 1 and details["0-1"]["direction"] == direction
    assert out[1][0] == pytest.approx(1.0, abs=0.05) and out[3][0] > 0.9
    assert out[1][1] == 0.0  # one pair: no spread


def _tpp_world(n, seed, k=4):
    """k classes; latent c = mu + 2 [y = c] for c < k (class latents), the rest unrelated."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    f = np.abs(rng.normal(size=(n, D)))
    f[:, :k] = 1.0 + 2.0 * (y[:, None] == np.arange(k))
    return _set(f, y, np.zeros(n, int), rng, noise=0.2)


def test_tpp_synthetic():
    train, test = _tpp_world(800, 0), _tpp_world(800, 1)
    rows = np.eye(D)
    for c in range(4):  # attribution: class c's own latent is its top latent
        idx, y = st._one_vs_rest(train.topic, c, np.random.default_rng(0))
        probe = st.fit_probe(train.x[idx], y, 0)
        assert list(st.top_n(st.effects(train.f[idx], y, probe, rows, scr=False), 1)) == [c]
    out, n_classes, per_class = st.tpp(train, test, rows, [1, 2], seed=0)
    assert n_classes == 4
    for c in map(str, range(4)):
        assert per_class[c]["clean"] > 0.97
        # ablating class c's latent sends its positives below every negative: accuracy 1 -> 0.5
        assert per_class[c]["top1"]["intended"] == pytest.approx(0.5, abs=0.05)
        assert abs(per_class[c]["top1"]["unintended"]) < 0.05
    assert out[1][0] == pytest.approx(0.5, abs=0.06) and out[1][1] < 0.05
    # TPP only credits targeted drops: ablating an unrelated latent changes nothing
    abl = st.ablate(test.x, test.f, rows, [6])
    np.testing.assert_allclose(abl[:, :6], test.x[:, :6])


def test_top_n_skips_zero_effects_and_ablate_is_linear():
    e = np.array([0.0, 3.0, 0.0, 1.0, 2.0])
    assert list(st.top_n(e, 2)) == [1, 4] and list(st.top_n(e, 10)) == [1, 4, 3]
    rng = np.random.default_rng(0)
    x, f, rows = rng.normal(size=(5, 3)), rng.normal(size=(5, 4)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(st.ablate(x, f, rows, [1, 3]), x - f[:, 1:2] @ rows[1:2] - f[:, 3:4] @ rows[3:4])


REGS = registries_with(builtins=True)


#: Learners built fresh by create (a ``pretrained`` one, e.g. pretrained_sae, loads a saved folder instead).
FRESH = [n for n in REGS["dictionary_learner"].names() if not getattr(REGS["dictionary_learner"].get(n), "pretrained", False)]


@pytest.mark.parametrize("name", FRESH)
def test_pooled_ablation_exact_for_every_learner(name):
    """decode(f) - decode(f with S zeroed) == f[:, S] @ rows[S] (the shortcut the metrics use), any learner."""
    sae = REGS["dictionary_learner"].get(name).create(16, {"expansion_factor": 4}, seed=0).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for prm in sae.parameters():
            prm.copy_(torch.randn(prm.shape, generator=g) * 0.3)
    rows = st.decoder_rows(sae)
    assert rows.shape == (64, 16)
    f = torch.randn(7, 64, generator=g) * (torch.rand(7, 64, generator=g) < 0.2)
    s = [3, 10, 40]
    f_abl = f.clone()
    f_abl[:, s] = 0
    with torch.no_grad():
        want = (sae.decode(f) - sae.decode(f_abl)).double().numpy()
    np.testing.assert_allclose(f.double().numpy()[:, s] @ rows[s], want, atol=1e-5)


# --------------------------------------------------------------------------- zoo
@pytest.fixture(scope="module")
def zoo_sae():
    from harness.zoo import list_zoo_models

    names = list_zoo_models()
    if not names:
        pytest.skip("no zoo checkpoints")
    import harness_plugins.topk as tk
    from harness.sae import train_sae
    from harness_plugins.sae_bench.run import harvest_tokens
    from harness_plugins.zoo_models import ZooModels

    loaded = ZooModels().load("zoo-32" if "zoo-32" in names else names[0], None, device="cpu", dtype="float32")
    hook = "blocks.0.hook_resid_post"
    acts = harvest_tokens(loaded, hook, 0, 2048, 64, 16)
    sae, _ = train_sae(tk.TopK, {"k": 4}, acts, tokens=2048, batch_size=256, seed=0, progress=False)
    return loaded, sae.eval(), hook


def test_pooled_ablation_matches_token_level(zoo_sae):
    """SAEBench ablates per token (decode(f with S zeroed) + error) and then mean-pools; we subtract
    mean(f)[S] @ W_dec[S] from the pooled activation: the same numbers."""
    from harness.models import harvest
    from harness.zoo import World
    from harness_plugins.sae_bench.probing import pooled_features

    loaded, sae, hook = zoo_sae
    texts = [e.text for e in World(seed=0).probing_examples(6, kind="topic", seed=5)]
    x, f = pooled_features(loaded, sae, hook, texts)
    s = list(np.argsort(-f.mean(0))[:3])
    rows = st.decoder_rows(sae)
    bos = loaded.require_tokenizer().bos_token_id
    pooled = []
    with torch.no_grad():
        for acts in harvest(loaded, hook, texts, batch_size=32, context_length=64, pack=False):
            keep = acts.keep_mask(bos_token_id=bos).float().unsqueeze(-1)
            a = acts.acts[hook].float()
            ft = sae.encode(a.reshape(-1, a.shape[-1]))
            err = a.reshape(-1, a.shape[-1]) - sae.decode(ft)
            ft[:, s] = 0
            mod = (sae.decode(ft) + err).reshape(a.shape)
            pooled.append(((mod * keep).sum(1) / keep.sum(1).clamp_min(1)).double().numpy())
    np.testing.assert_allclose(st.ablate(x, f, rows, s), np.concatenate(pooled), atol=1e-4)
    assert np.abs(st.ablate(x, f, rows, s) - x).max() > 1e-2  # the ablation did something


def test_scr_tpp_on_zoo(zoo_sae):
    loaded, sae, hook = zoo_sae
    r = st.scr_tpp_scores(loaded, sae, hook, seed=0, n_values=(2, 5), n_train=480, n_test=480)
    assert r.tpp_classes == 4 and set(r.tpp) == {2, 5}
    assert 1 <= r.scr_pairs <= 4 and set(r.scr) == {2, 5}
    assert len(r.details["scr_pairs"]) == 4  # sport/food x weather/music
    for d in (r.scr, r.scr_stderr, r.tpp, r.tpp_stderr):
        assert all(math.isfinite(v) for v in d.values())
    assert all(-1.0 <= v <= 1.0 for v in r.tpp.values())  # differences of accuracy drops
    assert any(v != 0 for v in (*r.scr.values(), *r.tpp.values()))  # the ablations do move some probe
    for rec in r.details["scr_pairs"].values():  # SAEBench's rule: the direction the biased probe is worse at
        worse = 1 if rec["biased_on_target"] <= rec["biased_on_spurious"] else 2
        assert rec["direction"] == worse and isinstance(rec[f"dir{worse}"], (dict, str))
    assert all(v >= 0 for v in r.scr_stderr.values())
    assert 0 < r.details["test_sentences"] <= 480
    with pytest.raises(ValueError, match="scr_tpp_n"):
        st.scr_tpp_scores(loaded, sae, hook, n_values=(10_000,), n_train=64, n_test=64)
