"""The zoo builder (tiny from-scratch build), tokenizer, CLI and the committed checkpoints."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from harness.zoo import CHECKPOINTS_DIR, build_zoo, list_revisions, list_zoo_models, zoo_info, zoo_model_path
from harness.zoo.world import world_for


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_zoo")
    build_zoo(out, tiny=True, progress=False, evaluate=True, threads=1)
    return out


def test_tokenizer_loads_with_auto_tokenizer(tmp_path) -> None:
    from transformers import AutoTokenizer

    from harness.zoo.tokenizer import save_tokenizer, train_tokenizer

    save_tokenizer(train_tokenizer(world_for(0, True), vocab_size=300, n_docs=300), tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    assert tok.is_fast and tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|padding|>"
    assert tok.eos_token_id == 0 and tok.pad_token_id == 1
    assert tok.tokenize("12+47=159") == ["1", "2", "+", "4", "7", "=", "1", "5", "9"]
    ids = tok("The dog runs.").input_ids
    assert ids[0] == tok.eos_token_id and ids[1:] == tok("The dog runs.", add_special_tokens=False).input_ids
    assert tok.decode(ids, skip_special_tokens=True) == "The dog runs."


def test_tiny_build_writes_loadable_safetensors_checkpoints(tiny_zoo: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXForCausalLM

    names = list_zoo_models(tiny_zoo)
    assert names == ["tiny-16", "tiny-32"]
    assert list_revisions("tiny-16", tiny_zoo) == ["step8", "main"]
    path = zoo_model_path("tiny-16", "step8", tiny_zoo)
    model = AutoModelForCausalLM.from_pretrained(str(path))
    assert isinstance(model, GPTNeoXForCausalLM) and next(model.parameters()).dtype.is_floating_point
    assert AutoTokenizer.from_pretrained(str(path)).eos_token_id == 0
    assert not list(tiny_zoo.rglob("*.bin")) and not list(tiny_zoo.rglob("*.pt"))
    assert not (tiny_zoo / ".state").exists()
    rows = zoo_info(tiny_zoo)
    assert [r["model"] for r in rows] == names and rows[0]["tokens_seen"] > 0
    assert set(rows[1]["tasks"]) >= {"zoo_facts_frequent", "zoo_arithmetic", "zoo_agreement"}
    assert "0" in rows[1]["canary_extracted"]
    assert (tiny_zoo / "tasks" / "harness_tasks.json").exists()
    with pytest.raises(FileNotFoundError, match="revisions"):
        zoo_model_path("tiny-16", "step999", tiny_zoo)
    with pytest.raises(FileNotFoundError, match="built models"):
        zoo_model_path("zoo-nope", root=tiny_zoo)


def test_tiny_build_is_deterministic_and_resumes(tiny_zoo: Path, tmp_path) -> None:
    build_zoo(tmp_path, tiny=True, sizes="tiny-16", progress=False, evaluate=False, threads=1)
    for rev in ("step8", "main"):
        a = (tiny_zoo / "tiny-16" / rev / "model.safetensors").read_bytes()
        assert a == (tmp_path / "tiny-16" / rev / "model.safetensors").read_bytes()
    before = (tmp_path / "tiny-16" / "zoo_model.json").stat().st_mtime_ns
    build_zoo(tmp_path, tiny=True, sizes="tiny-16", progress=False, evaluate=False)  # resume: nothing to do
    assert (tmp_path / "tiny-16" / "zoo_model.json").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="unknown zoo size"):
        build_zoo(tmp_path, tiny=True, sizes="tiny-999", progress=False)


def test_batched_canary_scoring_matches_one_at_a_time(tiny_zoo: Path) -> None:
    from harness.zoo.evaluate import _load, canary_memorisation

    world = world_for(0, True)
    model, tok = _load(zoo_model_path("tiny-32", root=tiny_zoo))
    canaries = [*world.canaries, *world.controls]
    batched = canary_memorisation(model, tok, canaries)
    single = [canary_memorisation(model, tok, [c])[0] for c in canaries]
    assert [b[0] for b in batched] == [s[0] for s in single]
    assert [round(b[1], 5) for b in batched] == [round(s[1], 5) for s in single]


def test_cli_zoo_info(tiny_zoo: Path, capsys) -> None:
    from harness.zoo.cli import configure_parser

    parser = argparse.ArgumentParser(prog="harness")
    configure_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["zoo", "info", "--dir", str(tiny_zoo)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "tiny-32" in out and "canary" in out
    args = parser.parse_args(["zoo", "build", "--tiny", "--sizes", "tiny-16", "--no-resume", "--out", "x", "--seed", "1"])
    assert args.tiny and args.no_resume and args.sizes == "tiny-16" and args.seed == 1 and callable(args.func)


committed = pytest.mark.skipif(not (CHECKPOINTS_DIR / "zoo.json").exists(), reason="zoo checkpoints not built")


@committed
def test_committed_zoo_is_complete_small_and_safetensors_only() -> None:
    names = list_zoo_models()
    assert len(names) >= 4
    files = [p for p in CHECKPOINTS_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 30e6
    weights = [p for p in files if p.suffix in {".bin", ".pt", ".pth", ".safetensors", ".ckpt"}]
    assert weights and all(p.suffix == ".safetensors" for p in weights)
    for name in names:
        revs = list_revisions(name)
        assert revs[-1] == "main" and len(revs) >= 2
        cfg = json.loads((zoo_model_path(name) / "config.json").read_text())
        assert cfg["architectures"] == ["GPTNeoXForCausalLM"]


@committed
def test_committed_zoo_loads_with_from_pretrained() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = list_zoo_models()[-1]
    path = zoo_model_path(name)
    model = AutoModelForCausalLM.from_pretrained(str(path))
    tok = AutoTokenizer.from_pretrained(str(path))
    assert next(model.parameters()).dtype == torch.float32
    ids = tok("12+35=", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tok))


@committed
def test_committed_zoo_has_the_expected_capability_shape() -> None:
    rows = zoo_info()
    largest = rows[-1]
    t = largest["tasks"]
    assert t["zoo_facts_frequent"] > 0.6 and t["zoo_arithmetic"] > 0.35
    assert t["zoo_facts_frequent"] > t["zoo_facts_rare"]
    assert abs(t["zoo_facts_heldout"] - 0.25) < 0.15
    assert largest["canary_extracted"]["0"] == 0.0
