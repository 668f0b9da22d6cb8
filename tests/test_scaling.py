"""The `scaling` suite (capability ceilings) and the `attention_swap` intervention."""

from __future__ import annotations

import copy
import math

import pytest

from harness.testing import registries_with

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def zoo():
    from harness.models import load_model
    from harness.zoo import zoo_model_path

    def load(name, rev="main"):
        return load_model(zoo_model_path(name, rev), device="cpu", dtype="float32")

    return {"a": load("zoo-32"), "b": load("zoo-32", "step92"), "c": load("zoo-64")}


def _ids(loaded):
    return loaded.tokenizer(["<|endoftext|>11+91=102", "<|endoftext|>Redo Songel works as"],
                            return_tensors="pt", padding=True)


# --------------------------------------------------------------------------- gap ratio
def test_gap_ratio_hand_made():
    from harness_plugins.scaling.summary import gap_ratio

    # loss 2.0 -> 1.0 is a 50% improvement; acc 0.2 -> 0.3 a 50% one: ratio 1
    assert gap_ratio(2.0, 1.0, 0.2, 0.3) == pytest.approx(1.0)
    # the paper's MMLU-math picture: CE falls 31%, accuracy up 10% (0.20 -> 0.22): ratio 3.1
    assert gap_ratio(1.0, 0.69, 0.20, 0.22) == pytest.approx(3.1)
    assert gap_ratio(1.0, 0.69, 0.20, 0.20) == math.inf  # flat accuracy, falling loss
    assert gap_ratio(1.0, 0.8, 0.4, 0.3) == pytest.approx(0.2 / -0.25)  # accuracy fell
    assert gap_ratio(1.0, 1.0, 0.2, 0.2) is None and gap_ratio(1.0, 0.5, 0.0, 0.3) is None


def test_headline_verdicts_on_hand_made_models():
    from harness_plugins.scaling.summary import ModelRow, headline

    kinds = {"facts": "knowledge", "add": "procedural"}
    small = ModelRow("zoo:s", "s", "main", 10, kinds, {"facts": 0.25, "add": 0.25})
    large = ModelRow("zoo:l", "l", "main", 100, kinds, {"facts": 0.25, "add": 0.25})
    for row, facts, add, ce_f, ce_a in ((small, 0.20, 0.30, 3.0, 2.0), (large, 0.21, 0.90, 2.07, 0.4)):
        row.values.update({("scaling_acc", "facts"): (facts, 0.04), ("scaling_acc", "add"): (add, 0.04),
                           ("scaling_answer_ce", "facts"): (ce_f, 0.1), ("scaling_answer_ce", "add"): (ce_a, 0.1),
                           ("scaling_kind_acc", "knowledge"): (facts, 0.04),
                           ("scaling_kind_acc", "procedural"): (add, 0.04)})
    table = {r[0]: r for r in headline([small, large])}
    assert table["facts"][-1] == "plateau" and table["add"][-1] == "scales"
    assert table["facts"][8] == "-31%" and table["facts"][9] == f"{0.31 / 0.05:.2f}"  # 6.20
    assert table["add"][9] == "0.40"  # CE -80% over acc +200%
    assert table["**all knowledge** (1)"][-1] == "plateau"


