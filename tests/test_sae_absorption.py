"""Feature absorption (plugins/sae_bench/absorption.py): SAEBench's per-word formula on hand-computed
cases, a constructed SAE whose main latent is absorbed on known words, and a zoo smoke run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness_plugins.sae_bench import absorption as ab


# ---------------------------------------------------------------- SAEBench's per-word formula
COS = np.array([1.0, 0.5, 0.2, 0.05, 0.3, 0.4])


def _word(probe_proj, acts, main=(0,)):
    acts = np.asarray(acts, dtype=float)
    return ab.word_absorption(probe_proj, acts * COS, acts, COS, list(main))


def test_partial_absorption_fraction_hand_computed():
    # projections f*cos = [0.3, 0.5, 0.2, 0.2, 0.15, 0.2]; latent 3 has cos 0.05 < 0.1 (not an absorber);
    # absorbers (non-main, cos >= 0.1, proj > 0) = 0.5, 0.2, 0.2, 0.15 -> top 3 sum 0.9
    acts = [0.3, 1.0, 1.0, 4.0, 0.5, 0.5]
    frac, full, top, main, absorbers = _word(1.0, acts)
    assert main == pytest.approx(0.3) and absorbers == pytest.approx(0.9) and top == 1
    # unaccounted 1.0 - 0.3 = 0.7 < 0.9: absorbed 0.7 -> 0.7 / (0.7 + 0.3)
    assert frac == pytest.approx(0.7) and not full  # the main latent fires: no full absorption
    # probe projection 2: absorbed min(0.9, 1.7) = 0.9 -> 0.9 / 1.2 (only the top 3 absorbers count)
    assert _word(2.0, acts)[0] == pytest.approx(0.75)
    # absorbers explain 0.9 / 3 = 0.3 < 0.4 of the probe projection: no absorption
    assert _word(3.0, acts)[0] == 0.0
    # the main latents already account for the probe projection: no absorption
    assert _word(0.25, acts)[0] == 0.0
    assert _word(-1.0, acts)[0] == 0.0


def test_full_absorption_hand_computed():
    acts = [0.0, 1.0, 1.0, 0.0, 0.5, 0.5]  # main silent; top projection latent 1 (0.5, cos 0.5)
    frac, full, top, main, absorbers = _word(1.0, acts)
    assert (frac, full, top, main) == (1.0, True, 1, 0.0) and absorbers == pytest.approx(0.9)
    # top latent explains 0.5 / 1.5 < 0.4: not full absorption, but the absorption fraction is 1
    frac, full, *_ = _word(1.5, acts)
    assert frac == 1.0 and not full
    # a top-projecting latent whose decoder is nearly orthogonal to the probe (cos 0.05 >= 0.025 passes,
    # but cos 0.02 would not)
    cos = np.array([1.0, 0.02, 0.0])
    a = np.array([0.0, 40.0, 0.0])
    assert not ab.word_absorption(1.0, a * cos, a, cos, [0])[1]
    cos[1] = 0.05
    assert ab.word_absorption(1.0, a * cos, a, cos, [0])[1]


# ---------------------------------------------------------------- constructed SAE, known absorption
class _HandSAE:
    """Latents 0/1/2: letters a/b/c (decoders e0/e1/e2); latent 3: a word-specific latent with
    decoder (e0 + e3)/sqrt 2 that fires when x3 > 0.5 and then silences latent 0 (absorption)."""

    def __init__(self, absorb: bool):
        self.absorb = absorb
        w = torch.zeros(4, 6, dtype=torch.float64)
        w[0, 0] = w[1, 1] = w[2, 2] = 1.0
        w[3, 0] = w[3, 3] = 2**-0.5
        self.W_dec = w

    def encode(self, x):
        x = x.double()
        f = torch.relu(x[:, :3] - 0.5)
        special = x[:, 3] > 0.5
        f3 = 2.0 * torch.relu(x[:, 3] - 0.5)
        if self.absorb:
            f[special, 0] = 0.0
        else:
            f3 = torch.zeros_like(f3)
        return torch.cat([f, f3[:, None]], 1)


def _synthetic(seed=0):
    rng = np.random.default_rng(seed)

    def words(letter_dim, n, special=False):
        x = rng.normal(0, 0.1, size=(n, 6))
        x[:, 3] = 0.0
        x[:, letter_dim] += 2.0
        if special:
            x[:, 3] = 1.5
        return x

    x_tr = np.concatenate([words(i, 8) for i in range(3)])
    y_tr = np.repeat(np.array(["a", "b", "c"]), 8)
    # test: letter a has 2 ordinary and 2 "special" words, b and c 2 ordinary words each
    x_te = np.concatenate([words(0, 2), words(0, 2, special=True), words(1, 2), words(2, 2)])
    y_te = np.array(["a"] * 4 + ["b"] * 2 + ["c"] * 2)
    names = ["a1", "a2", "a_special1", "a_special2", "b1", "b2", "c1", "c2"]
    return x_tr, y_tr, x_te, y_te, names


def test_known_absorption_is_found():
    x_tr, y_tr, x_te, y_te, names = _synthetic()
    r = ab.absorption_from_activations(x_tr, y_tr, x_te, y_te, _HandSAE(absorb=True), words_test=names, seed=0)
    assert r.probe_accuracy == 1.0 and r.n_true_positives == 8 and r.n_letters == 3
    assert {k: v["split_feats"] for k, v in r.letters.items()} == {"a": [0], "b": [1], "c": [2]}
    by_word = {w.word: w for w in r.words}
    for name in ("a_special1", "a_special2"):  # main latent silent, latent 3 carries the probe direction
        w = by_word[name]
        assert w.absorption_fraction == 1.0 and w.is_full_absorption and w.top_latent == 3
    assert all(w.absorption_fraction == 0.0 and not w.is_full_absorption for n, w in by_word.items() if "special" not in n)
    # letter a: 2 of 4 true positives absorbed; b, c: none -> means over the 3 letters
    assert r.letters["a"]["mean_absorption_fraction"] == 0.5 and r.letters["a"]["full_absorption_rate"] == 0.5
    assert r.mean_absorption_fraction == pytest.approx(0.5 / 3)
    assert r.full_absorption_rate == pytest.approx(0.5 / 3)
    assert r.mean_split_features == 1.0
    assert r.n_letters_probe_f1_ok == 3


def test_no_absorption_gives_zero():
    x_tr, y_tr, x_te, y_te, names = _synthetic()
    r = ab.absorption_from_activations(x_tr, y_tr, x_te, y_te, _HandSAE(absorb=False), words_test=names, seed=0)
    assert r.mean_absorption_fraction == 0.0 and r.full_absorption_rate == 0.0
    assert r.n_true_positives == 8 and r.mean_split_features == 1.0


def test_split_words_is_seeded_stratified_and_drops_small_letters():
    pairs = [(f"a{i}", "a") for i in range(10)] + [(f"b{i}", "b") for i in range(5)] + [("c0", "c"), ("c1", "c")]
    tr, te = ab.split_words(pairs, seed=3, test_fraction=0.2, min_train_words=4)
    assert (tr, te) == ab.split_words(pairs, seed=3, test_fraction=0.2, min_train_words=4)
    assert sorted(lt for _, lt in te) == ["a", "a", "b"]  # c dropped (1 training word < 4)
    assert len(tr) == 8 + 4 and not {w for w, _ in tr} & {w for w, _ in te}
    assert ab.split_words(pairs, seed=4, test_fraction=0.2, min_train_words=4)[1] != te


# ---------------------------------------------------------------- zoo smoke run
@pytest.fixture(scope="module")
def zoo_model():
    from harness.zoo import list_zoo_models

    names = list_zoo_models()
    if "zoo-32" not in names:
        pytest.skip("no zoo checkpoints")
    from harness_plugins.zoo_models import ZooModels

    return ZooModels().load("zoo-32", None, device="cpu", dtype="float32")


def test_zoo_smoke(zoo_model):
    import harness_plugins.topk as tk
    from harness.sae import train_sae
    from harness_plugins.sae_bench.run import harvest_tokens

    hook = "blocks.1.hook_resid_post"
    torch.manual_seed(0)
    acts = harvest_tokens(zoo_model, hook, 0, 4096, 128, 32)
    sae, _ = train_sae(tk.TopK, {"k": 8}, acts, tokens=8192, batch_size=256, seed=0, device="cpu", progress=False)
    sae.eval()
    r = ab.absorption_scores(zoo_model, sae, hook, seed=0)
    assert r.n_letters >= 10 and r.n_probe_test >= 30
    assert r.probe_accuracy > 4 * r.probe_chance  # the first letter is linearly readable at " with"
    for v in (r.mean_absorption_fraction, r.full_absorption_rate):
        assert 0.0 <= v <= 1.0 and math.isfinite(v)
    assert 1.0 <= r.mean_split_features <= 10.0
    assert r.n_true_positives == sum(v["num_probe_true_positives"] for v in r.letters.values())
    d = r.details()
    assert set(d["letters"]) == set(r.letters) and d["n_letters"] == r.n_letters
    again = ab.absorption_scores(zoo_model, sae, hook, seed=0)
    assert again.mean_absorption_fraction == r.mean_absorption_fraction  # deterministic


def test_bad_template_names_the_field():
    with pytest.raises(ValueError, match="absorption_template"):
        ab.absorption_scores(None, None, "blocks.0.hook_resid_post", seed=0, template="no placeholder")
