"""The superposition suite's optional experiments (issue #25): tiny, seeded budgets."""

from __future__ import annotations

import pytest

from harness.datasets.ref import key_dump
from harness.protocols import LearnerSpec

torch = pytest.importorskip("torch")

import harness_plugins.superposition as sp  # noqa: E402
from harness_plugins.superposition.experiment_configs import (  # noqa: E402
    AdversarialConfig,
    AlgorithmicConfig,
    GrokkingConfig,
    StabilityConfig,
)
from harness_plugins.tied_sae.model import TiedSAE  # noqa: E402

Config = sp.SuperpositionSuite.Config
EXPERIMENT_FIELDS = {"experiments", "algorithmic", "grokking", "adversarial", "stability", "saturation"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tied() -> LearnerSpec:
    return LearnerSpec(TiedSAE, TiedSAE.Config())


# --------------------------------------------------------------------------- config / cell keys
def test_experiments_off_leave_the_cell_key_alone():
    plain = set(Config.model_fields) - EXPERIMENT_FIELDS - {"corpus"}  # a data field at its default is left out too
    for cfg in (Config(), Config(experiments=[]), Config(experiments=[], grokking={"steps": 7})):
        dump = key_dump(cfg)
        assert set(dump) == plain and cfg.enabled() == []
    assert key_dump(Config(experiments=[])) == key_dump(Config())
    on = Config(experiments=["stability", "grokking"])
    dump = key_dump(on)
    assert dump["experiments"] == ["grokking", "stability"] and {"grokking", "stability"} <= set(dump)
    assert "algorithmic" not in dump and "adversarial" not in dump
    assert key_dump(Config(experiments=["grokking"], grokking={"steps": 7})) != key_dump(Config(experiments=["grokking"]))
    paper = Config(preset="paper")
    assert paper.enabled() == ["algorithmic", "grokking", "adversarial", "stability", "saturation"]
    assert key_dump(paper)["experiments"] == paper.enabled()  # the resolved set is in the key


def test_bad_experiment_configs_name_the_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="experiments"):
        Config(experiments=["grok"])
    with pytest.raises(ValidationError, match="modulos"):
        Config(grokking={"modulos": 7})
    with pytest.raises(ValidationError, match="include 0.0"):
        AdversarialConfig(epsilons=[0.1, 0.2])
    with pytest.raises(ValidationError, match="2 to 10"):
        AdversarialConfig(classes=[1])


# --------------------------------------------------------------------------- algorithmic
def test_parity_data_and_F_within_bounds():
    from harness_plugins.superposition.algorithmic import parity_data, run_algorithmic

    x, y = parity_data(2, 3)
    assert x.shape == (2 * 64, 2 + 6)
    assert int(y[(x[:, 0] == 1) & (x[:, 2:5].sum(1) == 3)][0]) == 1  # task 0, its 3 bits all on: odd
    cfg = AlgorithmicConfig(tasks=2, bits_per_task=3, widths=[16], layers=2, steps=300, lr=1e-2, batch_size=128,
                            test_fraction=0.0, sae_epochs=3)
    base = run_algorithmic(cfg, None, sae_batch_size=64, sae_lr=None, seed=0)
    assert [r["layer"] for r in base] == [0, 1]
    assert base[0]["train_acc"] > 0.95  # the MLP learns the parities
    assert all(1.0 <= r["F"] <= r["N"] + 1e-6 for r in base)  # neuron basis: F <= N
    via = run_algorithmic(cfg, tied(), sae_batch_size=64, sae_lr=1e-2, seed=0)
    assert all(1.0 <= r["F"] <= 8 * r["N"] and r["psi"] == pytest.approx(r["F"] / r["N"]) for r in via)


