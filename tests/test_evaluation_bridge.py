"""The lm-eval bridge: real lm-eval on a tiny local task and a tiny random GPTNeoX.

Self-contained (own word-level tokenizer, own task folder); only the Pythia-shape test
uses ../shared/data/pythia-70m-shape and skips without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import pytest

from harness.errors import HarnessError

torch = pytest.importorskip("torch")
pytest.importorskip("lm_eval")
pytest.importorskip("accelerate", reason="lm-eval's HFLM needs accelerate (lm-eval[hf])")

from harness.evaluation import (  # noqa: E402
    CacheKey,
    NamedIntervention,
    ResultCache,
    TaskResult,
    UnknownTaskError,
    evaluate_tasks,
    generate_exact_match,
    list_local_tasks,
    normalise_answer,
)

REPO = Path(__file__).resolve().parent.parent
PYTHIA_SHAPE = REPO.parent / "shared" / "data" / "pythia-70m-shape"

# Correct answers and distractors are disjoint word sets, so boosting one set's logits
# makes accuracy exactly 1 (or 0): an intervention with a known effect.
DOCS = [
    {"question": "the capital of france is", "choices": ["paris", "rome", "oslo"], "label": 0},
    {"question": "the capital of norway is", "choices": ["lima", "berlin", "madrid"], "label": 1},
    {"question": "the colour of grass is", "choices": ["blue", "red", "green"], "label": 2},
    {"question": "the colour of snow is", "choices": ["white", "black", "grey"], "label": 0},
    {"question": "the capital of japan is", "choices": ["cairo", "tokyo", "quito"], "label": 1},
]
CORRECT = sorted({d["choices"][d["label"]] for d in DOCS})
WRONG = sorted({c for d in DOCS for c in d["choices"]} - set(CORRECT))

TASK_YAML = """\
task: tiny_capitals
dataset_path: json
dataset_kwargs:
  data_files:
    test: data/test.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{label}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
  kind: knowledge
