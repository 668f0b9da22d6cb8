"""Reliability: crashes, faulty plugins, bad files, no network, determinism (docs/reliability.md)."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import toy_plugins
from conftest import REPO

from harness.config import RunSpec
from harness.leaderboard import build_leaderboards
from harness.runner import execute, plan
from harness.store import Store
from harness.testing import registries_with

TOY = str(Path(__file__).parent / "toy")


def _toy_env():
    return dict(os.environ, HARNESS_LOAD_PLUGINS="executors")  # toy plugins and the built-in executors


# --------------------------------------------------------------------------- fault isolation
@pytest.mark.parametrize("fault,reason", [("nan", "finite"), ("inf", "finite"), ("type", "expected SuiteOutput"),
                                          ("raise", "boom")])
def test_faulty_plugin_fails_only_its_cell(tmp_path, fault, reason):
    regs = registries_with(("toy", toy_plugins))
    cfg = {"fail_label": "toy_eraser"} if fault == "raise" else {"bad_output_label": "toy_eraser", "bad_output": fault}
    spec = RunSpec(suites=[{"name": "toy_suite", "config": cfg}], output_dir=tmp_path / "o", device="cpu",
                   seeds=[0, 1])
    store = Store(spec.output_dir)
    summary = execute(plan(spec, regs), store, regs, device="cpu", progress=False)
    assert (summary.done, summary.failed) == (2, 2)
    failed = [r for r in store.records() if r.status == "failed"]
    assert len(failed) == 2 and all(reason in (r.error["message"] + r.error["type"]) for r in failed)
    board = build_leaderboards(store, tmp_path / "lb", regs)["toy_suite"]
    row = next(r for r in board.rows if r.label == "toy_eraser")
    assert row.status == "failed" and row.values == {} and row.rank is None  # marked, not zero-filled
    assert "FAILED" in (tmp_path / "lb" / "toy_suite.md").read_text()


def test_diverging_training_stops_with_a_clear_error():
    torch = pytest.importorskip("torch")
    from harness.sae.trainer import TrainingDiverged, train_sae

    x = torch.randn(512, 8)
    x[100:] = float("nan")
    with pytest.raises(TrainingDiverged, match="diverged: the loss is nan"):
        train_sae("topk", {"k": 2, "d_sae": 16}, x, steps=20, batch_size=64, log_every=5, progress=False)


# --------------------------------------------------------------------------- crash safety
def _board_values(lb: Path) -> dict:
    doc = json.loads((lb / "toy_suite.json").read_text())
    return {(r["label"], r["model"]): (r["rank"], r["seeds"], r["values"]) for r in doc["rows"]}


def test_kill_9_at_many_points_loses_nothing_and_resumes(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("suites:\n  - name: toy_suite\n    config: {sleep_s: 0.3}\nseeds: [0, 1, 2, 3, 4]\n")
    args = [sys.executable, "-m", "harness.cli", "--plugins-dir", TOY, "run", "--spec", str(spec), "--no-progress"]
    ref = subprocess.run([*args, "--output-dir", str(tmp_path / "ref"), "--leaderboard-dir", str(tmp_path / "ref_lb")],
                         env=_toy_env(), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    store = Store(tmp_path / "run")
    rng = random.Random(0)
    kills = 0
    for target in (1, 3, 5, 7, 9):  # kill once the store holds this many records, plus a random delay
        proc = subprocess.Popen([*args, "--output-dir", str(store.root), "--leaderboard-dir", str(tmp_path / "lb")],
                                env=_toy_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if len(list(store.root.glob("records/*/*.json"))) >= target:
                time.sleep(rng.uniform(0, 0.3))
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        # after every kill the store holds only complete, valid records
        files = list(store.root.glob("records/*/*.json"))
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            recs = list(store.records())
        assert len(recs) == len(files) and all(r.status == "ok" for r in recs)
    assert kills >= 3
    done_before = len(list(store.records()))
    final = subprocess.run([*args, "--output-dir", str(store.root), "--leaderboard-dir", str(tmp_path / "lb")],
                           env=_toy_env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert f"{done_before} already recorded" in final.stderr and f"{10 - done_before} to compute" in final.stderr
    assert len(list(store.records())) == 10
    assert _board_values(tmp_path / "lb") == _board_values(tmp_path / "ref_lb")


# --------------------------------------------------------------------------- determinism
def test_same_spec_same_records_different_seeds_different_cells(tmp_path):
    regs = registries_with(("toy", toy_plugins))
    outs = []
    for run in ("a", "b"):
        spec = RunSpec(output_dir=tmp_path / run, device="cpu", seeds=[0, 1])
        cells = plan(spec, regs)
        execute(cells, Store(spec.output_dir), regs, device="cpu", progress=False)
        outs.append({r.key: (r.cell, r.output) for r in Store(spec.output_dir).records()})
    assert outs[0] == outs[1] and len(outs[0]) == 4  # two rows x two seeds: four distinct cells


def test_lm_eval_cell_is_bit_identical_across_runs(tmp_path):
    from harness.zoo import list_zoo_models

    if not list_zoo_models():
        pytest.skip("no zoo checkpoints")
    regs = registries_with(builtins=True)
    outs = []
    for run in ("a", "b"):
        spec = RunSpec(suites=[{"name": "lm_eval", "config": {"limit": 10, "tasks": ["zoo_arithmetic"]}}],
                       models=[f"zoo:{list_zoo_models()[0]}"], output_dir=tmp_path / run, device="cpu")
        execute(plan(spec, regs), Store(spec.output_dir), regs, device="cpu", progress=False)
        (rec,) = Store(spec.output_dir).records()
        outs.append(rec.output.model_dump_json())
    assert outs[0] == outs[1]


# --------------------------------------------------------------------------- no network unless asked
SITECUSTOMIZE = '''
import os, socket
_connect = socket.socket.connect
def _guard(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        with open(os.environ["HARNESS_TEST_NET_LOG"], "a") as fh:
            fh.write(repr(address) + "\\n")
        raise OSError("network blocked by the test")
    return _connect(self, address)
socket.socket.connect = _guard
socket.socket.connect_ex = lambda self, address: _guard(self, address) or 0
'''


def test_default_style_run_makes_no_network_connection(tmp_path):
    from harness.zoo import list_zoo_models

    if not list_zoo_models():
        pytest.skip("no zoo checkpoints")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "net.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(PYTHONPATH=str(tmp_path / "site"), HARNESS_TEST_NET_LOG=str(log))
    spec = tmp_path / "spec.yaml"
    spec.write_text("suites:\n  - name: lm_eval\n    config: {limit: 8, tasks: [zoo_facts_frequent]}\n"
                    f"models: ['zoo:{list_zoo_models()[0]}']\n")
    r = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--spec", str(spec), "--no-progress",
                        "--output-dir", str(tmp_path / "o"), "--leaderboard-dir", str(tmp_path / "lb")],
                       env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not log.exists(), f"network connections attempted: {log.read_text()}"


# --------------------------------------------------------------------------- bad files
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("m") / "good"
    cfg = GPTNeoXConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        vocab_size=100)
    GPTNeoXForCausalLM(cfg).save_pretrained(folder)
    shutil.copy(REPO / "harness" / "zoo" / "checkpoints" / "zoo-32" / "main" / "tokenizer.json", folder)
    return folder


def _truncate(d):
    p = d / "model.safetensors"
    p.write_bytes(p.read_bytes()[:-100])


def _drop_key(d):
    from safetensors.torch import load_file, save_file

    t = load_file(d / "model.safetensors")
    del t[next(k for k in t if "layers.1.mlp" in k)]
    save_file(t, d / "model.safetensors", metadata={"format": "pt"})


def _wrong_shape(d):
    c = json.loads((d / "config.json").read_text())
    c["intermediate_size"] = 96
    (d / "config.json").write_text(json.dumps(c))


def _bad_tokenizer(d):
    (d / "tokenizer.json").write_text("{not json")


def _pickle_only(d):
    import torch

    torch.save({}, d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()


@pytest.mark.parametrize("damage,needle", [
    (_truncate, "model.safetensors is corrupt or truncated"),
    (_drop_key, "model.safetensors lacks weights the model needs"),
    (_wrong_shape, "config.json"),
    (_bad_tokenizer, "tokenizer"),
    (_pickle_only, "pytorch_model.bin"),
])
def test_damaged_model_folder_is_named(saved_model, tmp_path, damage, needle):
    from harness.models import ModelLoadError, load_model

    d = tmp_path / "m"
    shutil.copytree(saved_model, d)
    damage(d)
    with pytest.raises(ModelLoadError) as e:
        load_model(d)
    assert needle in str(e.value) and str(d) in str(e.value)


@pytest.mark.parametrize("damage,needle", [("drop", "lacks ['b_enc']"), ("truncate", "corrupt or truncated"),
                                           ("pickle", "pickle-based weights")])
def test_damaged_sae_folder_is_named(tmp_path, damage, needle):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    from harness.sae import load_sae
    from harness.sae.base import SAELoadError
    from harness_plugins.topk import TopK

    d = tmp_path / "sae"
    TopK.create(8, {"k": 2, "d_sae": 16}, seed=0).save(d)
    w = d / "sae_weights.safetensors"
    if damage == "drop":
        t = load_file(w)
        del t["b_enc"]
        save_file(t, w)
    elif damage == "truncate":
        w.write_bytes(w.read_bytes()[:50])
    else:
        w.unlink()
        torch.save({}, d / "sae_weights.pt")
    with pytest.raises(SAELoadError) as e:
        load_sae(d, registries_with(builtins=True))
    assert needle in str(e.value) and str(d) in str(e.value)


def test_malformed_task_file_is_named(tmp_path):
    from harness.evaluation.tasks import unknown_task_error

    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "broken.yaml").write_text("task: broken\ndataset_path: json\n  oops: [\n")
    (tmp_path / "t" / "list.yaml").write_text("- a\n- b\n")
    msg = str(unknown_task_error("broken", [], [tmp_path], defaults=False))
    assert "broken.yaml" in msg and "list.yaml: not a mapping" in msg
