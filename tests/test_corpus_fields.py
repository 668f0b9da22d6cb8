"""The corpus fields of the scaling (held-out loss) and superposition (layer-wise profile) suites:
a local jsonl corpus on a random-initialised Pythia-70M-shaped model at tiny budgets (skipped
without ../shared/data/pythia-70m-shape), and the world default reading the texts it always read."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from _hf_configs import PYTHIA_SHAPE_DIR

from harness.datasets import DatasetRef, open_role
from harness.errors import HarnessError
from harness.metric_inputs import ModelInputs
from harness.testing import registries_with
from harness.zoo import list_zoo_models

needs_shape = pytest.mark.skipif(not (PYTHIA_SHAPE_DIR / "config.json").is_file(),
                                 reason="../shared/data/pythia-70m-shape is absent")
WORDS = "the a river city garden market teacher doctor writes builds near under quickly slowly green blue".split()


@pytest.fixture(scope="module")
def regs():
    return registries_with(builtins=True)


@pytest.fixture(scope="module")
def pythia():
    """A random Pythia-70M-shaped model (seed 0) with Pythia's real tokenizer, as a harness LoadedModel."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from harness.models import LoadedModel

    config = AutoConfig.from_pretrained(PYTHIA_SHAPE_DIR)
    torch.manual_seed(0)
    net = AutoModelForCausalLM.from_config(config).eval()
    tok = AutoTokenizer.from_pretrained(PYTHIA_SHAPE_DIR)
    return LoadedModel(model=net, tokenizer=tok, name="random-pythia-70m-shape", revision=None, path=None,
                       commit=None, device=torch.device("cpu"), dtype=torch.float32,
                       architecture="GPTNeoXForCausalLM", n_layers=config.num_hidden_layers,
                       d_model=config.hidden_size)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) + "." for _ in range(40)]
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return path


def _local(path) -> dict:
    return {"dataset": "local", "config": {"path": str(path)}}


# --------------------------------------------------------------------------- scaling: held-out loss
@needs_shape
def test_scaling_heldout_loss_on_a_local_corpus(pythia, corpus_file, regs):
    from harness.zoo.evaluate import text_loss

    metric = regs.metrics.get("scaling_heldout_loss")({"n_docs": 6, "corpus": _local(corpus_file)})
    corpus = open_role(metric.corpus_ref(), "corpus", regs)
    value = metric.score(ModelInputs(model=pythia, seed=0, device="cpu"), corpus)
    assert value.n == 6
    assert abs(value.value - math.log(50304)) < 1.5  # a random model is near the uniform loss over its vocabulary
    texts = [json.loads(line)["text"] for line in corpus_file.read_text().splitlines()[:6]]  # the first 6 documents
    tok = pythia.require_tokenizer()
    one_row = text_loss(pythia.model, tok, texts, max_logits_elements=1)  # one document per forward pass
    assert one_row[0] == pytest.approx(value.value, rel=1e-5)
    assert one_row[1] == sum(len(tok(t, add_special_tokens=False).input_ids) for t in texts)  # EOS + doc: all predicted


@pytest.mark.skipif(not list_zoo_models(), reason="no zoo checkpoints")
def test_scaling_suite_plans_and_keys_a_local_corpus(corpus_file, regs):
    from harness.config import RunSpec
    from harness.runner import plan

    spec = RunSpec(suites=[{"name": "scaling", "config": {"corpus": _local(corpus_file), "swap_pairs": {}}}],
                   models=["zoo:zoo-32"])
    (cell,) = plan(spec, regs)
    assert cell.cell.datasets["suite.corpus"]["dataset"] == "local" and "path_sha256" in cell.cell.datasets["suite.corpus"]
    (default,) = plan(RunSpec(suites=[{"name": "scaling", "config": {"swap_pairs": {}}}], models=["zoo:zoo-32"]), regs)
    assert default.cell.datasets == {} and "corpus" not in default.cell.suite_config


def test_empty_corpus_is_a_clear_error(tmp_path, regs):
    class Empty:
        def texts(self, start=0):
            return iter(())

    metric = regs.metrics.get("scaling_heldout_loss")({"n_docs": 3})
    with pytest.raises(HarnessError, match="has no documents. Fix: .*heldout_docs: 0"):
        metric.score(ModelInputs(model=None, seed=0, device="cpu"), Empty())


