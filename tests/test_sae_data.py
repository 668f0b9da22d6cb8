"""The sae suite's data fields: world by default (same inputs, same keys), a user's data on the
pythia-70m-shaped random model (local corpus, bias_in_bios-like probing / SCR-TPP set, absorption
on the tokenizer's words), and ``harness train-sae --dataset``.

The pythia tests use ../shared/data/pythia-70m-shape (Pythia-70M's config and tokenizer, no
weights) and skip when it is absent.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

import harness_plugins.sae_bench as sb
from harness.datasets import DatasetRef, open_role
from harness.errors import HarnessError
from harness.testing import registries_with

sys.path.insert(0, str(Path(__file__).parent))
from _hf_configs import PYTHIA_SHAPE_DIR  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
needs_pythia = pytest.mark.skipif(not (PYTHIA_SHAPE_DIR / "config.json").is_file(),
                                  reason="../shared/data/pythia-70m-shape is absent")


@pytest.fixture(scope="module")
def regs():
    return registries_with(builtins=True)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------- world: same inputs, same keys
def test_world_refs_read_what_the_suite_always_read(regs):
    """The default data fields give the suite exactly the texts, labels and seeds it used before them."""
    from harness.zoo import World

    from harness_plugins.sae_bench.run import corpus_texts, text_ranges

    w, cfg, seed = World(seed=0), sb.SAEBenchSuite.Config(), 3
    corpus = open_role(cfg.corpus, "corpus", regs)
    (tr, tr_stop), (ev, ev_stop) = text_ranges(cfg)
    assert (tr, tr_stop, ev, ev_stop) == (0, 200_000, 200_000, None)
    got = [t for t, _ in zip(corpus_texts(corpus, ev, ev_stop), range(4))]
    assert got == [d.text for d in w.documents(200_000, 200_004)]
    assert [t for t, _ in zip(corpus_texts(None, 5, 7), range(9))] == [d.text for d in w.documents(5, 7)]
    assert [str(r) for r in cfg.probe_refs()] == ["world(class_set=topic)", "world(class_set=entity_type)"]
    for ref, kind in zip(cfg.probe_refs(), ("topic", "entity_type")):
        lab = open_role(ref, "labelled", regs)
        assert lab.name == kind
        for split, base in (("train", 1000), ("test", 2000)):
            old = w.probing_examples(40, kind=kind, split="balanced", seed=base + seed)
            new = lab.examples(split, 40, seed=seed)
            assert [(e.text, lab.labels.index(e.label)) for e in new] == [(e.text, e.label) for e in old]
    # SCR / TPP: the historical draws (3000 + seed, 4000 + seed) and pronoun ids
    from harness.zoo.lexicon import PRONOUNS

    scr = open_role(cfg.scr_tpp_set, "labelled", regs)
    assert scr.has_spurious and scr.name == "topic"
    for split, base in (("train", 3000), ("test", 4000)):
        old = w.probing_examples(50, kind="topic", split="balanced", seed=base + seed)
        new = scr.examples(split, 50, seed=2000 + seed)
        assert [(e.text, e.label, PRONOUNS.index(e.spurious)) for e in new] == [
            (e.text, e.label_name, e.spurious) for e in old]


@pytest.mark.skipif(not (REPO / "leaderboards" / "sae.json").is_file(), reason="no committed sae board")
def test_default_sae_keys_are_the_committed_ones(regs):
    from harness.config import RunSpec
    from harness.runner import plan
    from harness.zoo import list_zoo_models

    if "zoo-96" not in list_zoo_models():
        pytest.skip("no zoo checkpoints")
    committed = (REPO / "leaderboards" / "sae.json").read_text()
    cells = plan(RunSpec(suites=["sae"]), regs)
    assert len(cells) == 9  # 3 rows x the suite's 3 default seeds
    for c in cells:
        assert c.cell.datasets == {} and "corpus" not in c.cell.suite_config
        assert "absorption_vocab_words" not in c.cell.suite_config
        assert c.key in committed, c.label


def test_config_probe_sets_and_key_neutral_fields():
    cfg = sb.SAEBenchSuite.Config(probe_sets=["world", {"dataset": "local", "config": {"path": "b.jsonl"}}])
    assert [r.dataset for r in cfg.probe_refs()] == ["world", "local"]
    with pytest.raises(ValueError, match="probe_sets and probe_class_sets are both set"):
        sb.SAEBenchSuite.Config(probe_sets=["world"], probe_class_sets=["topic"])
    with pytest.raises(ValueError, match="the held-out text would be the training text"):
        sb.SAEBenchSuite.Config(train_start_doc=50, eval_start_doc=50)
    from harness.config import key_dump

    assert "absorption_vocab_words" not in key_dump(sb.SAEBenchSuite.Config())  # key-neutral at its default
    assert key_dump(sb.SAEBenchSuite.Config(absorption_vocab_words=300))["absorption_vocab_words"] == 300
    assert sb.SAEBenchSuite.Config(preset="full").budget("absorption_vocab_words") == 8000


def test_open_data_refuses_colliding_probe_set_names_and_sets_without_spurious(regs, tmp_path):
    from types import SimpleNamespace

    from harness_plugins.sae_bench.run import open_data

    cell = SimpleNamespace(data=lambda ref, role: open_role(ref, role, regs))
    rows = [{"text": f"t{i}", "label": "ab"[i % 2], "g": "xy"[i % 3 % 2]} for i in range(20)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    refs = [{"dataset": "local", "config": {"path": str(_jsonl(tmp_path / d / "bios.jsonl", rows))}} for d in "ab"]
    with pytest.raises(HarnessError, match="probe_sets: two sets are named bios"):
        open_data(cell, sb.SAEBenchSuite.Config(probe_sets=refs))
    with pytest.raises(HarnessError, match="scr_tpp_set: .* no spurious label.*spurious_column"):
        open_data(cell, sb.SAEBenchSuite.Config(scr_tpp_set=refs[0]))
    ok = open_data(cell, sb.SAEBenchSuite.Config(
        probe_sets=refs[:1], scr_tpp_set={**refs[0], "config": {**refs[0]["config"], "spurious_column": "g"}}))
    assert [p.name for p in ok["probe_sets"]] == ["bios"] and ok["scr_tpp_set"].has_spurious
    assert [p.name for p in open_data(cell, sb.SAEBenchSuite.Config())["probe_sets"]] == ["topic", "entity_type"]


def test_leaning_pairs_pair_opposite_leaning_classes():
    from harness_plugins.sae_bench.scr_tpp import leaning_pairs

    # class share of spurious value 0: c0 0.9, c1 0.2, c2 0.5, c3 0.7, c4 0.1
    label, spur = [], []
    for c, share in enumerate((0.9, 0.2, 0.5, 0.7, 0.1)):
        n0 = int(share * 10)
        label += [c] * 10
        spur += [0] * n0 + [1] * (10 - n0)
    pairs = leaning_pairs(np.array(label), np.array(spur), 5)
    assert pairs == [(0, 4, 0), (3, 1, 0)]  # most 0-leaning with most 1-leaning; the middle class is left out


# --------------------------------------------------------------------------- a user's data on pythia-70m's shape
PROFESSIONS = {"nurse": 0.2, "professor": 0.8, "surgeon": 0.75, "teacher": 0.25}  # share of "male"
NAMES = {"male": ["John", "David", "Mark", "Paul"], "female": ["Mary", "Anna", "Sarah", "Laura"]}
WORDS = ("the city river market morning music garden school winter house road light table paper window "
         "story water friend night letter").split()


def _bios(n_per_class: int, seed: int = 0) -> list[dict]:
    """bias_in_bios-like rows (SAEBench's columns: hard_text, profession, gender)."""
    rng = random.Random(seed)
    rows = []
    for prof, male in PROFESSIONS.items():
        for i in range(n_per_class):
            g = "male" if i < round(male * n_per_class) else "female"
            pron = "He" if g == "male" else "She"
            text = (f"{rng.choice(NAMES[g])} is a {prof} in the {rng.choice(WORDS)}. {pron} likes the "
                    f"{rng.choice(WORDS)} and the {rng.choice(WORDS)}.")
            rows.append({"hard_text": text, "profession": prof, "gender": g})
    rng.shuffle(rows)
    return rows


def _corpus(n_docs: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    return [{"text": " ".join(rng.choice(WORDS) for _ in range(40)) + "."} for _ in range(n_docs)]


@pytest.fixture(scope="module")
def pythia_folder(tmp_path_factory):
    """A random-initialised model of Pythia-70M's exact shape with its real tokenizer, saved as a folder."""
    if not (PYTHIA_SHAPE_DIR / "config.json").is_file():
        pytest.skip("../shared/data/pythia-70m-shape is absent")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("pythia-70m-shape-random")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(PYTHIA_SHAPE_DIR)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(PYTHIA_SHAPE_DIR).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("user-data")
    bios = _jsonl(d / "bios.jsonl", _bios(60))
    return {
        "corpus": {"dataset": "local", "config": {"path": str(_jsonl(d / "docs.jsonl", _corpus(120)))}},
        "bios": {"dataset": "local", "config": {"path": str(bios), "text_column": "hard_text",
                                                "label_column": "profession", "spurious_column": "gender"}},
        "bios_no_spurious": {"dataset": "local", "config": {"path": str(bios), "text_column": "hard_text",
                                                            "label_column": "profession"}},
    }


def _tiny(user_data: dict, **over) -> dict:
    cfg = {
        "hook_point": "blocks.3.hook_resid_post", "corpus": user_data["corpus"], "eval_start_doc": 100,
        "train_tokens": 1024, "epochs": 1, "batch_size": 256, "eval_tokens": 256, "context_length": 64,
        "model_batch_size": 8, "bootstrap": 10, "sweep_values": [], "capability_tasks": [], "tsne": False,
        "probe_sets": [user_data["bios"]], "probe_k": [1], "probe_train_examples": 80, "probe_test_examples": 40,
        "scr_tpp_set": user_data["bios"], "scr_tpp_n": [2], "scr_tpp_train_examples": 160,
        "scr_tpp_test_examples": 160, "absorption_vocab_words": 300,
    }  # fmt: skip
    return {**cfg, **over}


def _run(regs, folder: Path, cfg: dict, out: Path):
    from harness.config import RunSpec
    from harness.runner import execute, plan
    from harness.store import Store

    spec = RunSpec(suites=[{"name": "sae", "config": cfg}], methods=[{"name": "topk", "config": {"k": 8,
                   "expansion_factor": 2}}], models=[f"hf:{folder}"], output_dir=out, seeds=[0])  # fmt: skip
    cells = plan(spec, regs)
    store = Store(out)
    summary = execute(cells, store, regs, device="cpu", progress=False)
    return cells, summary, store.get(cells[0].cell.suite, cells[0].key)


@needs_pythia
def test_sae_suite_on_pythia_shape_with_local_data(regs, pythia_folder, user_data, tmp_path):
    cells, summary, rec = _run(regs, pythia_folder, _tiny(user_data), tmp_path)
    assert summary.done == 1 and rec.status == "ok", rec.error
    assert set(cells[0].cell.datasets) == {"suite.corpus", "suite.probe_sets[0]", "suite.scr_tpp_set"}
    assert cells[0].cell.datasets["suite.corpus"]["file"] == "docs.jsonl"
    vals = {m.column: m.value for m in rec.output.metrics}
    assert all(math.isfinite(v) for v in vals.values())
    for name in ("sae_l0", "sae_explained_variance", "sae_ce_loss_recovered", "sae_kl_score",
                 "sae_absorption_fraction", "sae_split_features"):
        assert name in vals, name
    assert vals["sae_l0"] <= 8.0 + 1e-9
    assert {"sae_sparse_probing[bios/k1]", "sae_sparse_probing[bios/residual]"} <= set(vals)
    assert not any("topic/" in c or "entity_type/" in c for c in vals)  # the world's sets are not probed
    # the residual probe reads the profession words: well above chance on any model
    assert vals["sae_sparse_probing[bios/residual]"] > 0.8
    assert "sae_tpp[top2]" in vals
    d = rec.output.details
    assert d["eval_tokens"] >= 256 and d["probing"]["bios"]["k1"] == pytest.approx(vals["sae_sparse_probing[bios/k1]"],
                                                                                  abs=1e-4)
    scr = d["scr_tpp"]
    assert scr["topics"] == sorted(PROFESSIONS) and scr["data"]["spurious_values"] == ["female", "male"]
    # female-leaning nurse / teacher paired (with "female") with male-leaning professor / surgeon
    assert set(scr["scr_pairs"]) == {"nurse-professor", "teacher-surgeon"}
    assert d["absorption"]["vocabulary"] == {"source": "tokenizer", "words": 300}
    assert d["absorption"]["n_letters"] >= 1  # letters with probe true positives (a random model has few)


@needs_pythia
def test_scr_tpp_set_without_spurious_column_fails_the_cell_naming_it(regs, pythia_folder, user_data, tmp_path):
    cfg = _tiny(user_data, scr_tpp_set=user_data["bios_no_spurious"], probing=False, absorption=False)
    _, summary, rec = _run(regs, pythia_folder, cfg, tmp_path)
    assert summary.failed == 1 and rec.status == "failed"
    assert "scr_tpp_set" in rec.error["message"] and "spurious_column" in rec.error["message"]


def test_a_short_corpus_names_the_budget_field(regs, tmp_path):
    from harness.zoo import list_zoo_models

    from harness_plugins.sae_bench.run import eval_batches, harvest_tokens
    from harness_plugins.zoo_models import ZooModels

    if "zoo-32" not in list_zoo_models():
        pytest.skip("no zoo checkpoints")
    loaded = ZooModels().load("zoo-32", None, device="cpu", dtype="float32")
    path = _jsonl(tmp_path / "c.jsonl", [{"text": f"the cat sat on the mat {i}"} for i in range(3)])
    corpus = open_role({"dataset": "local", "config": {"path": str(path)}}, "corpus", regs)
    with pytest.raises(HarnessError, match=r"documents 1\.\.1 hold \d+ tokens, 10000 are needed \(train_tokens\)"):
        harvest_tokens(loaded, "blocks.0.hook_resid_post", 1, 10_000, 16, 2, corpus=corpus, stop_doc=2)
    with pytest.raises(HarnessError, match=r"documents from 5 on hold 0 tokens.*eval_tokens.*eval_start_doc"):
        list(eval_batches(loaded, 5, 64, 16, 2, corpus=corpus))
    assert harvest_tokens(loaded, "blocks.0.hook_resid_post", 0, 4, 16, 2, corpus=corpus).shape[0] == 4


# --------------------------------------------------------------------------- train-sae --dataset
@pytest.fixture
def builtins_cli(monkeypatch, tmp_path):
    """The built-in plugins as a user has them, in a throw-away working folder."""
    from harness import plugins

    monkeypatch.delenv("HARNESS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)
    plugins.reset()
    yield tmp_path
    plugins.reset()


@needs_pythia
def test_train_sae_dataset_local_corpus(builtins_cli, pythia_folder, capsys):
    from harness.cli import main

    _jsonl(builtins_cli / "docs.jsonl", [{"body": r["text"]} for r in _corpus(60)])
    ref = json.dumps({"dataset": "local", "config": {"path": "docs.jsonl", "text_column": "body"}})
    code = main(["train-sae", f"hf:{pythia_folder}", "--hook", "blocks.1.hook_resid_post", "--learner", "topk",
                 "--set", "k=8", "--set", "d_sae=256", "--tokens", "1024", "--batch-size", "256",
                 "--context-length", "64", "--dataset", ref, "--output-dir", "sae", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "d_in=512, d_sae=256" in capsys.readouterr().out
    cfg = json.loads((builtins_cli / "sae" / "cfg.json").read_text())
    assert cfg["dataset_path"].startswith("local(")


@pytest.mark.parametrize("value,needle", [
    ("{not json", "--dataset: not valid JSON"),
    ('{"dataset": "local", "config": {"path": "missing.jsonl"}}', "missing.jsonl: no such file"),
    ("nosuchdata", 'Unknown dataset "nosuchdata"'),
])
def test_train_sae_bad_dataset_is_one_line_exit_2(builtins_cli, capsys, value, needle):
    from harness.cli import main

    code = main(["train-sae", "zoo:zoo-32", "--hook", "blocks.0.hook_resid_post", "--dataset", value,
                 "--tokens", "512", "--output-dir", "D", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and needle in err, err
    assert not (builtins_cli / "D").exists()


def test_train_sae_dataset_and_text_file_are_exclusive(builtins_cli, capsys):
    from harness.cli import main

    (builtins_cli / "t.txt").write_text("the cat sat\n")
    code = main(["train-sae", "zoo:zoo-32", "--hook", "blocks.0.hook_resid_post", "--dataset", "world",
                 "--text-file", "t.txt", "--output-dir", "D", "--no-progress"])
    assert code == 2 and "--dataset and --text-file" in capsys.readouterr().err


def test_dataset_ref_parsing():
    from harness.sae.cli import dataset_ref

    assert dataset_ref("openwebtext") == DatasetRef(dataset="openwebtext")
    assert dataset_ref('{"dataset": "local", "config": {"path": "a.txt"}}').config == {"path": "a.txt"}
