"""Suite "sae" (plugins/sae_bench): core metrics on hand-computed cases, probing, end to end."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
    assert ce.report(clean=2.0, with_sae=2.0, ablated=7.0).value == pytest.approx(1.0)
    assert ce.report(clean=2.0, with_sae=7.0, ablated=7.0).value == pytest.approx(0.0)
    assert ce.report(clean=2.0, with_sae=3.0, ablated=7.0).value == pytest.approx(0.8)
    assert kl.report(with_sae=0.5, ablated=2.0).value == pytest.approx(0.75)
    with pytest.raises(ValueError):
        ce.report(clean=2.0, with_sae=2.0, ablated=2.0)


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
    assert sb.KLScore().report(s0.kl_sae, s0.kl_zero).value == pytest.approx(0.0, abs=1e-4)
    assert r0["cossim"] == 0.0


class _NoisyLinear(torch.nn.Module):
    """A fixed random dictionary (ReLU encoder, linear decoder): an imperfect reconstruction."""

    def __init__(self, d: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W_enc = torch.randn(d, 4 * d, generator=g) / d**0.5
        self.W_dec = torch.linalg.pinv(self.W_enc) + 0.05 * torch.randn(4 * d, d, generator=g)

    def encode(self, x):
        return torch.relu(x @ self.W_enc)

    def decode(self, f):
        return f @ self.W_dec


def test_chunked_ce_kl_passes_match_one_pass(zoo_model):
    """Splitting the logits passes into row chunks (as for a large vocabulary) changes nothing
    but float rounding: CE / KL means, per-context sums and reconstruction statistics."""
    from harness.models.harvest import TokenBatch
    from harness_plugins.sae_bench.evaluate import _vocab_size, evaluate_sae, rows_per_chunk
    from harness_plugins.sae_bench.run import eval_batches

    bos = zoo_model.require_tokenizer().bos_token_id
    hook = "blocks.0.hook_resid_post"
    batches = list(eval_batches(zoo_model, 200_000, 700, 48, 5))
    ids, mask = batches[0].input_ids.clone(), batches[0].attention_mask.clone()
    mask[1, 30:] = 0  # padded rows: targets after the padding do not count
    mask[3, 5:] = 0
    batches[0] = TokenBatch(ids, mask)
    sae = _NoisyLinear(zoo_model.d_model)
    vocab, ctx = _vocab_size(zoo_model.model), ids.shape[1]
    assert rows_per_chunk(5, ctx, vocab) == 5  # the zoo's logits fit: one pass per batch, as before
    r1, s1 = evaluate_sae(zoo_model, sae, hook, batches, bos_token_id=bos)
    for rows in (1, 2):  # 1 row per pass; 2 rows: 5 = 2 + 2 + 1 (a short last chunk)
        assert rows_per_chunk(5, ctx, vocab, rows * ctx * vocab) == rows
        r, s = evaluate_sae(zoo_model, sae, hook, batches, bos_token_id=bos, max_logits_elements=rows * ctx * vocab)
        assert s.n_predictions == s1.n_predictions
        for name in ("ce_clean", "ce_sae", "ce_zero", "kl_sae", "kl_zero"):
            assert getattr(s, name) == pytest.approx(getattr(s1, name), rel=1e-5, abs=1e-6), name
            assert torch.allclose(s.per_context[name], s1.per_context[name], rtol=1e-5, atol=1e-5), name
        for key in ("explained_variance", "mse", "cossim", "l0"):
            assert r[key] == pytest.approx(r1[key], rel=1e-6), key
    assert 0 < s1.kl_sae < s1.kl_zero and s1.ce_clean < s1.ce_sae < s1.ce_zero  # a non-trivial case


def test_rows_per_chunk_bounds_the_logits():
    from harness_plugins.sae_bench.evaluate import MAX_LOGITS_ELEMENTS, rows_per_chunk

    # Pythia-70M's padded vocabulary at the sae suite's defaults (32 contexts of 128 tokens)
    rows = rows_per_chunk(32, 128, 50304)
    assert rows == MAX_LOGITS_ELEMENTS // (128 * 50304) == 5 and rows * 128 * 50304 <= MAX_LOGITS_ELEMENTS
    assert rows_per_chunk(32, 128, 1024) == 32  # never more than the batch
    assert rows_per_chunk(32, 4096, 256_000) == 1  # never fewer than one row


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
    import harness.datasets.builtin as datasets
    import harness_plugins.lm_eval_suite as lm
    import harness_plugins.topk as tk
    import harness_plugins.zoo_models as zm
    from harness.config import RunSpec
    from harness.runner import execute, plan
    from harness.store import Store
    from harness.testing import registries_with

    zoo = _zoo()
    if zoo is None:
        pytest.skip("no zoo checkpoints")
    regs = registries_with(("sae_bench", sb), ("topk", tk), ("zoo_models", zm), ("lm_eval_suite", lm),  # capability_*
                           ("datasets", datasets))  # the world, the default of the data fields
    cfg = {
        "hook_point": "blocks.0.hook_resid_post", "train_tokens": 2048, "epochs": 1, "batch_size": 256,
        "eval_tokens": 512, "probe_train_examples": 40, "probe_test_examples": 40, "probe_k": [1],
        "probe_class_sets": ["topic"], "sweep_values": [2], "matched_l0": 3,
        "scr_tpp_train_examples": 240, "scr_tpp_test_examples": 240, "scr_tpp_n": [2],
        "capability_tasks": ["zoo_agreement", "zoo_first_letter"], "capability_limit": 20,
    }  # fmt: skip
    spec = RunSpec(
        suites=[{"name": "sae", "config": cfg}], methods=[{"name": "topk", "config": {"k": 4}}],
        models=[f"zoo:{zoo}"], output_dir=tmp_path, seeds=[0],
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
    assert (tmp_path / rec.output.artifacts["decoder_tsne"]).is_file()
    assert {"capability_delta[mean]", "capability_delta[zoo_first_letter]", "capability_acc[zoo_agreement]"} <= set(vals)
    assert rec.output.details["capability"]["n"] == {"zoo_agreement": 20, "zoo_first_letter": 20}
    se = {m.metric: m.stderr for m in rec.output.metrics if m.key is None}
    assert se["sae_explained_variance"] > 0 and se["sae_ce_loss_recovered"] > 0 and se["sae_l0"] == pytest.approx(0.0)
    sweep = rec.output.details["sweep"]
    assert sweep["field"] == "k" and [p["value"] for p in sweep["points"]] == [2]
    assert sweep["points"][0]["l0"] <= 2.0 + 1e-9
    lo, hi = sorted([vals["sae_l0"], sweep["points"][0]["l0"]])
    if lo < 3 < hi:  # the matched value lies between the two points' CE-loss recovered
        ends = sorted([vals["sae_ce_loss_recovered"], sweep["points"][0]["ce_loss_recovered"]])
        assert ends[0] - 1e-9 <= vals["sae_ce_loss_recovered_at_l0"] <= ends[1] + 1e-9
    md = sb.SAEBenchSuite.summarize([rec], tmp_path / "lb")
    assert "k=4" in md and "k=2" in md and (tmp_path / "lb" / "pareto.png").is_file()
    assert "Matched L0" in md and "SCR and TPP across seeds" in md and "2605.18229" in md


def test_matched_l0_interpolates_in_log_l0_and_never_extrapolates():
    from harness_plugins.sae_bench.matched import at_l0, coverage_note, curve

    pts = curve(19.0, {"s": 0.90}, [{"l0": 6.0, "s": 0.80}, {"l0": 76.0, "s": 0.98}])
    assert [p["l0"] for p in pts] == [6.0, 19.0, 76.0]
    # 38 is halfway between 19 and 76 in log L0: halfway between 0.90 and 0.98
    assert at_l0(pts, "s", 38.0) == pytest.approx(0.94)
    assert at_l0(pts, "s", 19.0) == pytest.approx(0.90)  # exact at a point
    assert at_l0(pts, "s", 100.0) is None and at_l0(pts, "s", 5.0) is None  # outside: no value
    assert "6.0..76.0" in coverage_note(pts, 100.0)
    # a swept point at the own point's setting is the same setting retrained: dropped
    assert len(curve(32.0, {"s": 0.9}, [{"l0": 32.0, "s": 0.91}, {"l0": 8.0, "s": 0.7}])) == 2


def test_matched_l0_ranks_a_sparser_learner_fairly():
    """A learner at L0 19 with a steeper curve beats one at L0 32 once both are read at L0 32."""
    from harness_plugins.sae_bench.matched import at_l0, curve

    dense = curve(32.0, {"s": 0.994}, [{"l0": 8.0, "s": 0.985}, {"l0": 128.0, "s": 0.998}])
    sparse = curve(19.0, {"s": 0.992}, [{"l0": 6.0, "s": 0.95}, {"l0": 82.0, "s": 0.9995}])
    assert at_l0(sparse, "s", 19.0) < at_l0(dense, "s", 32.0)  # each at its own L0: the sparse one loses
    assert at_l0(sparse, "s", 32.0) > at_l0(dense, "s", 32.0)


def test_bootstrap_stderr_matches_the_point_estimate_and_scales():
    """Unit weights reproduce the accumulator's values; identical contexts give zero stderr; the
    stderr of a mean over C independent contexts is close to sd / sqrt(C)."""
    x = _x(120, 4)
    x_hat = x + 0.5 * _x(120, 4, seed=3)
    f = torch.relu(_x(120, 9, seed=4) - 3.0)
    ctx = torch.arange(120) // 4  # 30 contexts of 4 tokens
    acc = core.ReconstructionAccumulator()
    acc.add(x, x_hat, f, ctx=ctx)
    r = acc.results()
    ones = {k: v.sum(0, keepdim=True) for k, v in r["per_context"].items()}
    point = core.metrics_from_sums(ones)
    for key in ("l0", "mse", "explained_variance", "explained_variance_saebench", "cossim", "l2_ratio"):
        assert float(point[key][0]) == pytest.approx(r[key], rel=1e-9), key
    same = core.ReconstructionAccumulator()
    same.add(x[:4].repeat(30, 1), x_hat[:4].repeat(30, 1), f[:4].repeat(30, 1), ctx=ctx)
    assert core.bootstrap_stderr(same.results()["per_context"])["mse"] == pytest.approx(0.0, abs=1e-12)
    per_ctx_l0 = r["per_context"]["l0"] / r["per_context"]["n"]
    expected = float(per_ctx_l0.std()) / math.sqrt(30)
    got = core.bootstrap_stderr(r["per_context"], n_boot=2000, seed=1)["l0"]
    assert got == pytest.approx(expected, rel=0.15)
    ce = {"ce_clean": torch.full((5,), 2.0), "ce_sae": torch.full((5,), 3.0), "ce_zero": torch.full((5,), 7.0),
          "kl_sae": torch.full((5,), 1.0), "kl_zero": torch.full((5,), 4.0)}  # fmt: skip
    se = core.bootstrap_stderr(ce)
    assert se["ce_loss_recovered"] == pytest.approx(0.0, abs=1e-12) and se["kl_score"] == pytest.approx(0.0, abs=1e-12)


def test_pareto_frontier_and_presets():
    from harness_plugins.sae_bench.pareto import Point, frontier

    pts = [Point("m", "a", "k=1", 1.0, {"s": 0.5}, False), Point("m", "a", "k=2", 2.0, {"s": 0.7}, True),
           Point("m", "b", "k=2", 2.0, {"s": 0.6}, False), Point("m", "b", "k=4", 4.0, {"s": 0.7}, True),
           Point("other", "b", "k=9", 9.0, {"s": 0.1}, False)]  # fmt: skip
    assert frontier(pts, "s") == {0, 1, 4}  # (2, .6) and (4, .7) are dominated by (2, .7); models apart
    quick, full = sb.SAEBenchSuite.Config(), sb.SAEBenchSuite.Config(preset="full")
    assert quick.budget("sweep_values") == [8, 128] and full.budget("sweep_values") == [8, 16, 64, 128]
    assert full.budget("train_tokens") > quick.budget("train_tokens")
    assert sb.SAEBenchSuite.Config(preset="full", train_tokens=1024).budget("train_tokens") == 1024


def test_latent_map_assigns_the_class_a_latent_tracks():
    from harness_plugins.sae_bench.latent_map import best_classes

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    f = rng.normal(size=(300, 6)) * 0.1
    f[y == 2, 4] += 1.0  # latent 4 fires for class 2
    names, eff = best_classes({"topic": (f, y, [f"c{v}" for v in y])}, min_effect=1.0)
    assert names[4] == "topic:c2" and eff[4] > 1.0
    assert sum(bool(n) for n in names) == 1


def test_shared_reference_gives_the_fresh_evaluation_exactly(zoo_model):
    """Every SAE scored against one clean reference gets what a fresh evaluation gives, bit for bit, with
    the clean log-probabilities kept or recomputed; a reference for another hook point is refused."""
    from harness_plugins.sae_bench.evaluate import clean_reference, evaluate_sae
    from harness_plugins.sae_bench.run import eval_batches

    bos = zoo_model.require_tokenizer().bos_token_id
    hook = "blocks.0.hook_resid_post"
    batches = list(eval_batches(zoo_model, 200_000, 512, 64, 4))
    kept = clean_reference(zoo_model, hook, batches, bos_token_id=bos)
    redo = clean_reference(zoo_model, hook, batches, bos_token_id=bos, keep_logits_bytes=0)
    assert all(c.logp_clean is not None for b in kept.batches for c in b.chunks)
    assert all(c.logp_clean is None for b in redo.batches for c in b.chunks)
    for seed in (0, 1):
        sae = _NoisyLinear(zoo_model.d_model, seed)
        r0, s0 = evaluate_sae(zoo_model, sae, hook, batches, bos_token_id=bos)
        for ref in (kept, redo):
            r, s = evaluate_sae(zoo_model, sae, hook, [], bos_token_id=bos, reference=ref)
            assert (s.ce_clean, s.ce_sae, s.ce_zero, s.kl_sae, s.kl_zero) == (
                s0.ce_clean, s0.ce_sae, s0.ce_zero, s0.kl_sae, s0.kl_zero)
            assert all(torch.equal(s.per_context[k], s0.per_context[k]) for k in s0.per_context)
            assert (r["l0"], r["mse"], r["explained_variance"]) == (r0["l0"], r0["mse"], r0["explained_variance"])
    with pytest.raises(ValueError, match="another hook point"):
        evaluate_sae(zoo_model, sae, "blocks.1.hook_resid_post", [], bos_token_id=bos, reference=kept)


def test_rows_and_seeds_share_model_side_work_without_changing_a_value(tmp_path, monkeypatch):
    """Two rows on one model in one process: the second reuses the first's harvest, clean reference and
    probing activations (details['shared']), and every value equals a run with the memo off."""
    import harness.datasets.builtin as datasets
    import harness_plugins.topk as tk
    import harness_plugins.zoo_models as zm
    from harness.config import RunSpec
    from harness.memo import memo
    from harness.runner import execute, plan
    from harness.store import Store
    from harness.testing import registries_with

    zoo = _zoo()
    if zoo is None:
        pytest.skip("no zoo checkpoints")
    import harness_plugins.lm_eval_suite as lm

    regs = registries_with(("sae_bench", sb), ("topk", tk), ("zoo_models", zm), ("lm_eval_suite", lm),
                           ("datasets", datasets))
    cfg = {
        "hook_point": "blocks.0.hook_resid_post", "train_tokens": 1024, "epochs": 1, "batch_size": 256,
        "eval_tokens": 256, "probe_train_examples": 24, "probe_test_examples": 24, "probe_k": [1],
        "probe_class_sets": ["topic"], "sweep_values": [2], "scr_tpp": False, "absorption": False, "tsne": False,
        "capability_tasks": [],
    }  # fmt: skip

    def run(out: Path, memo_mb: str) -> list[dict[str, Any]]:
        monkeypatch.setenv("HARNESS_MEMO_MB", memo_mb)
        memo().clear()
        spec = RunSpec(
            suites=[{"name": "sae", "config": cfg}], models=[f"zoo:{zoo}"], output_dir=out, seeds=[0],
            methods=[{"name": "topk", "label": "k3", "config": {"k": 3}}, {"name": "topk", "label": "k4", "config": {"k": 4}}],
        )  # fmt: skip
        cells = plan(spec, regs)
        store = Store(out)
        assert execute(cells, store, regs, device="cpu", progress=False).failed == 0
        return [store.get(c.cell.suite, c.key).output for c in cells]

    shared, alone = run(tmp_path / "shared", "512"), run(tmp_path / "alone", "0")
    assert shared[0].details["shared"]["hits"] > 0  # its own sweep retraining reuses the reference
    assert shared[1].details["shared"]["hits"] >= 3 and shared[1].details["shared"]["misses"] == 0
    assert alone[1].details["shared"]["hits"] == 0
    for a, b in zip(shared, alone):
        assert {m.column: m.value for m in a.metrics} == {m.column: m.value for m in b.metrics}


def test_a_learner_without_k_is_swept_at_multiples_of_its_sparsity_penalty(tmp_path):
    """gated has no k: the sweep retrains it at penalty_factors x its l1_coefficient, so its curve exists."""
    import harness.datasets.builtin as datasets
    import harness_plugins.gated as gated
    import harness_plugins.lm_eval_suite as lm
    import harness_plugins.zoo_models as zm
    from harness.config import RunSpec
    from harness.runner import execute, plan
    from harness.store import Store
    from harness.testing import registries_with

    zoo = _zoo()
    if zoo is None:
        pytest.skip("no zoo checkpoints")
    assert gated.Gated.sparsity_field == "l1_coefficient"
    regs = registries_with(("sae_bench", sb), ("gated", gated), ("zoo_models", zm), ("lm_eval_suite", lm),
                           ("datasets", datasets))
    cfg = {
        "hook_point": "blocks.0.hook_resid_post", "train_tokens": 1024, "epochs": 1, "batch_size": 256,
        "eval_tokens": 256, "probing": False, "scr_tpp": False, "absorption": False, "tsne": False,
        "capability_tasks": [], "penalty_factors": [0.25, 4.0],
    }  # fmt: skip
    spec = RunSpec(suites=[{"name": "sae", "config": cfg}], methods=[{"name": "gated", "config": {"l1_coefficient": 2.0}}],
                   models=[f"zoo:{zoo}"], output_dir=tmp_path, seeds=[0])
    cells = plan(spec, regs)
    store = Store(tmp_path)
    assert execute(cells, store, regs, device="cpu", progress=False).failed == 0
    sweep = store.get(cells[0].cell.suite, cells[0].key).output.details["sweep"]
    assert sweep["field"] == "l1_coefficient" and [p["value"] for p in sweep["points"]] == [0.5, 8.0]
    assert sweep["points"][0]["l0"] > sweep["points"][1]["l0"]  # a smaller penalty is denser
    assert "penalty_factors" not in sb.SAEBenchSuite.parse_config({}).model_dump(exclude_defaults=True)
