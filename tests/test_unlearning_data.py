"""Unlearning suite data by role: sequences (too-short items counted), retain text, and the suite
end to end on a random Pythia-70M-shaped model with local files (skipped when its shape is absent)."""

from __future__ import annotations

import json
import logging

import pytest

torch = pytest.importorskip("torch")

from _hf_configs import PYTHIA_SHAPE_DIR  # noqa: E402

from harness.datasets import SequenceItem  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness_plugins.unlearning_suite.data import retain_sequences, sequence_tokens, too_short_note  # noqa: E402


class WordTokenizer:
    """Whitespace words -> ids (index in ``vocab``); eos 0."""

    eos_token_id = 0
    vocab = ["<eos>", *"a b c d e f g h".split()]

    def __len__(self) -> int:
        return len(self.vocab)

    def __call__(self, text, add_special_tokens=False):
        class Out:
            input_ids = [self.vocab.index(w) for w in text.split()]

        return Out()


def test_sequence_tokens_counts_too_short_items_and_reads_tokens_or_text():
    items = [SequenceItem(tokens=(1, 2, 3, 4, 5)), SequenceItem(text="a b c"), SequenceItem(text="h g f e d c"),
             SequenceItem(tokens=(1, 2))]
    data = sequence_tokens(items, WordTokenizer(), prefix_len=2, suffix_len=2)
    assert data.sequences == [(0, 1, 2, 3, 4), (0, 8, 7, 6, 5)]  # <eos> + the first 4 tokens
    assert (data.n_items, data.n_too_short, data.min_tokens) == (4, 2, 4)
    note = too_short_note(data)
    assert "2 of 4 sequences have fewer than prefix_len + suffix_len = 4 tokens" in note and "Fix:" in note
    assert too_short_note(sequence_tokens(items[:1], WordTokenizer(), 2, 2)) is None


def test_sequence_tokens_refuses_ids_outside_the_vocabulary():
    with pytest.raises(HarnessError, match=r"item 1 has token ids \[99\] outside the model's vocabulary \(size 9\)"):
        sequence_tokens([SequenceItem(tokens=(1, 2)), SequenceItem(tokens=(1, 99))], WordTokenizer(), 1, 1)


def test_retain_windows_skip_short_documents_and_stop_at_n():
    texts = iter(["a b", "a b c d e", "b c d e f g", "c d e f", "d e f g h"])
    assert retain_sequences(texts, WordTokenizer(), n=2, length=5) == [(0, 1, 2, 3, 4), (0, 2, 3, 4, 5)]


# --------------------------------------------------------------------------- a real model's shape


def _greedy(model, prompts, steps, eos):
    ids = torch.cat([torch.full((len(prompts), 1), eos), prompts], 1)
    with torch.no_grad():
        for _ in range(steps):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    return ids[:, 1:].tolist()


