"""The shared SAE trainer: determinism, exact resume, AuxK, kernels, schedule, vSAE KL."""

import shutil

import pytest

torch = pytest.importorskip("torch")

from harness.sae import train_sae  # noqa: E402
from harness.sae.config import SAETrainConfig  # noqa: E402
from harness.sae.trainer import lr_factor  # noqa: E402
from harness.testing import registries_with  # noqa: E402

REGS = registries_with(builtins=True)
TopK = REGS["dictionary_learner"].get("topk")
VSAE = REGS["dictionary_learner"].get("vsae_topk")
BatchTopK = REGS["dictionary_learner"].get("batchtopk")


def data(n=2048, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(48, d, generator=g)
    codes = torch.rand(n, 48, generator=g) * (torch.rand(n, 48, generator=g) < 0.08)
    return codes @ basis + 0.5


CFG = {"expansion_factor": 4, "k": 4, "lr": 2e-3, "dead_tokens_threshold": 512}


def state(sae):
    return {k: v.clone() for k, v in sae.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_deterministic_for_a_seed():
    a, la = train_sae(TopK, CFG, data(), steps=20, batch_size=128, seed=3, progress=False)
    b, lb = train_sae(TopK, CFG, data(), steps=20, batch_size=128, seed=3, progress=False)
    c, _ = train_sae(TopK, CFG, data(), steps=20, batch_size=128, seed=4, progress=False)
    assert_same(state(a), state(b))
    assert la.records == lb.records
    assert not torch.equal(a.W_dec, c.W_dec)


@pytest.mark.parametrize("stream", [False, True], ids=["memory", "stream"])
def test_resume_equals_uninterrupted(tmp_path, stream):
    x = data()
    src = (lambda: list(x.split(300)) * 2) if stream else (lambda: x)  # uneven chunks when streamed
    kw = dict(steps=30, batch_size=128, seed=1, progress=False, checkpoint_every=10, log_every=5)
    full, log_full = train_sae(VSAE, CFG | {"sample": True, "variance": "learned"}, src(),
                               checkpoint_dir=tmp_path / "a", **kw)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["step_00000010", "step_00000020", "step_00000030"]
    (tmp_path / "b").mkdir()  # "interrupted" after step 20: only that checkpoint exists
    shutil.copytree(tmp_path / "a" / "step_00000020", tmp_path / "b" / "step_00000020")
    resumed, log_res = train_sae(VSAE, CFG | {"sample": True, "variance": "learned"}, src(),
                                 checkpoint_dir=tmp_path / "b", **kw)
    assert log_res.resumed_from == 20 and log_res.steps == 10
    assert_same(state(full), state(resumed))
    assert log_full.records == log_res.records


def test_decoder_rows_unit_norm_and_gradient_projection():
    sae = TopK.create(16, CFG, seed=0)
    x = data(256)
    loss, _ = sae.loss(x, 0, 10)
    loss.backward()
    sae.remove_parallel_gradient()
    assert (sae.W_dec.grad * sae.W_dec).sum(-1).abs().max() < 1e-5
    trained, _ = train_sae(TopK, CFG, data(), steps=15, batch_size=128, progress=False)
    torch.testing.assert_close(trained.W_dec.norm(dim=-1), torch.ones(64), atol=1e-5, rtol=0)


def _revived(alpha):
    x = data()
    sae = TopK.create(16, CFG | {"auxk_alpha": alpha, "lr": 5e-3, "dead_tokens_threshold": 256}, seed=0)
    with torch.no_grad():  # latents 32.. get tiny encoder columns: they never reach the top-k
        sae.W_enc[:, 32:] *= 0.02
        sae.b_enc[:32] += 0.3
    sae, _ = train_sae(sae, None, x, steps=60, batch_size=256, progress=False, warmup_steps=5)
    with torch.no_grad():
        return int((sae.encode(x)[:, 32:] != 0).any(0).sum())


def test_auxk_revives_dead_latents():
    assert _revived(0.0) == 0  # no gradient ever reaches a latent outside the top-k
    assert _revived(1 / 32) >= 5


TUNINGS = {  # the CPU default, and the GPU-style choices forced on the CPU (300-row blocks: 4 per batch)
    "cpu-default": {},
    "dense-grad-native-decode": {"chunk_rows": None, "weight_grad": "dense", "decode_backward": "native"},
    "dense-grad-blocks": {"chunk_rows": None, "chunk_elements": 64 * 300, "weight_grad": "dense"},
    "dense-decoder": {"chunk_rows": None, "weight_grad": "dense", "decoder": "dense"},
    "dense-decoder-blocks": {"chunk_rows": None, "chunk_elements": 64 * 300, "decoder": "dense"},
}


@pytest.mark.parametrize("tuning", list(TUNINGS))
@pytest.mark.parametrize("learner", ["topk", "vsae_topk", "batchtopk"])
def test_sparse_and_dense_kernels_agree(learner, tuning, monkeypatch):
    from harness.sae import kernels

    monkeypatch.setitem(kernels.TUNING, "cpu", kernels.KernelTuning(**TUNINGS[tuning]))
    cls = REGS["dictionary_learner"].get(learner)
    x = data(1100) * 2  # > one 512-row encoder chunk and several 256-row decoder chunks
    out = {}
    for kernel in ("sparse", "dense"):
        sae = cls.create(16, CFG | {"kernel": kernel, "dead_tokens_threshold": 1}, seed=3)
        with torch.no_grad():
            sae.b_dec.normal_(generator=torch.Generator().manual_seed(1))
        sae.tokens_since_fired[:40] = 5  # 40 dead latents: AuxK active
        loss, logs = sae.loss(x, 0, 10)
        loss.backward()
        out[kernel] = (loss.detach(), {n: p.grad for n, p in sae.named_parameters()}, logs.get("auxk"))
    (ls, gs, auxs), (ld, gd, auxd) = out["sparse"], out["dense"]
    assert auxs is not None
    torch.testing.assert_close(ls, ld)
    torch.testing.assert_close(auxs, auxd)
    for n in gs:
        torch.testing.assert_close(gs[n], gd[n], atol=2e-5, rtol=1e-4)


def test_sparse_kernel_under_autocast_matches_fp32():
    sae = TopK.create(16, CFG | {"kernel": "sparse"}, seed=0)
    x = data(256)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lb, _ = sae.loss(x, 0, 10)
    lf, _ = sae.loss(x, 0, 10)
    assert lb.dtype == torch.float32
    torch.testing.assert_close(lb, lf, rtol=0.05, atol=0)


def test_vsae_kl_matches_hand_computed_values():
    sae = VSAE.create(2, {"d_sae": 3, "k": 1, "variance": "fixed"}, seed=0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, 1.0]]))
        sae.b_enc.copy_(torch.tensor([0.0, 0.5, -3.0]))
    x = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    mu, lv = sae.moments(x)  # ReLU([1, 1.5, -1.5]) and ReLU([2, -1.5, -2])
    torch.testing.assert_close(mu, torch.tensor([[1.0, 1.5, 0.0], [2.0, 0.0, 0.0]]))
    assert lv is None
    # fixed variance, all latents: 0.5 * mean(1 + 2.25, 4) = 1.8125
    torch.testing.assert_close(sae.kl(mu, None, mu), torch.tensor(1.8125))
    vals, idx = sae.topk_abs(mu, 1)  # picks 1.5 and 2.0: 0.5 * mean(2.25, 4) = 1.5625
    torch.testing.assert_close(sae.kl(mu, None, mu, idx), torch.tensor(1.5625))
    loss, logs = sae.train().loss(x, 10**6, 10**6 + 1)  # past the ramp: loss = mse + 1.0 * KL
    torch.testing.assert_close(logs["kl"], torch.tensor(1.8125))
    torch.testing.assert_close(loss, logs["mse"] + 1.8125)
    # learned variance: 0.5 * sum(mu^2 + e^lv - 1 - lv), lv clamped to [-6, 2]
    learned = VSAE.create(2, {"d_sae": 3, "k": 1, "variance": "learned"}, seed=0)
    mu2 = torch.tensor([[1.0, 0.0, 12.0]])
    lv2 = torch.tensor([[0.0, -2.0, 2.0]])
    import math

    want = 0.5 * ((1 + 1 - 1 - 0) + (0 + math.exp(-2) - 1 + 2) + (100 + math.exp(2) - 1 - 2))
    torch.testing.assert_close(learned.kl(mu2, lv2, mu2), torch.tensor(want))


