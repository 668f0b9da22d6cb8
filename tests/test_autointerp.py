"""sae_autointerp: SAEBench's detection score, the baseline judge and the OpenAI-compatible endpoint judge."""

from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from harness.metric_inputs import SAEInputs
from harness_plugins.autointerp import AutoInterp
from harness_plugins.autointerp.detection import detection_scores, run_detection
from harness_plugins.autointerp.examples import top_centres
from harness_plugins.autointerp.judges import BaselineJudge, parse_predictions


def test_detection_scores_by_hand():
    # 2 active windows (one found), 4 inactive (one false alarm): accuracy 4/6, balanced (1/2 + 3/4) / 2
    acc, bal = detection_scores([True, False, True, False, False, False], [True, True, False, False, False, False])
    assert acc == pytest.approx(4 / 6) and bal == pytest.approx(0.625)
    assert detection_scores([False, False], [False, False]) == (1.0, 1.0)  # one class only: its rate


def test_parse_predictions():
    assert parse_predictions("2, 5 and 7.", 8) == [i in (2, 5, 7) for i in range(1, 9)]
    assert parse_predictions("None", 3) == [False] * 3
    assert parse_predictions("the second one", 3) is None
    assert parse_predictions("4", 3) is None  # out of range


def test_top_windows_do_not_overlap():
    acts = torch.zeros(1, 40)
    acts[0, 10], acts[0, 12], acts[0, 30] = 3.0, 2.0, 1.0
    assert top_centres(acts, 3, buffer=4).tolist() == [[0, 10], [0, 30]]  # 12 overlaps 10's window; zeros never