@pytest.mark.skipif(not list_zoo_models(), reason="no zoo checkpoints")
def test_scaling_world_default_scores_the_held_out_world_slice_as_before(regs):
    """The default corpus is the world's documents from index 50,000,000 (world_seed's world):
    the metric equals the zoo's own heldout_loss, and the pre-corpus computation, to the last bit."""
    from harness.zoo import World
    from harness.zoo.evaluate import EVAL_LOSS_START, heldout_loss
    from harness_plugins.zoo_models import ZooModels

    loaded = ZooModels().load("zoo-32", None, device="cpu", dtype="float32")
    tok = loaded.require_tokenizer()
    metric = regs.metrics.get("scaling_heldout_loss")({"n_docs": 20})
    assert metric.corpus_ref() == DatasetRef(dataset="world", config={"seed": 0})
    value = metric.compute(ModelInputs(model=loaded, seed=0, device="cpu"))
    world = World(seed=0)
    assert value.value == heldout_loss(loaded.model, tok, world, 20) and value.n == 20
    # the computation as it was before the corpus field (one forward pass per 64 documents)
    texts = [d.text for d in world.documents(EVAL_LOSS_START, EVAL_LOSS_START + 20)]
    seqs = [[tok.eos_token_id, *ids] for ids in tok(texts, add_special_tokens=False).input_ids]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, s in enumerate(seqs):
        ids[j, : len(s)], mask[j, : len(s)] = torch.tensor(s), 1
    with torch.no_grad():
        logits = loaded.model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    total = float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                    reduction="sum", ignore_index=-100))
    assert value.value == total / int(mask[:, 1:].sum())
    other = regs.metrics.get("scaling_heldout_loss")({"n_docs": 20, "world_seed": 1}).compute(
        ModelInputs(model=loaded, seed=0, device="cpu"))
    assert other.value != value.value  # world_seed still picks the world


# --------------------------------------------------------------------------- superposition: layer-wise
@needs_shape
def test_superposition_layerwise_on_a_local_corpus(pythia, corpus_file, regs):
    from harness_plugins.superposition.layerwise import layer_profile

    corpus = open_role(_local(corpus_file), "corpus", regs)
    torch.manual_seed(0)
    prof = layer_profile(pythia, None, kinds=["resid_post"], train_tokens=128, count_tokens=128, epochs=1,
                         batch_size=64, lr=None, normalize=True, checkpoints=[128], seed=0, corpus=corpus)
    assert prof.points == [f"blocks.{i}.hook_resid_post" for i in range(6)]
    assert prof.n_train_tokens == 128 and prof.n_count_tokens == 128
    for p in prof.points:
        res = prof.results[p]
        assert 1.0 <= res.F <= res.n_latents and [n for n, _ in res.convergence] == [128]
    # F is counted on the documents after every one the training harvest read: disjoint text
    assert 0 < prof.count_start < 40


@needs_shape
def test_superposition_layerwise_corpus_too_small_to_count_is_a_clear_error(pythia, tmp_path, regs):
    from harness_plugins.superposition.layerwise import layer_profile

    path = tmp_path / "tiny.jsonl"
    path.write_text(json.dumps({"text": " ".join(WORDS * 12)}) + "\n")  # one document: all of it goes to training
    corpus = open_role(_local(path), "corpus", regs)
    with pytest.raises(HarnessError, match="no text left to count F on after the 1 documents"):
        layer_profile(pythia, None, kinds=["resid_post"], train_tokens=64, count_tokens=64, epochs=1,
                      batch_size=32, lr=None, normalize=True, checkpoints=[64], seed=0, corpus=corpus)


@pytest.mark.skipif(not list_zoo_models(), reason="no zoo checkpoints")
def test_superposition_world_default_reads_the_world_stream_as_before(regs):
    """The default corpus opens the world (seed 0); the profile trains from document 0 and counts
    from document 1,000,000, exactly as the pre-corpus code (``World(seed=0).documents``) did."""
    from harness.zoo import World
    from harness_plugins.superposition.layerwise import WORLD_COUNT_START, layer_profile
    from harness_plugins.zoo_models import ZooModels

    sp = regs.suites.get("superposition")
    assert sp.Config().corpus == DatasetRef()
    corpus = open_role(DatasetRef(), "corpus", regs)
    world = World(seed=0)
    assert WORLD_COUNT_START == 1_000_000
    for start in (0, WORLD_COUNT_START):
        got = [t for t, _ in zip(corpus.texts(start), range(5))]
        assert got == [d.text for d in world.documents(start, start + 5)]

    class Stream:  # the world's texts, as the old code read them, without the world attribute
        def texts(self, start=0):
            for doc in World(seed=0).documents(start=start):
                yield doc.text

    loaded = ZooModels().load("zoo-32", None, device="cpu", dtype="float32")
    from harness.protocols import LearnerSpec

    cls = regs.method("tied_sae")
    method = LearnerSpec(cls, cls.Config())
    kw = dict(kinds=["resid_post"], train_tokens=128, count_tokens=128, epochs=1, batch_size=64, lr=None,
              normalize=True, checkpoints=[64, 128], seed=0)
    torch.manual_seed(0)
    a = layer_profile(loaded, method, corpus=corpus, **kw)
    torch.manual_seed(0)
    b = layer_profile(loaded, method, corpus=Stream(), count_start=WORLD_COUNT_START, **kw)
    assert {p: r.F for p, r in a.results.items()} == {p: r.F for p, r in b.results.items()}
    assert a.count_start == b.count_start == WORLD_COUNT_START
