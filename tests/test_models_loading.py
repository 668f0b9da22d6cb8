"""Model loading: local round-trip, pickle refusal, offline hub errors, device/dtype rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from _hf_configs import PYTHIA_SHAPE_DIR, build, tiny_tokenizer  # noqa: E402

from harness.models import LoadedModel, ModelLoadError, load_model, model_fingerprint, resolve_model  # noqa: E402
from harness.models.loading import resolve_device, resolve_dtype  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A random Llama-style model + word-level tokenizer saved as safetensors."""
    folder = tmp_path_factory.mktemp("llama")
    model = build("llama-small")
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder, model


def test_import_is_light():
    code = "import sys, harness.models as m; m.__all__; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_round_trip_local_folder(saved):
    folder, original = saved
    assert list(folder.glob("*.safetensors")) and not list(folder.glob("*.bin"))
    loaded = load_model(folder, device="cpu")
    assert isinstance(loaded, LoadedModel)
    assert (loaded.architecture, loaded.n_layers, loaded.d_model) == ("LlamaForCausalLM", 3, 128)
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.float32
    assert loaded.commit is None and loaded.revision is None and loaded.path == folder.resolve()
    assert not loaded.model.training
    ids = loaded.require_tokenizer()("the cat sat", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(ids).logits, original(ids).logits)
    # fingerprints: stable across loads, from files; tensor hash stable and weight-sensitive
    again = load_model(str(folder), device="auto", dtype="auto")
    assert model_fingerprint(loaded) == model_fingerprint(again) == resolve_model(folder).fingerprint
    assert len(model_fingerprint(loaded)) == 16
    by_weights = model_fingerprint(loaded, from_weights=True)
    assert by_weights == model_fingerprint(original) == model_fingerprint(again.model)
    with torch.no_grad():
        again.model.lm_head.weight[0, 0] += 1.0
    assert model_fingerprint(again.model) != by_weights
    assert model_fingerprint(build("llama-small", seed=1)) != by_weights


def test_bfloat16_and_no_tokenizer(tmp_path, saved):
    _, original = saved
    original.save_pretrained(tmp_path)  # weights only, no tokenizer files
    loaded = load_model(tmp_path, device="cpu", dtype="bf16")
    assert loaded.dtype == torch.bfloat16 and next(loaded.model.parameters()).dtype == torch.bfloat16
    assert loaded.tokenizer is None
    with pytest.raises(ModelLoadError, match="without a tokenizer"):
        loaded.require_tokenizer()


def test_pickle_only_folder_is_refused(tmp_path, saved):
    _, original = saved
    original.config.save_pretrained(tmp_path)
    torch.save(original.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as err:
        load_model(tmp_path, device="cpu")
    message = str(err.value)
    assert "pytorch_model.bin" in message and "pickle" in message.lower() and "safetensors" in message


def test_missing_folder_and_not_a_model(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path / "empty", device="cpu")
    with pytest.raises(ModelLoadError, match="revision"):
        resolve_model(PYTHIA_SHAPE_DIR if PYTHIA_SHAPE_DIR.is_dir() else tmp_path, revision="step1000")


def test_unknown_hub_name_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "harness-tests/no-such-model-3f9a"
    with pytest.raises(ModelLoadError) as err:
        load_model(name, device="cpu")
    message = str(err.value)
    assert name in message
    assert "not in the local Hugging Face cache" in message and "HF_HUB_OFFLINE" in message
    assert "local folder" in message and "HF_HOME" in message


def test_device_and_dtype_rules():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_dtype(torch.float32, cpu) == torch.float32
    with pytest.raises(ModelLoadError, match="float16.*cpu"):
        resolve_dtype("float16", cpu)
    with pytest.raises(ModelLoadError, match="Unknown dtype"):
        resolve_dtype("int8", cpu)
    with pytest.raises(ModelLoadError, match="Unknown device"):
        resolve_device("tpu")
    assert resolve_device("cpu") == cpu
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto") == cpu
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.skipif(not PYTHIA_SHAPE_DIR.is_dir(), reason="../shared/data/pythia-70m-shape is absent")
def test_pythia_shape_config_is_exact():
    from _hf_configs import PYTHIA_70M

    real = json.loads((PYTHIA_SHAPE_DIR / "config.json").read_text())
    assert {k: real[k] for k in PYTHIA_70M} == PYTHIA_70M


def test_hub_name_from_local_cache_offline(tmp_path, monkeypatch, saved):
    """A hub name found in the HF cache loads offline, with its commit and a commit-based fingerprint."""
    import shutil

    import huggingface_hub.constants

    folder, original = saved
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--harness-tests--tiny-llama"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_model("harness-tests/tiny-llama", device="cpu")
    assert loaded.commit == commit and loaded.name == "harness-tests/tiny-llama"
    assert model_fingerprint(loaded) == resolve_model("harness-tests/tiny-llama").fingerprint
    assert model_fingerprint(loaded) != resolve_model(folder).fingerprint  # named by commit, not by files
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        load_model("harness-tests/tiny-llama", revision="v2", device="cpu")