def _constructed(seed: int = 0, n_random: int = 150):
    """Tokens [64, 128] over a 200-token vocabulary; latent 0 fires exactly on token 7 (varying strength),
    latents 1.. fire at random positions (3% of tokens), independent of the tokens."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 200, (64, 128), generator=g)
    lat = torch.zeros(64, 128, 1 + n_random)
    lat[..., 0] = (tokens == 7).float() * (1 + torch.rand(64, 128, generator=g))
    lat[..., 1:] = (torch.rand(64, 128, n_random, generator=g) < 0.03).float() * torch.rand(64, 128, n_random, generator=g)
    return tokens, lat


def test_baseline_judge_one_token_latent_scores_one_random_latents_chance():
    tokens, lat = _constructed()
    cfg = AutoInterp.Config(n_latents=lat.shape[-1])  # every latent
    result = run_detection(tokens, lat, BaselineJudge(3, str), cfg, seed=0)
    by_latent = {s.latent: s for s in result.scores}
    assert by_latent[0].explanation == "'7'"
    assert by_latent[0].balanced_accuracy == 1.0 and by_latent[0].accuracy == 1.0
    random = [s.balanced_accuracy for s in result.scores if s.latent != 0]
    assert len(random) >= 140
    assert sum(random) / len(random) == pytest.approx(0.5, abs=0.05)


# --------------------------------------------------------------------------- through the metric, on a zoo model
class TokenDetector(torch.nn.Module):
    """A one-latent 'SAE' at blocks.0.hook_resid_pre (the token embeddings): fires where the input is the
    embedding of ``token`` (cosine above 0.999), with strength varying by nothing but that."""

    def __init__(self, embedding: torch.Tensor, token: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(embedding[token] / embedding[token].norm(), requires_grad=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        cos = (x @ self.w) / x.norm(dim=-1).clamp_min(1e-9)
        return torch.relu(cos - 0.999).unsqueeze(-1) * 1000

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f / 1000 * self.w


@pytest.fixture(scope="module")
def zoo_inputs():
    from harness.models import iter_token_batches, load_model
    from harness.zoo import World
    from harness.zoo.info import zoo_model_path

    loaded = load_model(str(zoo_model_path("zoo-32")))
    tok = loaded.tokenizer
    texts = (d.text for d in World(seed=0).documents(start=200_000))
    batches = []
    for b in iter_token_batches(texts, tokenizer=tok, batch_size=16, context_length=128):
        batches.append(b)
        if len(batches) == 4:
            break
    token = tok(" is", add_special_tokens=False)["input_ids"][0]
    sae = TokenDetector(loaded.model.get_input_embeddings().weight.detach(), token)
    return SAEInputs(sae=sae, activations=torch.zeros(1, 1), model=loaded, hook_point="blocks.0.hook_resid_pre",
                     token_batches=tuple(batches), seed=0), token


def test_metric_on_a_token_detector_latent(zoo_inputs):
    inputs, _ = zoo_inputs
    values = {v.key: v for v in AutoInterp().compute(inputs)}
    assert values["autointerp_bal_acc"].value == 1.0 and values["autointerp_bal_acc"].chance == 0.5
    assert values["autointerp_acc"].value == 1.0 and values["autointerp_acc"].n == 1


# --------------------------------------------------------------------------- the endpoint judge, local server
class _Endpoint(BaseHTTPRequestHandler):
    """/v1/chat/completions in the OpenAI schema. Explains every latent as the token ' is'; predicts the
    excerpts that contain ' is '-like text (the word 'is'), which is what the token detector fires on."""

    requests: list[dict] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        user = body["messages"][-1]["content"]
        if "Explanation:" not in user:
            reply = "This latent activates on the word is."
        else:
            lines = [ln for ln in user.split("Excerpts:", 1)[1].splitlines() if re.match(r"^\d+\. ", ln)]
            hits = [ln.split(".", 1)[0] for ln in lines if re.search(r"(^|\W)is(\W|$)", ln.split(". ", 1)[1])]
            reply = ", ".join(hits) or "None"
        out = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
               "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def endpoint():
    _Endpoint.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_judge_against_a_local_server(zoo_inputs, endpoint, monkeypatch):
    pytest.importorskip("openai", reason="the openai client is in the autointerp and test extras")
    inputs, _ = zoo_inputs
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")
    metric = AutoInterp({"judge": "openai", "openai": {"base_url": endpoint, "model": "judge-1",
                                                       "api_key_env": "TEST_JUDGE_KEY"}})
    values = {v.key: v for v in metric.compute(inputs)}
    assert values["autointerp_bal_acc"].value == 1.0
    reqs = _Endpoint.requests
    assert len(reqs) == 2 and {r["path"] for r in reqs} == {"/v1/chat/completions"}
    assert all(r["auth"] == "Bearer sk-test" and r["body"]["model"] == "judge-1" for r in reqs)
    assert "<<" in reqs[0]["body"]["messages"][1]["content"]  # active tokens marked for the explanation
    assert "<<" not in reqs[1]["body"]["messages"][1]["content"]  # but not when predicting
    assert "this latent activates on the word is" in reqs[1]["body"]["messages"][1]["content"]


def test_openai_judge_errors(zoo_inputs, endpoint, monkeypatch):
    pytest.importorskip("openai", reason="the openai client is in the autointerp and test extras")
    inputs, _ = zoo_inputs
    monkeypatch.delenv("TEST_JUDGE_KEY", raising=False)
    with pytest.raises(ValueError, match="TEST_JUDGE_KEY is not set"):
        AutoInterp({"judge": "openai", "openai": {"base_url": endpoint, "api_key_env": "TEST_JUDGE_KEY"}}).compute(inputs)
    monkeypatch.setitem(sys.modules, "openai", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install openai"):
        AutoInterp({"judge": "openai", "openai": {"base_url": endpoint, "api_key_env": None}}).compute(inputs)


def test_a_spec_chooses_the_openai_judge_of_the_sae_suite(endpoint, monkeypatch, tmp_path):
    """suites[].config.metrics.config.sae_autointerp picks the judge; the record shows it, never the API key."""
    pytest.importorskip("openai", reason="the openai client is in the autointerp and test extras")
    from harness.config import RunSpec
    from harness.runner import execute, plan
    from harness.store import Store
    from harness.testing import registries_with

    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-do-not-record")
    judge = {"judge": "openai", "n_latents": 2, "min_firings": 2,
             "openai": {"base_url": endpoint, "model": "judge-1", "api_key_env": "TEST_JUDGE_KEY"}}
    cfg = {"hook_point": "blocks.0.hook_resid_post", "train_tokens": 2048, "epochs": 1, "batch_size": 256,
           "eval_tokens": 512, "sweep_values": [], "probing": False, "absorption": False, "scr_tpp": False,
           "tsne": False, "bootstrap": 0, "capability_tasks": [],
           "metrics": {"include": ["sae_autointerp"], "config": {"sae_autointerp": judge}}}
    spec = RunSpec(suites=[{"name": "sae", "config": cfg}], methods=[{"name": "topk", "config": {"k": 8}}],
                   models=["zoo:zoo-32"], seeds=[0], output_dir=tmp_path)
    regs = registries_with(builtins=True)
    cells = plan(spec, regs)
    store = Store(tmp_path)
    assert execute(cells, store, regs, device="cpu", progress=False).done == 1
    rec = store.get("sae", cells[0].key)
    assert rec.status == "ok", rec.error
    shown = rec.cell.suite_config["metrics"]["config"]["sae_autointerp"]
    assert shown["judge"] == "openai" and shown["openai"]["base_url"] == endpoint
    assert shown["openai"]["model"] == "judge-1" and shown["openai"]["api_key_env"] == "TEST_JUDGE_KEY"
    reqs = _Endpoint.requests
    assert reqs and all(r["auth"] == "Bearer sk-do-not-record" and r["body"]["model"] == "judge-1" for r in reqs)
    assert {"sae_autointerp[autointerp_bal_acc]", "sae_autointerp[autointerp_acc]"} <= {m.column for m in rec.output.metrics}
    record_files = list((tmp_path / "records").rglob("*.json"))
    assert record_files and not any("sk-do-not-record" in f.read_text() for f in record_files)


def test_config_errors_name_the_field():
    with pytest.raises(Exception, match="hf_chat.model"):
        AutoInterp({"judge": "hf_chat"})
    with pytest.raises(Exception, match="judge"):
        AutoInterp({"judge": "gpt"})


# --------------------------------------------------------------------------- the local chat-model judge
def test_hf_chat_judge_runs_a_local_model_through_a_chat_template():
    from harness.zoo.info import zoo_model_path
    from harness_plugins.autointerp import HFChatSettings
    from harness_plugins.autointerp.judges import HFChatJudge, scoring_messages
    from harness_plugins.autointerp.examples import Window

    folder = str(zoo_model_path("zoo-32"))  # a base model: its tokenizer has no chat template
    with pytest.raises(ValueError, match="hf_chat.chat_template"):
        HFChatJudge(HFChatSettings(model=folder), str, 8, 8)
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    judge = HFChatJudge(HFChatSettings(model=folder, chat_template=template), str, 8, 8)
    windows = [Window((1, 2), (0.0, 1.0), (False, True))]
    reply = judge.complete(scoring_messages("the token 2", windows, str), 8)
    assert isinstance(reply, str)
    assert judge.predict("the token 2", windows) in (None, [True], [False])  # greedy, parsed or dropped