"""


def write_task(root: Path) -> Path:
    """A one-task lm-eval folder: YAML + JSONL, data path relative to the YAML."""
    folder = root / "tiny_capitals"
    (folder / "data").mkdir(parents=True)
    (folder / "tiny_capitals.yaml").write_text(TASK_YAML)
    (folder / "data" / "test.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return root


@pytest.fixture(scope="module")
def task_root(tmp_path_factory) -> Path:
    return write_task(tmp_path_factory.mktemp("tasks"))


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for d in DOCS for w in d["question"].split() + d["choices"]})
    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")


@pytest.fixture(scope="module")
def model(tokenizer):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=len(tokenizer.get_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=1,
    )
    return GPTNeoXForCausalLM(cfg).eval()


@contextlib.contextmanager
def count_forwards(model):
    calls = [0]
    handle = model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


def boost(model, tokenizer, words: list[str], amount: float = 100.0) -> NamedIntervention:
    """An intervention that adds ``amount`` to the logits of ``words`` (hook on the LM head)."""
    ids = tokenizer.convert_tokens_to_ids(words)

    @contextlib.contextmanager
    def hooked():
        def add(_module, _inputs, out):
            out = out.clone()
            out[..., ids] += amount
            return out

        handle = model.get_output_embeddings().register_forward_hook(add)
        try:
            yield
        finally:
            handle.remove()

    return NamedIntervention(f"boost:{','.join(words)}:{amount}", hooked)


def run(model, tokenizer, task_root, **kw):
    kw.setdefault("bootstrap_iters", 100)
    kw.setdefault("model_id", "tiny-neox-seed0")
    return evaluate_tasks(model, tokenizer, ["tiny_capitals"], include_paths=[task_root], **kw)


def test_scores_through_lm_eval_from_any_cwd(model, tokenizer, task_root, tmp_path, monkeypatch):
    import lm_eval

    monkeypatch.chdir(tmp_path)  # data_files are relative to the YAML, not to the cwd
    res = run(model, tokenizer, task_root)
    r = res["tiny_capitals"]
    assert 0.0 <= r.metrics["acc"] <= 1.0 and 0.0 <= r.metrics["acc_norm"] <= 1.0
    assert r.metrics["acc_stderr"] is not None and r.metrics["acc_norm_stderr"] is not None
    assert r.version == 2.0 and res.versions == {"tiny_capitals": 2.0}
    assert r.n_samples == len(DOCS) and r.num_fewshot == 0 and not r.cached
    assert len(r.config_hash) == 64 and res.lm_eval_version == lm_eval.__version__
    assert r.higher_is_better == {"acc": True, "acc_norm": True}
    assert model.training is False
    limited = run(model, tokenizer, task_root, limit=2)
    assert limited["tiny_capitals"].n_samples == 2 and limited["tiny_capitals"].n_samples_total == len(DOCS)


def test_cache_hit_does_not_call_the_model(model, tokenizer, task_root, tmp_path):
    with count_forwards(model) as calls:
        first = run(model, tokenizer, task_root, cache_dir=tmp_path)
    assert calls[0] > 0 and not first.all_cached
    with count_forwards(model) as calls:
        again = run(model, tokenizer, task_root, cache_dir=tmp_path)
    assert calls[0] == 0 and again.all_cached
    assert again["tiny_capitals"].metrics == first["tiny_capitals"].metrics
    assert again["tiny_capitals"].version == first["tiny_capitals"].version
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"  # no temp files left behind

    with count_forwards(model) as calls:  # another model id: a miss
        run(model, tokenizer, task_root, cache_dir=tmp_path, model_id="another-model")
    assert calls[0] > 0
    with count_forwards(model) as calls:  # another limit: a miss
        run(model, tokenizer, task_root, cache_dir=tmp_path, limit=3)
    assert calls[0] > 0
    assert len(list(tmp_path.iterdir())) == 3


def test_intervention_changes_score_and_misses_cache(model, tokenizer, task_root, tmp_path):
    base = run(model, tokenizer, task_root, cache_dir=tmp_path)
    with count_forwards(model) as calls:
        good = run(model, tokenizer, task_root, cache_dir=tmp_path, intervention=boost(model, tokenizer, CORRECT))
    assert calls[0] > 0 and good.intervention_id.startswith("boost:")
    with count_forwards(model) as calls:
        bad = run(model, tokenizer, task_root, cache_dir=tmp_path, intervention=boost(model, tokenizer, WRONG))
    assert calls[0] > 0
    assert good["tiny_capitals"].metrics["acc"] == 1.0
    assert bad["tiny_capitals"].metrics["acc"] == 0.0
    # the hooks are gone afterwards: the unedited model hits its own cache entry, same numbers
    again = run(model, tokenizer, task_root, cache_dir=tmp_path)
    assert again.all_cached and again["tiny_capitals"].metrics == base["tiny_capitals"].metrics
    assert len(model.get_output_embeddings()._forward_hooks) == 0


def test_intervention_without_id_is_refused(model, tokenizer, task_root):
    with pytest.raises(HarnessError, match="stable id"):
        run(model, tokenizer, task_root, intervention=contextlib.nullcontext)


def test_protocol_intervention_apply_is_used(model, tokenizer, task_root):
    from harness.protocols import Intervention

    class Boost(Intervention):
        id = "protocol-boost"

        def apply(self, m):
            return boost(m, tokenizer, CORRECT)()

    assert run(model, tokenizer, task_root, intervention=Boost())["tiny_capitals"].metrics["acc"] == 1.0


def test_unknown_task_is_a_clear_error(model, tokenizer, task_root):
    with pytest.raises(UnknownTaskError) as err:
        evaluate_tasks(model, tokenizer, ["tiny_capital"], include_paths=[task_root], include_defaults=False)
    msg = str(err.value)
    assert 'Did you mean "tiny_capitals"' in msg and "Local tasks under" in msg
    assert "tiny_capitals" in msg and "network" in msg


def test_model_fingerprint_is_the_default_model_id(model, tokenizer, task_root, tmp_path):
    from harness.evaluation import model_fingerprint

    res = evaluate_tasks(model, tokenizer, ["tiny_capitals"], include_paths=[task_root], limit=1, bootstrap_iters=0)
    assert res.model_id == model_fingerprint(model, tokenizer)
    assert res["tiny_capitals"].metrics["acc_stderr"] is None  # no stderr with bootstrap_iters=0


def test_cache_key_covers_every_field_and_survives_bad_files(tmp_path, caplog):
    base = dict(
        model_id="m", model_dtype="torch.float32", intervention_id=None, task="t", task_config_hash="h",
        task_version=1, limit=None, num_fewshot=0, bootstrap_iters=100, seed=0, lm_eval_version="0.4.13",
    )  # fmt: skip
    changed = {"model_id": "m2", "intervention_id": "i", "task": "t2", "task_config_hash": "h2",
               "task_version": 2, "limit": 5, "num_fewshot": 1, "seed": 1, "lm_eval_version": "0.4.14",
               "model_dtype": "torch.bfloat16", "bootstrap_iters": 0}  # fmt: skip
    digests = {CacheKey(**base).digest()} | {CacheKey(**{**base, k: v}).digest() for k, v in changed.items()}
    assert len(digests) == 1 + len(changed)

    cache, key = ResultCache(tmp_path), CacheKey(**base)
    res = {"t": TaskResult(task="t", metrics={"acc": 0.5}, n_samples=2, config_hash="h")}
    path = cache.put(key, res)
    assert cache.get(key) == res and cache.get(CacheKey(**{**base, "seed": 3})) is None
    path.write_text("{ truncated")
    with caplog.at_level(logging.WARNING, logger="harness.evaluation"):
        assert cache.get(key) is None
    assert "unreadable" in caplog.text


def test_list_local_tasks_reads_index_and_yaml_metadata(task_root, tmp_path):
    tasks = list_local_tasks([task_root])
    assert [t.name for t in tasks] == ["tiny_capitals"]
    assert tasks[0].kind == "knowledge" and tasks[0].chance is None and tasks[0].entry_kind == "task"
    root = write_task(tmp_path)
    (root / "harness_tasks.json").write_text(json.dumps({"tasks": [{"name": "tiny_capitals", "chance": 1 / 3}]}))
    (t,) = list_local_tasks([root])
    assert t.chance == pytest.approx(1 / 3) and t.kind == "knowledge"


ZOO_STYLE_YAML = """\
task: zoo_style
custom_dataset: !function utils.load_docs
test_split: test
output_type: multiple_choice
doc_to_text: "{{context}}"
doc_to_choice: "{{choices}}"
doc_to_target: gold
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  task_kind: knowledge
"""

ZOO_STYLE_UTILS = """\
import json
from pathlib import Path