# --------------------------------------------------------------------------- grokking
def test_grokking_test_accuracy_rises_after_train_accuracy():
    from harness_plugins.superposition.grokking import run_grokking

    cfg = GrokkingConfig(modulus=23, train_fraction=0.7, width=128, lr=1e-2, weight_decay=2.0, steps=600, eval_every=100,
                         memorised_at=0.99, generalised_at=0.4)
    res = run_grokking(cfg, None, sae_batch_size=256, sae_lr=None, seed=0)
    assert res.steps == list(range(0, 601, 100)) and len(res.F) == len(res.steps)
    m = res.memorised_step
    assert m is not None and m <= 200
    at_m = res.test_acc[res.steps.index(m)]
    assert at_m < 0.2  # memorised, not generalised
    assert res.generalised_step is not None and res.generalised_step >= m + 200  # generalisation comes later
    assert res.test_acc[-1] > at_m + 0.3
    assert all(1.0 <= f <= 128 + 1e-6 for f in res.F)  # neuron basis: F <= N
    s = res.summary(128)
    assert s["memorised_step"] == m and s["consolidation"] in (True, False)


# --------------------------------------------------------------------------- adversarial
def test_fgsm_lowers_clean_trained_accuracy_on_digits():
    from harness_plugins.superposition.adversarial import accuracy, digits, fgsm, pgd, train_classifier

    cfg = AdversarialConfig(epochs=8)
    xtr, ytr, xte, yte = digits(10, 0.3, seed=0)
    assert xtr.min() >= 0 and xtr.max() <= 1 and set(ytr.tolist()) == set(range(10))
    model = train_classifier(cfg, xtr, ytr, 32, 10, 0.0, seed=0)
    clean = accuracy(model, xte, yte)
    assert clean > 0.85
    adv = fgsm(model, xte, yte, 0.2)
    assert (adv - xte).abs().max() <= 0.2 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    fg = accuracy(model, adv, yte)
    assert fg < clean - 0.3
    assert accuracy(model, pgd(model, xte, yte, 0.2, steps=5, generator=torch.Generator().manual_seed(0)), yte) <= fg + 0.05


def test_adversarial_rows_and_verdicts():
    from harness_plugins.superposition.adversarial import run_adversarial

    cfg = AdversarialConfig(classes=[2], widths=[8], epsilons=[0.0, 0.2], epochs=3, sae_epochs=2, pgd_steps=2)
    out = run_adversarial(cfg, None, sae_batch_size=256, sae_lr=None, seed=0)
    assert [(r["classes"], r["width"], r["train_eps"]) for r in out["rows"]] == [(2, 8, 0.0), (2, 8, 0.2)]
    assert set(out["rows"][0]["robust_acc_pgd"]) == {"0.2"}
    (v,) = out["verdicts"]
    assert v["regime"] in ("abundance", "scarcity", "flat")
    assert v["relative_change"] == pytest.approx(out["rows"][1]["F"] / out["rows"][0]["F"] - 1)


# --------------------------------------------------------------------------- stability
def test_stability_sweeps_each_value_and_reproduces_the_reference():
    from harness_plugins.superposition.stability import run_stability, spread
    from harness_plugins.superposition.sweeps import SaeBudget, features_through_learner
    from harness_plugins.superposition.toy import train_toy_models

    assert spread(20, 4) == [0, 6, 13, 19] and spread(3, 8) == [0, 1, 2]
    toys = train_toy_models(torch.tensor([1.0, 0.3, 0.1, 0.03]), n_features=10, n_hidden=4, steps=300, lr=1e-2,
                            batch_size=128, seed=0)
    truth = toys.represented(0.5).tolist()
    budget = SaeBudget(500, 2, 128, 1e-2)
    cfg = StabilityConfig(l1_coefficients=[0.01, 0.1], expansion_factors=[2.0, 4.0], toy_models=3)
    out = run_stability(cfg, tied(), toys, truth, budget, seed=0)
    assert out["toy_indices"] == [0, 2, 3]
    assert [s["value"] for s in out["l1_coefficient"]] == [0.01, 0.1]
    assert [s["value"] for s in out["expansion_factor"]] == [2.0, 4.0]
    # l1 0.1 is the row's own config: its F is the reference (same learner seeds), 2x and 4x are bounded by their size
    ref, _ = features_through_learner(toys, tied(), budget, seed=0, indices=out["toy_indices"])
    assert out["reference"]["F"] == out["l1_coefficient"][1]["F"] == [round(f, 4) for f in ref]
    assert out["l1_coefficient"][0]["F"] != out["reference"]["F"]
    assert out["l1_coefficient"][1]["mean_abs_relative_change"] == pytest.approx(0, abs=1e-4)
    for s in out["expansion_factor"]:
        assert all(1.0 <= f <= s["value"] * 4 + 1e-6 for f in s["F"])
    assert run_stability(cfg, None, toys, truth, budget, seed=0) == {"skipped": "neuron basis: no dictionary to sweep"}


