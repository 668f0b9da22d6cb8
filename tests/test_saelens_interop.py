"""SAELens, sparsify and dictionary_learning interoperability, proven with the real packages.

They run in their own Python environment (sae-lens pins its own transformers; harness's stays
untouched): ``.ci/run`` builds one and sets ``HARNESS_PEERS_PYTHON``. The peers' side is
tests/interop/saelens_side.py, which never imports harness.

- every built-in learner saved by harness loads in SAELens with the same encode / decode
  (1e-6), and what SAELens saves again loads back in harness with the same function;
- SAELens's own standard / topk / jumprelu / gated SAEs load in harness with the same function;
- SAELens options harness does not implement (decoder-norm rescaling, layer-norm input
  normalisation) are refused with a clear error instead of being loaded silently wrong;
- a sparsify SparseCoder folder loads as harness's topk with the same function; sparsify's
  skip connection is refused;
- dictionary_learning's AutoEncoder / AutoEncoderTopK / BatchTopKSAE / JumpReluAutoEncoder,
  converted to safetensors, load with the same function; its pickled ae.pt is refused;
- SAELens's training losses (MatryoshkaBatchTopKTrainingSAE, GatedTrainingSAE) on harness's
  weights, input batch and dead-latent mask equal harness's matryoshka_batchtopk / gated losses,
  term by term.
"""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file, save_file  # noqa: E402

from harness.errors import HarnessError  # noqa: E402
from harness.sae import load_sae  # noqa: E402
from harness.testing import registries_with  # noqa: E402

SAELENS_PYTHON = os.environ.get("HARNESS_PEERS_PYTHON")
SIDE = Path(__file__).parent / "interop" / "saelens_side.py"
REGS = registries_with(builtins=True)
# every learner that builds a fresh dictionary (pretrained_sae only loads folders, tested below)
LEARNERS = [n for n, cls in ((n, REGS["dictionary_learner"].get(n)) for n in REGS["dictionary_learner"].names())
            if not getattr(cls, "pretrained", False)]
D_IN = 16

if not SAELENS_PYTHON and os.environ.get("CI"):
    raise RuntimeError("CI must run the SAELens interoperability tests: .ci/run sets HARNESS_PEERS_PYTHON.")
pytestmark = pytest.mark.skipif(not SAELENS_PYTHON,
                                reason="HARNESS_PEERS_PYTHON (a Python with sae-lens and eai-sparsify) not set")