def load_docs(**kwargs):
    import datasets

    here = Path(__file__).parent
    rows = [json.loads(line) for line in (here / "zoo_style.jsonl").read_text().splitlines() if line.strip()]
    return {"test": datasets.Dataset.from_list(rows)}
"""


def test_zoo_style_custom_dataset_task_and_data_change_misses_cache(model, tokenizer, tmp_path, monkeypatch):
    """The zoo's layout: JSONL read by a `custom_dataset` loader next to the YAML, index list."""
    folder = tmp_path / "tasks" / "zoo_style"
    folder.mkdir(parents=True)
    (folder / "zoo_style.yaml").write_text(ZOO_STYLE_YAML)
    (folder / "utils.py").write_text(ZOO_STYLE_UTILS)
    docs = [{"context": d["question"], "choices": [" " + c for c in d["choices"]], "gold": d["label"]} for d in DOCS]
    data = folder / "zoo_style.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    index = [{"name": "zoo_style", "kind": "knowledge", "chance": 1 / 3, "n": len(docs)}]
    (tmp_path / "tasks" / "harness_tasks.json").write_text(json.dumps(index))
    (t,) = list_local_tasks([tmp_path / "tasks"])
    assert (t.name, t.kind, t.chance) == ("zoo_style", "knowledge", pytest.approx(1 / 3))

    monkeypatch.chdir(tmp_path)
    kw = dict(include_paths=[tmp_path / "tasks"], model_id="m", cache_dir=tmp_path / "cache", bootstrap_iters=0)
    first = evaluate_tasks(model, tokenizer, ["zoo_style"], **kw)
    assert first["zoo_style"].n_samples == len(docs) and 0 <= first["zoo_style"].metrics["acc"] <= 1
    assert evaluate_tasks(model, tokenizer, ["zoo_style"], **kw).all_cached
    data.write_text("".join(json.dumps(d) + "\n" for d in docs[:3]))  # regenerated data: a miss
    with count_forwards(model) as calls:
        changed = evaluate_tasks(model, tokenizer, ["zoo_style"], **kw)
    assert calls[0] > 0 and changed["zoo_style"].n_samples == 3
    assert changed["zoo_style"].config_hash != first["zoo_style"].config_hash


def test_zoo_tasks_are_the_default_include_path():
    from harness.evaluation import ZOO_TASKS_DIR, default_include_paths

    if not ZOO_TASKS_DIR.is_dir():
        assert default_include_paths() == []
        pytest.skip("harness/zoo/tasks not generated yet")
    assert default_include_paths() == [ZOO_TASKS_DIR]
    assert list_local_tasks(), "harness/zoo/tasks exists but holds no lm-eval task"


