"""The run specs shipped under specs/ parse and plan against the installed plugins (no cell runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_spec
from harness.plugins import get_registries
from harness.runner import plan

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_shipped_spec_plans(path):
    spec = load_spec(path)
    cells = plan(spec, get_registries())
    assert cells, f"{path.name} plans no cell"
    labels = {c.label for c in cells}
    assert {m.label or m.name for m in spec.methods} <= labels


def test_the_full_sae_spec_compares_every_builtin_learner():
    regs = get_registries()
    spec = load_spec(Path(__file__).resolve().parent.parent / "specs" / "sae_full.yaml")
    builtin = {n for n in regs.by_kind["dictionary_learner"].names() if not getattr(regs.by_kind["dictionary_learner"].get(n), "pretrained", False)}
    assert builtin <= {m.name for m in spec.methods}