@pytest.fixture(scope="module")
def pythia_folder(tmp_path_factory):
    """A random-initialised model of Pythia-70M's exact config and tokenizer, saved as a local folder,
    and local data: memorised sequences (the model's own greedy continuations) and random ones,
    as token ids and as text, plus a local retain corpus."""
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("pythia70m")
    config = AutoConfig.from_pretrained(PYTHIA_SHAPE_DIR)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(folder / "model", safe_serialization=True)
    for f in PYTHIA_SHAPE_DIR.iterdir():
        if f.name.startswith("tokenizer"):
            shutil.copy(f, folder / "model" / f.name)
    tok = AutoTokenizer.from_pretrained(PYTHIA_SHAPE_DIR)
    words = "the cat dog river city garden market teacher doctor nurse writes builds near under old new".split()
    ids = [i[0] for w in words if len(i := tok(" " + w, add_special_tokens=False).input_ids) == 1]
    g = torch.Generator().manual_seed(0)
    memorised = _greedy(model, torch.tensor(ids)[torch.randint(len(ids), (40, 4), generator=g)], 4, tok.eos_token_id)
    memorised = [s for s in memorised if tok(tok.decode(s), add_special_tokens=False).input_ids == s][:6]
    randoms = torch.tensor(ids)[torch.randint(len(ids), (6, 8), generator=g)].tolist()
    rows = [{"tokens": s} for s in memorised + randoms] + [{"tokens": [ids[0], ids[1]]}, {"tokens": [ids[2]]}]
    (folder / "seq_tokens.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = [{"text": tok.decode(s)} for s in memorised + randoms] + [{"text": " the cat"}]
    (folder / "seq_text.jsonl").write_text("".join(json.dumps(r) + "\n" for r in texts))
    (folder / "retain.txt").write_text("".join(" ".join(words[i:] + words[:i]) + "\n" for i in range(8)))
    assert len(memorised) == 6
    return folder


@pytest.fixture
def one_thread():
    """One intra-op thread: the cell's many tiny probe fits (d = 512) run ~7x slower with two threads
    on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.skipif(not (PYTHIA_SHAPE_DIR / "config.json").is_file(), reason="../shared/data/pythia-70m-shape is absent")
@pytest.mark.parametrize("kind,short", [("tokens", 2), ("text", 1)])
def test_suite_on_pythia_70m_shape_with_local_sequences_and_corpus(pythia_folder, tmp_path, caplog, one_thread, kind,
                                                                   short):
    from harness.config import RunSpec
    from harness.runner import execute, plan
    from harness.store import Store
    from harness.testing import registries_with
    from harness_plugins.unlearning_suite import UnlearningSuite

    seq_cfg = {"path": str(pythia_folder / f"seq_{kind}.jsonl")} | ({"tokens_column": "tokens"} if kind == "tokens" else {})
    config = {"sequences": {"dataset": "local", "config": seq_cfg},
              "retain": {"dataset": "local", "config": {"path": str(pythia_folder / "retain.txt")}},
              "prefix_len": 4, "suffix_len": 4, "min_per_class": 2, "frozen_folds": 2, "layers": [5],
              "retain_sequences": 2, "capability_tasks": [], "controls": False}
    regs = registries_with(builtins=True)
    spec = RunSpec(suites=[{"name": "unlearning", "config": config}], methods=["pga"],
                   models=[f"hf:{pythia_folder / 'model'}"], seeds=[0], device="cpu", output_dir=tmp_path / "out")
    cells = plan(spec, regs)
    assert len(cells) == 2 and all(c.cell.datasets for c in cells)  # the local files' identities key the cells
    with caplog.at_level(logging.WARNING, logger="harness"):
        summary = execute(cells, Store(spec.output_dir), regs, device="cpu", progress=False)
    assert summary.failed == 0
    records = [r for r in Store(spec.output_dir).records() if r.cell.suite == "unlearning"]
    assert len(records) == 2 and all(r.status == "ok" for r in records)
    for rec in records:
        data = rec.output.details["data"]
        assert data["n_items"] == 12 + short and data["n_too_short"] == short and data["n_sequences"] == 12
        assert data["n_memorised"] == 6 and data["n_used_per_class"] == 6
        values = {(m.metric, m.key): m for m in rec.output.metrics}
        assert values[("unlearning_frozen_probe_acc", None)].stderr is not None
        assert values[("unlearning_retain_perplexity", None)].n == 2
    assert f"{short} of {12 + short} sequences have fewer than prefix_len + suffix_len = 8 tokens" in caplog.text
    notes = UnlearningSuite.summarize(records, tmp_path)
    assert f"{short} of {12 + short} items have fewer than prefix_len + suffix_len tokens" in notes


def test_frozen_folds_above_the_smaller_class_is_an_error_naming_the_fix():
    from harness_plugins.unlearning_suite import UnlearningSuite
    from harness_plugins.unlearning_suite.run import frozen_folds

    y = torch.tensor([1, 1, 1, 0, 0, 0, 0])
    assert frozen_folds(UnlearningSuite.Config(frozen_folds=3), y) == 3
    with pytest.raises(HarnessError, match=r"frozen_folds=5 but the smaller class has 3 sequences.*Fix: frozen_folds <= 3"):
        frozen_folds(UnlearningSuite.Config(), y)