# --------------------------------------------------------------------------- attention swap
def test_swap_with_itself_leaves_outputs_unchanged(zoo):
    from harness_plugins.attention_swap import AttentionSwap

    a = zoo["a"]
    enc = _ids(a)
    with torch.no_grad():
        ref = a.model(**enc).logits
        with AttentionSwap(a).apply(a):
            same = a.model(**enc).logits
        with AttentionSwap(copy.deepcopy(a.model)).apply(a):  # an equal but distinct B
            same2 = a.model(**enc).logits
    torch.testing.assert_close(same, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(same2, ref, atol=1e-4, rtol=1e-4)


def test_swap_replaces_only_chosen_heads_and_is_removed(zoo):
    from harness.models import capture, run_with_cache
    from harness_plugins.attention_swap import AttentionSwap

    a, b = zoo["a"], zoo["b"]
    x = _ids(a)["input_ids"]
    _, pa = run_with_cache(a, ["pattern.1"], x)
    _, pb = run_with_cache(b, ["pattern.1"], x)
    with torch.no_grad():
        ref = a.model(x).logits
        with AttentionSwap(b, layers=[1], heads=[0]).apply(a), capture(a, ["pattern.1"]) as seen:
            swapped = a.model(x).logits
    p = seen["pattern.1"]
    torch.testing.assert_close(p[:, 0], pb["pattern.1"][:, 0])
    torch.testing.assert_close(p[:, 1], pa["pattern.1"][:, 1])
    assert (swapped - ref).abs().max() > 1e-2  # the swap changes A's output
    with torch.no_grad():
        torch.testing.assert_close(a.model(x).logits, ref)  # and is gone after the block


def test_mismatched_layouts_are_refused(zoo):
    from harness_plugins.attention_swap import AttentionSwap, SwapLayoutError, check_swap_compatible

    with pytest.raises(SwapLayoutError, match="head layouts differ.*2 heads.*4"):
        check_swap_compatible(zoo["a"], zoo["c"])  # zoo-32: 2 heads, zoo-64: 4 heads
    with pytest.raises(SwapLayoutError, match=r"layers \[5\] out of range.*0\.\.1"):
        check_swap_compatible(zoo["a"], zoo["b"], layers=[5])
    with pytest.raises(SwapLayoutError, match="heads"):
        check_swap_compatible(zoo["a"], zoo["b"], heads=[2])
    other = copy.copy(zoo["b"])
    other.tokenizer = copy.deepcopy(zoo["b"].tokenizer)
    other.tokenizer.add_tokens(["<new_word>"])
    with pytest.raises(SwapLayoutError, match="tokenise differently"):
        with AttentionSwap(other).apply(zoo["a"]):
            pass
    assert check_swap_compatible(zoo["a"], zoo["b"]) == [0, 1]


def test_swap_under_kv_cache_generation_is_refused(zoo):
    from harness_plugins.attention_swap import AttentionSwap, SwapLayoutError

    a, b = zoo["a"], zoo["b"]
    x = _ids(a)["input_ids"][:1]
    with AttentionSwap(b).apply(a), pytest.raises(SwapLayoutError, match="use_cache=False"):
        a.model.generate(x, max_new_tokens=3, do_sample=False, pad_token_id=0)


# --------------------------------------------------------------------------- the suite
def test_suite_end_to_end_writes_headline_and_plots(tmp_path):
    from harness.config import RunSpec
    from harness.leaderboard import build_leaderboards
    from harness.runner import execute, plan
    from harness.store import Store

    regs = registries_with(builtins=True)
    cfg = {"limit": 8, "heldout_docs": 4, "tasks": ["zoo_facts_frequent", "zoo_arithmetic"],
           "swap_pairs": {"zoo:zoo-64": "zoo:zoo-64@step92"}, "swap_tasks": ["zoo_arithmetic"], "swap_layers": [0]}
    models = ["zoo:zoo-32", "zoo:zoo-64", "zoo:zoo-64@step92"]
    spec = RunSpec(suites=[{"name": "scaling", "config": cfg}], models=models,
                   output_dir=tmp_path / "o", leaderboard_dir=tmp_path / "lb", device="cpu")
    cells = plan(spec, regs)
    store = Store(spec.output_dir)
    summary = execute(cells, store, regs, device="cpu", progress=False)
    assert summary.failed == 0, [r.error for r in store.records() if r.error]
    board = build_leaderboards(store, spec.leaderboard_dir, regs, ["scaling"])["scaling"]
    cols = {c.name for c in board.columns}
    assert {"scaling_acc[zoo_arithmetic]", "scaling_kind_acc[procedural]", "scaling_exact_match[zoo_arithmetic]",
            "scaling_answer_ce[zoo_facts_frequent]", "scaling_heldout_loss", "attention_swap_acc[zoo_arithmetic@L0]",
            "attention_swap_acc[zoo_arithmetic@all]"} <= cols
    row = next(r for r in board.rows if r.model == "zoo:zoo-64")
    acc = row.values["scaling_acc[zoo_arithmetic]"]
    assert acc.stderr is not None and 0 <= acc.mean <= 1
    assert 0 < row.values["scaling_heldout_loss"].mean < math.log(1024)
    assert "knowledge plateau vs procedural scaling" in board.summary
    assert "zoo:zoo-32 (91,008 params) → zoo:zoo-64" in board.summary and "Attention swap" in board.summary
    md = (spec.leaderboard_dir / "scaling.md").read_text()
    assert "gap ratio" in md
    for name in ("accuracy_vs_params.png", "loss_vs_params.png", "accuracy_vs_checkpoint.png"):
        assert (spec.leaderboard_dir / "scaling" / name).read_bytes()[:4] == b"\x89PNG"
        assert f"plots/scaling_summary_{name}" in board.plots.values()  # shown on the site page
    page = (spec.leaderboard_dir / "site" / "scaling.html").read_text()
    assert "scaling_summary_accuracy_vs_params.png" in page and "Across models" in page


def test_a_failing_summary_keeps_the_leaderboard(tmp_path, monkeypatch):
    from harness.leaderboard import summarize_suite
    from harness.results import CellKey, Provenance, RunRecord, SuiteOutput
    from harness_plugins.scaling import ScalingSuite

    regs = registries_with(builtins=True)
    cell = CellKey(suite="scaling", suite_version="1", suite_config={}, method=None, method_kind=None,
                method_config=None, model="zoo:x", model_fingerprint="f", seed=0, dtype="auto")
    prov = Provenance(harness_version="0", git_hash=None, packages={}, device="cpu", python="3", platform="x",
                      started_at="a", finished_at="b", wall_time_s=0.0)
    rec = RunRecord(key=cell.key(), cell=cell, label="base model", status="ok", output=SuiteOutput(metrics=[]),
                    provenance=prov)
    assert summarize_suite("scaling", [rec], regs, tmp_path) is None  # no model details: nothing to summarise

    def boom(cls, records, out_dir):
        raise RuntimeError("no plots today")

    monkeypatch.setattr(ScalingSuite, "summarize", classmethod(boom))
    assert "failed: RuntimeError: no plots today" in summarize_suite("scaling", [rec], regs, tmp_path)


def _suites():
    regs = registries_with(builtins=True)
    return [pytest.param(cls, id=name) for name in regs.suites.names() for cls in [regs.suites.get(name)]]


@pytest.mark.parametrize("suite_cls", _suites())
def test_every_suite_summarizes_no_records_to_nothing(suite_cls, tmp_path):
    assert suite_cls.summarize([], tmp_path) is None


def test_config_refuses_a_bad_swap_reference():
    from harness.errors import SpecError
    from harness_plugins.scaling import ScalingSuite

    with pytest.raises(SpecError, match="swap_pairs.*Invalid model reference"):
        ScalingSuite.parse_config({"swap_pairs": {"zoo:zoo-160": ":@"}})
    assert ScalingSuite.parse_config({"preset": "full"}).budget("limit") is None
