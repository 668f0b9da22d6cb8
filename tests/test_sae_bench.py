"""Suite "sae" (plugins/sae_bench): core metrics on hand-computed cases, probing, end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import harness_plugins.sae_bench as sb
from harness_plugins.sae_bench import core


def _x(n=64, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) + 3.0


def test_perfect_and_zero_reconstruction():
    x = _x()
    f = torch.zeros(64, 10)
    f[:, :3] = 1.0
    assert core.explained_variance(x, x) == pytest.approx(1.0)
    assert core.explained_variance_saebench(x, x) == pytest.approx(1.0)
    assert core.mse(x, x) == 0.0
    assert core.cosine_similarity(x, x) == pytest.approx(1.0)
    assert core.l2_ratio(x, x) == pytest.approx(1.0)
    assert core.l0(f) == 3.0
    # predicting the mean explains nothing (per-dimension mean)
    mean = x.mean(0).expand_as(x)
    assert core.explained_variance(x, mean) == pytest.approx(0.0, abs=1e-6)
    assert core.explained_variance_saebench(x, mean) == pytest.approx(0.0, abs=1e-6)
    assert core.cosine_similarity(x, torch.zeros_like(x)) == 0.0
    assert core.l2_ratio(x, torch.zeros_like(x)) == 0.0


def test_hand_computed_values():
    x = torch.tensor([[1.0, 0.0], [3.0, 2.0]])  # mean (2, 1); ||x_t - m||^2 = 2, 2
    x_hat = torch.tensor([[1.0, 1.0], [3.0, 2.0]])  # errors 1, 0
    assert core.mse(x, x_hat) == pytest.approx(0.25)
    assert core.explained_variance(x, x_hat) == pytest.approx(1 - 1 / 4)
    assert core.explained_variance_saebench(x, x_hat) == pytest.approx(((1 - 1 / 2) + 1) / 2)
    assert core.cosine_similarity(x, x_hat) == pytest.approx((1 / math.sqrt(2) + 1) / 2)
    assert core.l2_ratio(x, x_hat) == pytest.approx((math.sqrt(2) + 1) / 2)
    f = torch.tensor([[0.0, 2.0, 0.0], [1.0, -1.0, 0.0]])  # signed latents count
    assert core.l0(f) == 1.5
    dens = core.feature_density(f)
    assert dens.tolist() == [0.5, 1.0, 0.0]
    assert core.alive_fraction(dens) == pytest.approx(2 / 3)
    assert core.dense_fraction(dens, 0.6) == pytest.approx(1 / 3)


def test_accumulator_matches_functions():
    x = _x(100, 5)
    x_hat = x + 0.3 * _x(100, 5, seed=1)
    f = torch.relu(_x(100, 12, seed=2) - 3.5)
    acc = core.ReconstructionAccumulator()
    for i in range(0, 100, 30):
        acc.add(x[i : i + 30], x_hat[i : i + 30], f[i : i + 30])
    r = acc.results()
    assert r["explained_variance"] == pytest.approx(core.explained_variance(x, x_hat))
    assert r["explained_variance_saebench"] == pytest.approx(core.explained_variance_saebench(x, x_hat))
    assert r["mse"] == pytest.approx(core.mse(x, x_hat))
    assert r["cossim"] == pytest.approx(core.cosine_similarity(x, x_hat))
    assert r["l2_ratio"] == pytest.approx(core.l2_ratio(x, x_hat))
    assert r["l0"] == pytest.approx(core.l0(f))
    assert torch.allclose(r["density"], core.feature_density(f))


def test_ce_and_kl_recovered_metrics():
    ce, kl = sb.CELossRecovered(), sb.KLScore()
    assert ce.compute({"clean": 2.0, "with_sae": 2.0, "ablated": 7.0}).value == pytest.approx(1.0)
    assert ce.compute({"clean": 2.0, "with_sae": 7.0, "ablated": 7.0}).value == pytest.approx(0.0)
    assert ce.compute({"clean": 2.0, "with_sae": 3.0, "ablated": 7.0}).value == pytest.approx(0.8)
    assert kl.compute({"with_sae": 0.5, "ablated": 2.0}).value == pytest.approx(0.75)
    with pytest.raises(ValueError):
        ce.compute({"clean": 2.0, "with_sae": 2.0, "ablated": 2.0})


class _Identity(torch.nn.Module):
    """A 'dictionary' that encodes to the activation itself (perfect reconstruction)."""

    def encode(self, x):
        return x

    def decode(self, f):
        return f


class _Zero(_Identity):
    def decode(self, f):
        return torch.zeros_like(f)


def _zoo():
    try:
        from harness.zoo import list_zoo_models
    except ImportError:
        return None
    names = list_zoo_models()
    return "zoo-32" if "zoo-32" in names else (names[0] if names else None)


@pytest.fixture(scope="module")
def zoo_model():
    name = _zoo()
    if name is None:
        pytest.skip("no zoo checkpoints")
    from harness_plugins.zoo_models import ZooModels

    return ZooModels().load(name, None, device="cpu", dtype="float32")


def test_splice_identity_and_zero(zoo_model):
    """Splicing a perfect reconstruction recovers everything; splicing zeros recovers nothing."""
    from harness_plugins.sae_bench.evaluate import evaluate_sae
    from harness_plugins.sae_bench.run import eval_batches

    bos = zoo_model.require_tokenizer().bos_token_id
    hook = "blocks.0.hook_resid_post"
    batches = list(eval_batches(zoo_model, 200_000, 512, 64, 4))
    r, s = evaluate_sae(zoo_model, _Identity(), hook, batches, bos_token_id=bos)
    assert r["explained_variance"] == pytest.approx(1.0)
    assert s.ce_sae == pytest.approx(s.ce_clean, abs=1e-5) and s.kl_sae == pytest.approx(0.0, abs=1e-6)
    assert s.ce_zero > s.ce_clean + 0.1
    assert core.recovered_score(s.ce_clean, s.ce_sae, s.ce_zero) == pytest.approx(1.0, abs=1e-4)
    r0, s0 = evaluate_sae(zoo_model, _Zero(), hook, batches, bos_token_id=bos)
    assert s0.ce_sae == pytest.approx(s0.ce_zero, abs=1e-5)
    assert core.recovered_score(s0.ce_clean, s0.ce_sae, s0.ce_zero) == pytest.approx(0.0, abs=1e-4)
    assert sb.KLScore().compute({"with_sae": s0.kl_sae, "ablated": s0.kl_zero}).value == pytest.approx(0.0, abs=1e-4)
    assert r0["cossim"] == 0.0


def test_sparse_probing_separable_toy():
    from harness_plugins.sae_bench.probing import probe, top_k_by_mean_diff

    rng = np.random.default_rng(0)
    n, d = 300, 40
    y = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, d))
    for c, col in enumerate((5, 17, 33)):  # class c lights up latent col
        x[y == c, col] += 4.0
    assert set(top_k_by_mean_diff(x, (y == 1).astype(int), 1)) == {17}
    tr, te = slice(0, 200), slice(200, None)
    s1 = probe(x[tr], y[tr], x[te], y[te], k=1)
    assert s1.accuracy > 0.9 and s1.n_tasks == 3
    noise = probe(rng.normal(size=(200, d)), y[tr], rng.normal(size=(100, d)), y[te], k=1)
    assert noise.accuracy < 0.75


def test_suite_end_to_end(tmp_path):
    import harness_plugins.topk as tk
    import harness_plugins.zoo_models as zm
    from harness.config import RunSpec
    from harness.runner import execute, plan
    from harness.store import Store
    from harness.testing import registries_with

    zoo = _zoo()
    if zoo is None:
        pytest.skip("no zoo checkpoints")
    regs = registries_with(("sae_bench", sb), ("topk", tk), ("zoo_models", zm))
    cfg = {
        "hook_point": "blocks.0.hook_resid_post", "train_tokens": 2048, "epochs": 1, "batch_size": 256,
        "eval_tokens": 512, "probe_train_examples": 40, "probe_test_examples": 40, "probe_k": [1],
        "probe_class_sets": ["topic"],
    }  # fmt: skip
    spec = RunSpec(
        suites=[{"name": "sae", "config": cfg}], methods=[{"name": "topk", "config": {"k": 4}}],
        models=[f"zoo:{zoo}"], output_dir=tmp_path,
    )  # fmt: skip
    cells = plan(spec, regs)
    assert [c.label for c in cells] == ["topk"]  # no baseline row
    store = Store(tmp_path)
    summary = execute(cells, store, regs, device="cpu", progress=False)
    assert summary.done == 1 and summary.failed == 0
    rec = store.get(cells[0].cell.suite, cells[0].key)
    assert rec.status == "ok"
    vals = {m.column: m.value for m in rec.output.metrics}
    assert vals["sae_l0"] <= 4.0 + 1e-9
    for name in sb.SAEBenchSuite.metrics:
        assert any(m.metric == name for m in rec.output.metrics), name
    assert {"sae_sparse_probing[topic/k1]", "sae_sparse_probing[topic/residual]"} <= set(vals)
    assert all(math.isfinite(v) for v in vals.values())
    assert -1.0 < vals["sae_explained_variance"] <= 1.0
    assert (tmp_path / rec.output.artifacts["feature_density"]).is_file()