def test_vsae_topk_by_abs_keeps_sign():
    sae = VSAE.create(2, {"d_sae": 3, "k": 2, "mu_activation": "identity"}, seed=0)
    vals, idx = sae.topk_abs(torch.tensor([[0.5, -3.0, 2.0]]), 2)
    assert sorted(vals.tolist()[0]) == [-3.0, 2.0] and sorted(idx.tolist()[0]) == [1, 2]


def test_vsae_ramp_starts_at_zero():
    sae = VSAE.create(16, CFG, seed=0)
    loss, logs = sae.loss(data(128), 0, 100)
    torch.testing.assert_close(loss, logs["mse"])  # ramp(0) = 0, no dead latents yet


def test_lr_schedule():
    cfg = SAETrainConfig(warmup_steps=10, decay_start=0.8)
    assert lr_factor(0, 100, cfg) == pytest.approx(0.1)
    assert lr_factor(50, 100, cfg) == 1.0
    assert lr_factor(90, 100, cfg) == pytest.approx(0.5)
    assert lr_factor(99, 100, cfg) == pytest.approx(0.05)


def test_normalize_activations_is_folded_into_weights():
    x = data() * 30
    sae, log = train_sae(TopK, CFG, x, steps=20, batch_size=128, progress=False,
                         normalize_activations="expected_average_only_in")
    assert log.input_scale is not None and log.input_scale < 1
    with torch.no_grad():  # the saved SAE takes raw activations
        ev = 1 - (x - sae(x)).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert ev > 0.3