def test_generate_exact_match(model, tokenizer):
    prompts = [d["question"] for d in DOCS]
    targets = [d["choices"][d["label"]] for d in DOCS]
    acc, items = generate_exact_match(model, tokenizer, prompts, targets, max_new_tokens=3, batch_size=2)
    acc1, items1 = generate_exact_match(model, tokenizer, prompts, targets, max_new_tokens=3, batch_size=5)
    assert 0.0 <= acc <= 1.0 and acc == acc1
    assert [i.prediction for i in items] == [i.prediction for i in items1]  # left padding is harmless
    # force the first target word: prefix match succeeds for that item only
    acc, items = generate_exact_match(
        model, tokenizer, prompts, targets, max_new_tokens=2, intervention=boost(model, tokenizer, ["paris"])
    )
    assert [i.correct for i in items] == [True, False, False, False, False] and acc == pytest.approx(0.2)
    assert items[0].prediction == "paris paris"
    acc, _ = generate_exact_match(
        model, tokenizer, prompts[:1], targets[:1], max_new_tokens=2, match="exact",
        intervention=boost(model, tokenizer, ["paris"]),
    )  # fmt: skip
    assert acc == 0.0  # "paris paris" is not exactly "paris"


def test_normalise_answer():
    assert normalise_answer("  Paris.\n") == "paris"
    assert normalise_answer("-12!") == "- 12"
    assert normalise_answer('"New   York"') == "new york"
    assert normalise_answer("...") == ""


@pytest.mark.skipif(not (PYTHIA_SHAPE / "config.json").is_file(), reason="pythia-70m-shape folder absent")
def test_random_pythia_70m_shape_from_disk(task_root, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    cfg = AutoConfig.from_pretrained(PYTHIA_SHAPE)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    tok = AutoTokenizer.from_pretrained(PYTHIA_SHAPE)
    assert sum(p.numel() for p in model.parameters()) > 70_000_000
    res = evaluate_tasks(
        model, tok, ["tiny_capitals"], include_paths=[task_root], limit=3, bootstrap_iters=0,
        model_id="random-pythia-70m-shape", batch_size=4,
    )  # fmt: skip
    r = res["tiny_capitals"]
    assert 0.0 <= r.metrics["acc"] <= 1.0 and r.n_samples == 3 and r.version == 2.0


HUB_TASK_YAML = TASK_YAML.replace("task: tiny_capitals", "task: tiny_hub_capitals").replace(
    "dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: data/test.jsonl\n",
    "dataset_path: harness-tests-nonexistent-org/no-such-dataset\n",
)


@pytest.fixture
def offline(monkeypatch):
    """Offline mode as `harness run` sets it for a local model (the libraries also read it at import)."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.delenv("HARNESS_ALLOW_NETWORK", raising=False)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_hub_dataset_offline_names_both_ways_to_allow_network(model, tokenizer, tmp_path, offline):
    from harness.evaluation import TaskLoadError

    folder = tmp_path / "tiny_hub_capitals"
    folder.mkdir()
    (folder / "tiny_hub_capitals.yaml").write_text(HUB_TASK_YAML)
    with pytest.raises(TaskLoadError) as err:
        evaluate_tasks(model, tokenizer, ["tiny_hub_capitals"], include_paths=[tmp_path], include_defaults=False,
                       model_id="m", bootstrap_iters=0)
    msg = str(err.value)
    assert 'could not load task "tiny_hub_capitals"' in msg
    assert "HARNESS_ALLOW_NETWORK=1" in msg and "harness run --allow-network" in msg
    assert "HF_DATASETS_OFFLINE=1" in msg and "HF_HUB_OFFLINE=1" in msg


def test_local_data_error_offline_does_not_blame_the_network(model, tokenizer, tmp_path, offline):
    from harness.evaluation import TaskLoadError

    folder = write_task(tmp_path) / "tiny_capitals"
    (folder / "data" / "test.jsonl").unlink()  # a local task whose data file is missing
    with pytest.raises(TaskLoadError) as err:
        evaluate_tasks(model, tokenizer, ["tiny_capitals"], include_paths=[tmp_path], include_defaults=False,
                       model_id="m", bootstrap_iters=0)
    msg = str(err.value)
    assert "It is a local task: check its YAML and data files." in msg and "--allow-network" not in msg


def test_network_hint_is_empty_when_online(monkeypatch):
    from harness.network import network_hint

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    assert network_hint() == ""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "true")
    assert "HF_DATASETS_OFFLINE=1" in network_hint() and "HF_HUB_OFFLINE" not in network_hint()
