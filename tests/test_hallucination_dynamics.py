"""The hallucination_dynamics suite: checkpoint steps, consecutive-checkpoint statistics, a tiny run."""

from __future__ import annotations


import pytest

from harness_plugins.hallucination_dynamics import checkpoint_step
from harness_plugins.hallucination_dynamics.dynamics import consecutive_stats


def test_consecutive_stats_by_hand():
    # values 0.5 -> 0.7 -> 0.4 with stderr 0.01: both changes significant, one reversal
    st = consecutive_stats([(0.5, 0.01), (0.7, 0.01), (0.4, 0.01)])
    assert st["mssd_half"] == pytest.approx((0.2**2 + 0.3**2) / 4)
    assert st["noise"] == pytest.approx(0.0001)
    assert st["ratio"] == pytest.approx(st["mssd_half"] / 0.0001)
    assert st["significant_changes"] == 2 and st["reversals"] == 1
    # a steady trend: significant, no reversal
    assert consecutive_stats([(0.1, 0.01), (0.2, 0.01), (0.3, 0.01)])["reversals"] == 0
    # changes within sampling error: ratio about 1 or less, nothing significant
    st = consecutive_stats([(0.5, 0.05), (0.52, 0.05), (0.49, 0.05)])
    assert st["significant_changes"] == 0 and st["ratio"] < 1
    with pytest.raises(ValueError):
        consecutive_stats([(0.5, 0.1)])


def test_checkpoint_step_reads_the_zoo_meta_then_the_revision_name(tmp_path):
    class Loaded:
        path = tmp_path

    (tmp_path / "zoo_meta.json").write_text('{"step": 736}')
    assert checkpoint_step(Loaded(), None) == 736
    Loaded.path = tmp_path / "none"
    assert checkpoint_step(Loaded(), "step1000") == 1000 and checkpoint_step(Loaded(), "main") is None


def test_suite_runs_checkpoints_and_the_board_is_unranked(tmp_path):
    import harness.datasets.builtin as datasets
    import harness_plugins.hallucination_detectors as hd
    import harness_plugins.hallucination_dynamics as dyn
    import harness_plugins.send_mitigators as sm
    import harness_plugins.zoo_models as zm
    from harness.config import RunSpec
    from harness.leaderboard import build_leaderboards
    from harness.runner import execute, plan
    from harness.store import Store
    from harness.testing import registries_with
    from harness.zoo import list_revisions, list_zoo_models

    if "zoo-32" not in list_zoo_models() or "step92" not in list_revisions("zoo-32"):
        pytest.skip("no zoo checkpoints")
    regs = registries_with(("hallucination_dynamics", dyn), ("send_mitigators", sm), ("hallucination_detectors", hd),
                           ("zoo_models", zm), ("datasets", datasets))
    spec = RunSpec(suites=[{"name": "hallucination_dynamics", "config": {"questions_per_split": 6, "k": 2}}],
                   models=["zoo:zoo-32@step92", "zoo:zoo-32"], output_dir=tmp_path, seeds=[0])
    cells = plan(spec, regs)
    assert len(cells) == 2
    store = Store(tmp_path)
    assert execute(cells, store, regs, device="cpu", progress=False).failed == 0
    recs = [store.get(c.cell.suite, c.key) for c in cells]
    assert sorted(r.output.details["step"] for r in recs) == [92, 736]
    cols = {m.column for m in recs[0].output.metrics}
    assert {"hallucination_rate[rare]", "hallucination_rate[heldout]", "known_fact_accuracy[frequent]",
            "answer_eigenscore[ees]"} <= cols
    boards = build_leaderboards(store, tmp_path / "lb", regs)
    md = (tmp_path / "lb" / "hallucination_dynamics.md").read_text()
    assert "Unranked: every row is a reference" in md and "### Checkpoint dynamics" in md
    assert md.index("| zoo:zoo-32 | 92 |") < md.index("| zoo:zoo-32 | 736 |")
    assert (tmp_path / "lb" / "hallucination_dynamics" / "hallucination_dynamics.png").is_file()
    assert all(r.reference and r.rank is None for r in boards["hallucination_dynamics"].rows)