def test_vsae_recipe_topk_is_topks_recipe_and_authors_restores_april_mode():
    topk_cfg = REGS["dictionary_learner"].get("topk").Config()
    v = VSAE.Config()
    shared = ("apply_b_dec_to_input", "unit_norm_decoder", "decoder_init_norm", "b_dec_init", "lr")
    assert v.recipe == "topk" and all(getattr(v, f) == getattr(topk_cfg, f) for f in shared)
    a = VSAE.Config(recipe="authors")
    assert (a.apply_b_dec_to_input, a.unit_norm_decoder, a.decoder_init_norm, a.b_dec_init, a.lr) == \
        (False, False, 0.1, "zeros", 8e-4)
    assert VSAE.Config(recipe="authors", lr=1e-3).lr == 1e-3  # an explicit field wins over the recipe
    sae_t = VSAE.create(16, v, seed=0)
    sae_k = REGS["dictionary_learner"].get("topk").create(16, topk_cfg, seed=0)
    assert sae_t.default_lr() == sae_k.default_lr()


class _Bare(torch.nn.Module):
    """A learner with the DictionaryLearner contract only: no init_from_data, normalize_decoder,
    remove_parallel_gradient, after_step, firing_stats or default_lr."""

    name = "bare"

    def __init__(self, d: int, lr: float | None) -> None:
        super().__init__()
        self.config = type("C", (), {"lr": lr})()
        self.W_enc = torch.nn.Parameter(torch.randn(d, 2 * d) * 0.1)
        self.W_dec = torch.nn.Parameter(torch.randn(2 * d, d) * 0.1)

    def encode(self, x):
        return torch.relu(x @ self.W_enc)

    def decode(self, f):
        return f @ self.W_dec

    def loss(self, x, step, total_steps):
        err = (self.decode(self.encode(x)) - x).pow(2).sum(-1).mean()
        return err, {"mse": err.detach()}


def test_a_contract_only_learner_trains_and_one_without_an_lr_is_told_how():
    from harness.sae import train_sae

    torch.manual_seed(0)
    x = torch.randn(512, 8)
    sae = _Bare(8, lr=1e-2)
    before = (sae.decode(sae.encode(x)) - x).pow(2).sum(-1).mean().item()
    trained, log = train_sae(sae, activations=x, tokens=2048, batch_size=128, seed=0, progress=False)
    after = (trained.decode(trained.encode(x)) - x).pow(2).sum(-1).mean().item()
    assert after < before and log.steps == 16
    with pytest.raises(TypeError, match="no learning rate.*Fix"):
        train_sae(_Bare(8, lr=None), activations=x, tokens=256, batch_size=128, seed=0, progress=False)
