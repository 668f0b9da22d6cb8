"""Every built-in dictionary learner: trains, keeps its invariants, round-trips bit-exactly."""

import pytest

torch = pytest.importorskip("torch")

from harness.sae import load_sae, train_sae  # noqa: E402
from harness.sae.base import HARNESS_WEIGHTS_FILE, SAELENS_TENSORS  # noqa: E402
from harness.testing import registries_with  # noqa: E402

REGS = registries_with(builtins=True)
OURS = ("batchtopk", "gated", "jumprelu", "matryoshka_batchtopk", "relu_l1", "topk", "vsae_topk")  # built on harness.sae.SAEBase
LEARNERS = [n for n in OURS if n in REGS["dictionary_learner"]]
TOPK_STYLE = {"topk", "batchtopk", "matryoshka_batchtopk", "vsae_topk"}
BATCH_TOPK = {"batchtopk", "matryoshka_batchtopk"}  # k per token on average over the batch
# Small-data settings per learner (defaults are tuned for real runs).
TINY = {
    "topk": {"k": 4},
    "batchtopk": {"k": 4},
    "vsae_topk": {"k": 4, "kl_coeff": 0.01},
    "relu_l1": {"l1_coefficient": 0.05, "lr": 3e-3},
    "jumprelu": {"l0_coefficient": 0.01, "lr": 3e-3, "threshold_init": 0.01, "bandwidth": 0.05},
    "matryoshka_batchtopk": {"k": 4, "prefix_fractions": [0.125, 0.5, 1.0]},
    "gated": {"l1_coefficient": 0.05, "lr": 3e-3},
}


def data(n=2048, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(48, d, generator=g)
    codes = torch.rand(n, 48, generator=g) * (torch.rand(n, 48, generator=g) < 0.08)
    return codes @ basis + 0.5


def cfg(name, **extra):
    return {"expansion_factor": 4, "lr": 2e-3} | TINY[name] | extra


def test_all_expected_learners_registered():
    assert {"topk", "vsae_topk", "relu_l1", "batchtopk", "jumprelu", "matryoshka_batchtopk", "gated"} <= set(LEARNERS)


@pytest.mark.parametrize("name", LEARNERS)
def test_learner_trains_and_loss_decreases(name):
    cls = REGS["dictionary_learner"].get(name)
    sae, log = train_sae(cls, cfg(name), data(), steps=60, batch_size=256, progress=False, log_every=10,
                         warmup_steps=5)
    assert isinstance(sae, cls) and isinstance(sae, torch.nn.Module)
    assert tuple(sae.W_enc.shape) == (16, 64) and tuple(sae.W_dec.shape) == (64, 16)
    first, last = log.records[0], log.records[-1]
    assert last["mse"] < 0.7 * first["mse"], (first, last)
    assert last["explained_variance"] > first["explained_variance"]
    if sae.config.unit_norm_decoder:
        torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(TOPK_STYLE - BATCH_TOPK))
def test_topk_exactly_k_nonzeros(name):
    sae = REGS["dictionary_learner"].get(name).create(16, cfg(name, k=5), seed=1).eval()
    x = data(300)
    sae.b_enc.data.fill_(5.0)  # every pre-activation positive: exactly k survive ReLU
    f = sae.encode(x)
    assert ((f != 0).sum(-1) == 5).all()


@pytest.mark.parametrize("name", sorted(BATCH_TOPK))
def test_batchtopk_keeps_k_per_token_on_average(name):
    sae = REGS["dictionary_learner"].get(name).create(16, cfg(name, k=5), seed=1)
    sae.b_enc.data.fill_(5.0)
    f = sae.train().encode(data(300))
    assert int((f != 0).sum()) == 5 * 300


@pytest.mark.parametrize("name", LEARNERS)
def test_save_load_round_trip_bit_exact(name, tmp_path):
    cls = REGS["dictionary_learner"].get(name)
    sae, _ = train_sae(cls, cfg(name), data(512), steps=8, batch_size=128, progress=False)
    sae.metadata.update(hook_name="blocks.1.hook_resid_post", model_name="zoo:zoo-64")
    sae.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} <= {"cfg.json", "sae_weights.safetensors", HARNESS_WEIGHTS_FILE}
    from safetensors.torch import load_file

    assert set(load_file(str(tmp_path / "sae_weights.safetensors"))) <= SAELENS_TENSORS  # SAELens loads strictly
    back = load_sae(tmp_path, REGS)
    assert type(back) is type(sae) and back.config == sae.config
    assert back.metadata["hook_name"] == "blocks.1.hook_resid_post"
    for k, v in sae.weights_to_save().items():
        assert torch.equal(v, back.weights_to_save()[k]), k
    x = data(64, seed=3)
    with torch.no_grad():
        assert torch.equal(sae(x), back(x))
        assert torch.equal(sae.encode(x), back.encode(x))


def test_jumprelu_threshold_gets_gradient_only_near_threshold():
    from harness_plugins.jumprelu.model import JumpReLUFn, StepFn

    z = torch.tensor([[0.10, 0.5004, 0.5, 0.9]], requires_grad=True)
    theta = torch.full((4,), 0.5, requires_grad=True)
    JumpReLUFn.apply(z, theta, 0.01).sum().backward()
    # d/dtheta = -(theta/eps) K((z - theta)/eps): only |z - theta| < eps/2 contributes
    torch.testing.assert_close(theta.grad, torch.tensor([0.0, -50.0, -50.0, 0.0]))
    torch.testing.assert_close(z.grad, torch.tensor([[0.0, 1.0, 0.0, 1.0]]))
    theta.grad = None
    StepFn.apply(z, theta, 0.01).sum().backward()
    torch.testing.assert_close(theta.grad, torch.tensor([0.0, -100.0, -100.0, 0.0]))
