"""Effective features (Bereska et al. 2025), the tied SAE, toy models and the superposition suite."""

from __future__ import annotations

import math

import pytest

from harness.protocols import LearnerSpec

torch = pytest.importorskip("torch")

import harness_plugins.effective_features as ef  # noqa: E402
import harness_plugins.superposition as sp  # noqa: E402
import harness_plugins.tied_sae as ts  # noqa: E402
from harness_plugins.effective_features.counter import EffectiveFeatureCounter, count_through, effective_features  # noqa: E402
from harness.metric_inputs import SAEInputs  # noqa: E402
from harness.stats import pearson, spearman  # noqa: E402
from harness_plugins.superposition.sweeps import SaeBudget, features_from_weights, features_through_learner  # noqa: E402
from harness_plugins.superposition.toy import train_toy_models  # noqa: E402
from harness_plugins.tied_sae.model import TiedSAE  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is fastest (and kind to shared CI machines)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- F = exp(H)
def test_uniform_gives_n_and_one_hot_gives_one():
    assert effective_features(torch.ones(7, 12)).F == pytest.approx(12)
    z = torch.zeros(50, 12)
    z[:, 3] = torch.rand(50) + 0.1
    assert effective_features(z).F == pytest.approx(1.0)
    assert effective_features(torch.zeros(4, 5)).F == 1.0  # no mass at all: F = 1 by convention


def test_streaming_equals_batch_and_scale_invariance():
    g = torch.Generator().manual_seed(0)
    z = torch.relu(torch.randn(1000, 64, generator=g)) * torch.linspace(0.01, 2, 64)
    whole = effective_features(z, n_neurons=8)
    counter = EffectiveFeatureCounter(n_neurons=8, checkpoints=[100, 500])
    for chunk in z.split(37):
        counter.update(chunk)
    streamed = counter.result()
    assert streamed.F == pytest.approx(whole.F, rel=1e-9)
    assert streamed.n_samples == 1000 and streamed.psi == pytest.approx(whole.F / 8)
    assert [n for n, _ in streamed.convergence] == [111, 518, 1000]
    assert effective_features(z * 123.4).F == pytest.approx(whole.F, rel=1e-9)
    assert 1 <= whole.F <= 64
    # [batch, ctx, d] latents count one sample per token
    assert effective_features(z.reshape(10, 100, 64)).F == pytest.approx(whole.F, rel=1e-9)


def test_metric_inputs_and_learner_stream():
    sae = TiedSAE.create(4, {"expansion_factor": 2}, seed=0)
    x = torch.randn(300, 4)
    metric = ef.EffectiveFeaturesMetric()
    via_learner = metric.report(ef.measure({"learner": sae, "activations": x.split(50)}), key="p")
    with torch.no_grad():
        direct = effective_features(sae.encode(x)).F
    assert via_learner.value == pytest.approx(direct) and via_learner.key == "p" and via_learner.n == 300
    assert count_through(sae, [x]).F == pytest.approx(direct)
    psi = ef.SuperpositionPsi().report(ef.measure({"latents": sae.encode(x).detach(), "n_neurons": 4}))
    assert psi.value == pytest.approx(direct / 4)
    with pytest.raises(KeyError):
        ef.SuperpositionPsi().report(ef.measure({"latents": torch.ones(2, 3)}))
    # the generic contract: SAEInputs (N = d_in, key = the hook point)
    inputs = SAEInputs(sae=sae, activations=x, model=None, hook_point="blocks.0.hook_resid_post")
    f, p = metric.compute(inputs), ef.SuperpositionPsi().compute(inputs)
    assert f.value == pytest.approx(direct) and f.key == "blocks.0.hook_resid_post" and f.n == 300
    assert p.value == pytest.approx(direct / 4)


# --------------------------------------------------------------------------- tied SAE
def test_tied_sae_shapes_loss_and_round_trip(tmp_path):
    sae = TiedSAE.create(6, {"expansion_factor": 4, "l1_coefficient": 0.2}, seed=3)
    assert sae.W_enc.shape == (6, 24) and sae.W_dec.shape == (24, 6)
    assert torch.equal(sae.W_dec, sae.W_enc.T) and not hasattr(sae, "W_dec_param")
    x = torch.randn(32, 6)
    loss, logs = sae.loss(x, 0, 1)
    z = sae.encode(x)
    expected = (sae.decode(z) - x).pow(2).mean() + 0.2 * z.abs().mean()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert set(logs) >= {"mse", "l1", "l0"}
    sae.save(tmp_path / "s")
    back = TiedSAE.load(tmp_path / "s")
    assert back.config == sae.config and torch.equal(back.encode(x), sae.encode(x))
    assert TiedSAE.create(6, {}, seed=3).W_enc.equal(TiedSAE.create(6, {}, seed=3).W_enc)


# --------------------------------------------------------------------------- toy models
@pytest.fixture(scope="module")
def toys():
    probs = torch.tensor([1.0, 0.5, 0.1, 0.03, 0.01])
    return train_toy_models(probs, n_features=12, n_hidden=4, steps=500, batch_size=256, lr=1e-2, seed=0)


def test_toy_ground_truth_dense_vs_sparse(toys):
    counts = toys.represented(0.5).tolist()
    assert 3 <= counts[0] <= 5  # dense: about one feature per neuron
    assert counts[-1] > counts[0] + 2  # sparse: superposition
    assert spearman([1, 2, 3, 4, 5], counts) > 0.8


