"""SAELens-format folders load; `harness train-sae` trains and saves an SAE from a model layer."""

import json

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import save_file  # noqa: E402

from harness.errors import HarnessError  # noqa: E402
from harness.sae import load_sae  # noqa: E402
from harness.sae.cli import parse_sets  # noqa: E402
from harness.testing import registries_with  # noqa: E402

REGS = registries_with(builtins=True)
D, M = 8, 32


def saelens_folder(path, architecture, extra_cfg=None, extra_weights=None, apply_b_dec=True):
    """A folder as SAELens (v6) writes it: cfg.json + sae_weights.safetensors, no harness block."""
    g = torch.Generator().manual_seed(0)
    weights = {"W_enc": torch.randn(D, M, generator=g), "b_enc": torch.randn(M, generator=g) * 0.1,
               "W_dec": torch.randn(M, D, generator=g), "b_dec": torch.randn(D, generator=g)}
    weights |= extra_weights or {}
    cfg = {"architecture": architecture, "d_in": D, "d_sae": M, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": apply_b_dec, "normalize_activations": "none", "reshape_activations": "none",
           "metadata": {"model_name": "pythia-70m-deduped", "hook_name": "blocks.3.hook_resid_post",
                        "context_size": 128, "prepend_bos": True, "sae_lens_version": "6.5.1"}}
    cfg |= extra_cfg or {}
    path.mkdir(parents=True, exist_ok=True)
    (path / "cfg.json").write_text(json.dumps(cfg))
    save_file(weights, str(path / "sae_weights.safetensors"))
    return weights


def test_saelens_standard_loads_as_relu_l1(tmp_path):
    w = saelens_folder(tmp_path, "standard")
    sae = load_sae(tmp_path, REGS)
    assert sae.name == "relu_l1" and sae.d_sae == M and sae.metadata["hook_name"] == "blocks.3.hook_resid_post"
    x = torch.randn(5, D)
    f = torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])  # SAELens StandardSAE.encode
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), f)
        torch.testing.assert_close(sae(x), f @ w["W_dec"] + w["b_dec"])


def test_saelens_topk_loads(tmp_path):
    w = saelens_folder(tmp_path, "topk", {"k": 3})
    sae = load_sae(tmp_path, REGS)
    assert sae.name == "topk" and sae.config.k == 3
    x = torch.randn(5, D)
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    v, i = pre.topk(3, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, i, torch.relu(v))  # SAELens TopK: ReLU after top-k
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), f)
        torch.testing.assert_close(sae(x), f @ w["W_dec"] + w["b_dec"])


def test_saelens_legacy_topk_cfg_loads(tmp_path):
    saelens_folder(tmp_path, "topk")
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    del cfg["architecture"]
    cfg |= {"activation_fn_str": "topk", "activation_fn_kwargs": {"k": 4}, "hook_name": "blocks.0.hook_resid_pre"}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sae = load_sae(tmp_path, REGS)
    assert sae.name == "topk" and sae.config.k == 4


def test_saelens_jumprelu_loads(tmp_path):
    thr = torch.rand(M, generator=torch.Generator().manual_seed(1)) * 0.5
    w = saelens_folder(tmp_path, "jumprelu", extra_weights={"threshold": thr}, apply_b_dec=False)
    sae = load_sae(tmp_path, REGS)
    assert sae.name == "jumprelu"
    x = torch.randn(5, D)
    pre = x @ w["W_enc"] + w["b_enc"]
    f = pre * (pre > thr)
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), f)


def test_unknown_architecture_is_a_clear_error(tmp_path):
    saelens_folder(tmp_path, "gated")
    with pytest.raises(HarnessError, match="gated"):
        load_sae(tmp_path, REGS)
    with pytest.raises(HarnessError, match="cfg.json"):
        load_sae(tmp_path / "nothing", REGS)


def test_our_cfg_has_saelens_fields(tmp_path):
    sae = REGS["dictionary_learner"].get("topk").create(D, {"d_sae": M, "k": 3}, seed=0)
    sae.save(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    for key in ("architecture", "d_in", "d_sae", "dtype", "apply_b_dec_to_input", "hook_name", "metadata", "k"):
        assert key in cfg
    assert cfg["architecture"] == "topk" and cfg["harness"]["learner"] == "topk"


def test_parse_sets():
    assert parse_sets(["k=32", "sample=true", "lr=1e-3", "kernel=dense"]) == {
        "k": 32, "sample": True, "lr": 1e-3, "kernel": "dense"}
    with pytest.raises(HarnessError):
        parse_sets(["k"])


def test_cli_train_sae_on_a_model_layer(tmp_path):
    from _hf_configs import build, tiny_tokenizer

    from harness.cli import main

    model_dir = tmp_path / "model"
    build("pythia-70m", shrink=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
          vocab_size=64).save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    words = "the a cat dog sat ran on under mat rug big small red blue and then".split()
    g = torch.Generator().manual_seed(0)
    lines = [" ".join(words[i] for i in torch.randint(0, len(words), (40,), generator=g).tolist()) for _ in range(60)]
    (tmp_path / "text.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "sae"
    rc = main(["train-sae", str(model_dir), "--hook", "blocks.1.hook_resid_post", "--learner", "topk",
               "--set", "k=4", "--set", "expansion_factor=2", "--tokens", "1024", "--batch-size", "128",
               "--context-length", "32", "--text-file", str(tmp_path / "text.txt"), "--output-dir", str(out),
               "--device", "cpu", "--no-progress"])
    assert rc == 0
    sae = load_sae(out, REGS)
    assert (sae.d_in, sae.d_sae, sae.config.k) == (32, 64, 4)
    assert sae.metadata["hook_name"] == "blocks.1.hook_resid_post" and sae.metadata["hook_layer"] == 1
    log = json.loads((out / "train_log.json").read_text())
    assert log["steps"] == 8 and log["records"]
    assert main(["train-sae", str(model_dir), "--hook", "blocks.1.hook_resid_post", "--set", "kk=1",
                 "--output-dir", str(out)]) == 2  # a clear config error, not a traceback