# --------------------------------------------------------------------------- saturation readout
def test_saturation_point():
    from harness_plugins.superposition.run import saturation_point

    assert saturation_point([(256, 80.0), (512, 99.0), (1024, 100.5), (2048, 100.0)], 0.02) == 512
    assert saturation_point([(256, 80.0), (512, 90.0), (1024, 100.0)], 0.02) is None  # still rising
    assert saturation_point([(256, 100.0), (512, 140.0), (1024, 100.0)], 0.02) is None  # left the band after 256
    assert saturation_point([(256, 100.0)], 0.02) is None


# --------------------------------------------------------------------------- the suite, experiments on
def test_suite_runs_the_experiments_into_details_and_plots(tmp_path):
    """Toy checks + every experiment but saturation (which needs an LM: layerwise off), through the runner."""
    import importlib.util
    from pathlib import Path

    import harness.datasets.builtin as datasets
    import harness_plugins.effective_features as ef
    import harness_plugins.tied_sae as ts
    from harness.config import RunSpec
    from harness.runner import execute, plan
    from harness.store import Store
    from harness.testing import registries_with

    spec_ = importlib.util.spec_from_file_location("toy_plugins", Path(__file__).parent / "toy" / "toy_plugins.py")
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    toy_source = type("Src", (), {"register_models": staticmethod(mod.register_models)})
    regs = registries_with(("superposition", sp), ("effective_features", ef), ("tied_sae", ts), ("datasets", datasets),
                           ("toy", toy_source))
    cfg = {
        "toy_models": 5, "toy_features": 8, "toy_hidden": 3, "toy_steps": 200, "toy_batch_size": 128,
        "sae_samples": 400, "sae_epochs": 2, "dropout_rates": [0.0, 0.3, 0.6], "dropout_seeds": 1, "layerwise": False,
        "experiments": ["algorithmic", "grokking", "adversarial", "stability"],
        "algorithmic": {"tasks": 2, "bits_per_task": 2, "widths": [8], "steps": 50, "sae_epochs": 1},
        "grokking": {"modulus": 7, "width": 16, "steps": 40, "eval_every": 20, "sae_epochs": 1},
        "adversarial": {"classes": [2], "widths": [8], "epsilons": [0.0, 0.2], "epochs": 1, "sae_epochs": 1, "pgd_steps": 1},
        "stability": {"l1_coefficients": [0.01], "expansion_factors": [2.0], "toy_models": 3},
    }  # fmt: skip
    spec = RunSpec(suites=[{"name": "superposition", "config": cfg}], models=["toy:a"], output_dir=tmp_path, seeds=[0])
    cells = plan(spec, regs)
    store = Store(tmp_path)
    summary = execute(cells, store, regs, device="cpu", progress=False)
    assert summary.done == 2 and summary.failed == 0
    for pc in cells:
        out = store.get(pc.cell.suite, pc.key).output
        d = out.details
        assert d["experiments"] == ["algorithmic", "grokking", "adversarial", "stability"]
        assert len(d["algorithmic"]["rows"]) == 2 and len(d["grokking"]["F"]) == 3
        assert d["adversarial"]["verdicts"][0]["regime"] in ("abundance", "scarcity", "flat")
        arts = {"algorithmic_F_vs_N", "grokking_F", "adversarial_F"} | ({"stability_F"} if pc.cell.method else set())
        assert arts <= set(out.artifacts)
        assert all((tmp_path / a).is_file() for a in out.artifacts.values())
        assert ("skipped" in d["stability"]) == (pc.cell.method is None)