def test_small_sweep_correlates(toys):
    truth = toys.represented(0.5).tolist()
    assert pearson(features_from_weights(toys), truth) > 0.8
    F, _ = features_through_learner(toys, LearnerSpec(TiedSAE, TiedSAE.Config()), SaeBudget(2000, 8, 256, 1e-2), seed=0)
    assert pearson(F, truth) > 0.5
    F0, _ = features_through_learner(toys, None, SaeBudget(500, 1, 256, None), seed=0)
    assert all(f <= 4 + 1e-6 for f in F0)  # neuron basis: F <= neurons


def test_stats():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1)
    assert spearman([0, 0.1, 0.2, 0.3], [9, 8, 8.5, 1]) == pytest.approx(-0.8)
    with pytest.raises(ValueError, match="constant"):
        pearson([1, 2, 3], [5, 5, 5])


# --------------------------------------------------------------------------- suite, end to end
TINY = {
    "toy_models": 6, "toy_features": 10, "toy_hidden": 3, "toy_steps": 400, "toy_batch_size": 128,
    "sparsity_max": 0.98, "sae_samples": 600, "sae_epochs": 3, "dropout_rates": [0.0, 0.3, 0.6],
    "dropout_seeds": 1, "layer_train_tokens": 256, "layer_count_tokens": 256, "layer_epochs": 1,
    "layer_kinds": ["resid_post", "mlp_out"], "convergence_checkpoints": [64, 128],
}  # fmt: skip


def _zoo_model() -> str | None:
    try:
        from harness.zoo import list_zoo_models
    except ImportError:
        return None
    names = list_zoo_models()
    return names[0] if names else None


def test_suite_end_to_end(tmp_path):
    from harness.config import RunSpec
    from harness.runner import execute, plan
    from harness.store import Store
    from harness.testing import registries_with

    zoo = _zoo_model()
    cfg = dict(TINY, layerwise=zoo is not None)
    import harness.datasets.builtin as datasets  # the corpus field's default, the world

    plugins = [("superposition", sp), ("effective_features", ef), ("tied_sae", ts), ("datasets", datasets)]
    if zoo is not None:
        import harness_plugins.zoo_models as zm

        plugins.append(("zoo_models", zm))
        model = f"zoo:{zoo}"
    else:  # no checkpoints: a toy source whose model is never loaded (layerwise off)
        import importlib.util
        from pathlib import Path

        spec_ = importlib.util.spec_from_file_location("toy_plugins", Path(__file__).parent / "toy" / "toy_plugins.py")
        mod = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(mod)
        plugins.append(("toy", type("Src", (), {"register_models": staticmethod(mod.register_models)})))
        model = "toy:a"
    regs = registries_with(*plugins)
    spec = RunSpec(suites=[{"name": "superposition", "config": cfg}], models=[model], output_dir=tmp_path, seeds=[0])
    cells = plan(spec, regs)
    assert [c.label for c in cells] == ["base model", "tied_sae"]
    store = Store(tmp_path)
    summary = execute(cells, store, regs, device="cpu", progress=False)
    assert summary.done == 2 and summary.failed == 0
    for pc in cells:
        rec = store.get(pc.cell.suite, pc.key)
        assert rec is not None and rec.status == "ok"
        out = rec.output
        names = {m.metric for m in out.metrics}
        assert "superposition_toy_pearson_r" in names and "superposition_dropout_spearman" in names
        for art in out.artifacts.values():
            assert (tmp_path / art).is_file()
        if zoo is not None:
            keys = {m.key for m in out.metrics if m.metric == "effective_features"}
            assert "blocks.0.hook_resid_post" in keys and "blocks.0.mlp.hook_out" in keys
            assert all(math.isfinite(m.value) for m in out.metrics)


def test_toy_batch_is_trained_once_per_process_for_the_same_arguments(monkeypatch):
    from harness_plugins.superposition import toy as toy_mod

    monkeypatch.setattr(toy_mod, "_SHARED", {})
    calls = []
    real = toy_mod.train_toy_models
    monkeypatch.setattr(toy_mod, "train_toy_models", lambda p, **kw: calls.append(kw["seed"]) or real(p, **kw))
    probs = torch.tensor([0.1, 0.5, 0.9])
    kw = {"n_features": 6, "n_hidden": 2, "steps": 5, "batch_size": 8, "lr": 1e-2}
    a = toy_mod.train_toy_models_shared(probs, seed=0, **kw)
    b = toy_mod.train_toy_models_shared(probs.clone(), seed=0, **kw)  # same values: served again
    assert b is a and calls == [0]
    c = toy_mod.train_toy_models_shared(probs, seed=1, **kw)  # another seed: trained
    d = toy_mod.train_toy_models_shared(probs, seed=0, dropout=torch.tensor([0.0, 0.1, 0.0]), **kw)
    assert calls == [0, 1, 0] and c is not a and d is not a
    fresh = real(probs, seed=0, **kw)  # what is served equals a fresh training
    assert torch.equal(fresh.W, a.W) and torch.equal(fresh.b, a.b)
    monkeypatch.setenv("HARNESS_NO_SHARE", "1")
    assert toy_mod.train_toy_models_shared(probs, seed=0, **kw) is not a