def _saelens(command: str, root: Path) -> None:
    r = subprocess.run([SAELENS_PYTHON, str(SIDE), command, str(root)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def _outputs(sae, x):
    with torch.no_grad():
        f = sae.encode(x)
        return f, sae.decode(f)


def _close(a, b) -> None:
    torch.testing.assert_close(a.float(), b.float(), atol=1e-6, rtol=1e-5)


def _learner(name: str):
    cls = REGS["dictionary_learner"].get(name)
    fields = cls.Config.model_fields
    cfg = {k: v for k, v in {"d_sae": 4 * D_IN, "k": 6, "expansion_factor": 4}.items() if k in fields}
    if "d_sae" in cfg:
        cfg.pop("expansion_factor", None)
    sae = cls.create(D_IN, cls.Config(**cfg), seed=3)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for pname, p in sae.named_parameters():
            scale = 0.3 if pname.startswith("W") else 0.1
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        if hasattr(sae, "log_threshold"):  # jumprelu: thresholds in [0.01, 0.21]
            sae.log_threshold.copy_((torch.rand(sae.d_sae, generator=gen) * 0.2 + 0.01).log())
        if name in ("batchtopk", "matryoshka_batchtopk"):
            sae.threshold.fill_(0.05)
    return sae.eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(64, D_IN, generator=torch.Generator().manual_seed(11))


@pytest.fixture(scope="module")
def harness_saved(tmp_path_factory, x):
    """Every built-in learner saved by harness, then loaded (and saved again) by SAELens."""
    root = tmp_path_factory.mktemp("harness_saved")
    save_file({"x": x}, str(root / "x.safetensors"))
    saes = {}
    for name in LEARNERS:
        saes[name] = _learner(name)
        saes[name].save(root / name / "sae")
    _saelens("load", root)
    return root, saes


@pytest.mark.parametrize("name", LEARNERS)
def test_harness_sae_loads_in_saelens_with_same_function(harness_saved, x, name):
    root, saes = harness_saved
    f, x_hat = _outputs(saes[name], x)
    theirs = load_file(str(root / name / "saelens_out.safetensors"))
    assert int((f != 0).sum()) > 0
    _close(theirs["f"], f)
    _close(theirs["x_hat"], x_hat)


@pytest.mark.parametrize("name", LEARNERS)
def test_saelens_resave_loads_back_in_harness(harness_saved, x, name):
    root, saes = harness_saved
    back = load_sae(root / name / "resaved", REGS)
    for ours, theirs in zip(_outputs(saes[name], x), _outputs(back, x), strict=True):
        _close(theirs, ours)


@pytest.fixture(scope="module")
def saelens_saved(tmp_path_factory, x):
    root = tmp_path_factory.mktemp("saelens_saved")
    save_file({"x": x}, str(root / "x.safetensors"))
    _saelens("make", root)
    return root


DL = {"dl_autoencoder": "relu_l1", "dl_topk": "topk", "dl_batchtopk": "batchtopk", "dl_jumprelu": "jumprelu"}


@pytest.mark.parametrize("arch", ["standard", "standard_no_bdec", "topk", "jumprelu", "gated", "sparsify", *DL])
def test_peer_sae_loads_in_harness_with_same_function(saelens_saved, x, arch):
    sae = load_sae(saelens_saved / arch / "sae", REGS)
    expected = {"standard": "relu_l1", "standard_no_bdec": "relu_l1", "sparsify": "topk", **DL}.get(arch, arch)
    assert sae.name == expected
    theirs = load_file(str(saelens_saved / arch / "saelens_out.safetensors"))
    f, x_hat = _outputs(sae, x)
    assert int((f != 0).sum()) > 0 and math.isfinite(float(x_hat.sum()))
    _close(f, theirs["f"])
    _close(x_hat, theirs["x_hat"])


@pytest.mark.parametrize("case,option", [("refuse_decoder_norm_rescale", "rescale_acts_by_decoder_norm"),
                                         ("refuse_layer_norm", "normalize_activations='layer_norm'"),
                                         ("refuse_sparsify_skip", "skip_connection=true"),
                                         ("refuse_dl_pickle", "unpickling can run arbitrary code")])
def test_unsupported_peer_options_are_refused(saelens_saved, case, option):
    with pytest.raises(HarnessError, match="options harness does not implement|only a pickle") as e:
        load_sae(saelens_saved / case / "sae", REGS)
    assert option in str(e.value)


# --------------------------------------------------------------------------- training losses
# (case, learner, our config, SAELens training class, its config beyond d_in / d_sae, its coefficients, dead latents)
LOSS_CASES = [
    ("matryoshka_many_dead", "matryoshka_batchtopk", {"k": 6, "auxk_alpha": 0.5}, "MatryoshkaBatchTopKTrainingSAE",
     {"k": 6, "aux_loss_coefficient": 0.5}, {}, 20),
    ("matryoshka_few_dead", "matryoshka_batchtopk",  # 3 dead < k_aux = 8: the AuxK scale 3/8
     {"k": 6, "matryoshka_widths": [8, 24], "apply_b_dec_to_input": False}, "MatryoshkaBatchTopKTrainingSAE",
     {"k": 6, "apply_b_dec_to_input": False}, {}, 3),
    ("matryoshka_no_dead", "matryoshka_batchtopk", {"k": 3}, "MatryoshkaBatchTopKTrainingSAE", {"k": 3}, {}, 0),
    ("gated", "gated", {"l1_coefficient": 0.3, "l1_warmup_fraction": 0.0}, "GatedTrainingSAE",
     {"l1_coefficient": 0.3}, {"l1": 0.3}, 0),
]


@pytest.fixture(scope="module")
def training_losses(tmp_path_factory, x):
    """Each case's SAE with random weights (non-unit decoder rows) and dead latents; SAELens computes
    its training loss from the saved weights, batch and mask."""
    root = tmp_path_factory.mktemp("training_losses")
    ours = {}
    for case, name, config, saelens_class, saelens_config, coefficients, n_dead in LOSS_CASES:
        cls = REGS["dictionary_learner"].get(name)
        sae = cls.create(D_IN, cls.Config(d_sae=4 * D_IN, dead_tokens_threshold=100, **config), seed=3)
        gen = torch.Generator().manual_seed(len(case))
        with torch.no_grad():
            for pname, p in sae.named_parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if pname.startswith("W") else 0.1))
            dead = torch.zeros(sae.d_sae, dtype=torch.bool)
            dead[torch.randperm(sae.d_sae, generator=gen)[:n_dead]] = True
            sae.tokens_since_fired.copy_(dead.long() * 100)
        assert torch.equal(sae.dead_mask(), dead)
        folder = root / case
        folder.mkdir()
        weights = {k: v for k, v in sae.weights_to_save().items() if k not in ("threshold", "batchtopk_threshold")}
        save_file(weights, str(folder / "weights.safetensors"))
        save_file({"x": x, "dead": dead}, str(folder / "batch.safetensors"))
        widths = {"matryoshka_widths": list(sae.widths), "rescale_acts_by_decoder_norm": False} \
            if hasattr(sae, "widths") else {}
        spec = {"class": saelens_class, "config_class": saelens_class + "Config", "coefficients": coefficients,
                "config": {"d_in": D_IN, "d_sae": sae.d_sae, **widths, **saelens_config}}
        (folder / "train.json").write_text(json.dumps(spec))
        loss, logs = sae.train().loss(x, 0, 10**6)
        ours[case] = (sae, float(loss.detach()), {k: float(v) for k, v in logs.items()}, n_dead)
    _saelens("train_loss", root)
    return root, ours


def _same(a: float, b: float, what: str) -> None:
    assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5), f"{what}: SAELens {a}, harness {b}"


@pytest.mark.parametrize("case", [c[0] for c in LOSS_CASES])
def test_training_loss_equals_saelens(training_losses, case):
    root, ours = training_losses
    sae, loss, logs, n_dead = ours[case]
    theirs = {k: float(v) for k, v in load_file(str(root / case / "saelens_loss.safetensors")).items()}
    _same(theirs["loss"], loss, "total loss")
    _same(theirs["mse_loss"], logs["mse"], "MSE of the full dictionary")
    if sae.name == "matryoshka_batchtopk":
        inner = [k for k in theirs if k.startswith("inner_mse_loss_")]
        assert sorted(inner) == sorted(f"inner_mse_loss_{w}" for w in sae.widths[:-1])
        for w in sae.widths[:-1]:
            _same(theirs[f"inner_mse_loss_{w}"], logs[f"mse_prefix_{w}"], f"prefix {w}")
        _same(theirs["auxiliary_reconstruction_loss"], sae.config.auxk_alpha * logs.get("auxk", 0.0), "AuxK")
        assert ("auxk" in logs) == (n_dead > 0)
    else:
        _same(theirs["l1_loss"], sae.config.l1_coefficient * logs["l1"], "sparsity term")
        _same(theirs["auxiliary_reconstruction_loss"], logs["aux_recon"], "auxiliary reconstruction")
