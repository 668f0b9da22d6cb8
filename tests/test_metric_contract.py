"""The metric contract: one inputs class per scope, computed vs reported metrics, ctx.compute_metrics."""

from __future__ import annotations

import sys
import types
from dataclasses import FrozenInstanceError

import pytest

from harness.config import ModelRef, PluginConfig
from harness.context import CellContext, MetricComputeError
from harness.metric_inputs import (
    SCOPE_INPUTS,
    GenerationsInputs,
    InterventionInputs,
    ModelInputs,
    SampledAnswers,
    scope_of,
)
from harness.protocols import Metric, ReportedMetric
from harness.results import MetricValue
from harness.testing import registries_with


# --------------------------------------------------------------------------- third-party metrics of every scope
class ModelWidth(Metric):
    name = "test_model_width"
    description = "The model's 'width' entry (a float: normalised by compute_metrics)."
    higher_is_better = True
    scope = "model"

    def compute(self, inputs):
        return inputs.model["width"] * 2


class ErasedShare(Metric):
    name = "test_erased_share"
    description = "Share of forget items the intervention erases."
    higher_is_better = True
    scope = "intervention"

    def compute(self, inputs):
        erased = [x for x in inputs.forget if x in inputs.intervention["erases"]]
        return self.value(len(erased) / len(inputs.forget), n=len(inputs.forget))


class MeanReconError(Metric):
    """A third party's sae metric: mean squared reconstruction error summed over dimensions."""

    name = "test_sae_sq_error"
    description = "Mean ||x - decode(encode(x))||^2 over the held-out activations."
    higher_is_better = False
    scope = "sae"

    def compute(self, inputs):
        import torch

        with torch.no_grad():
            x = inputs.activations
            x_hat = inputs.sae.decode(inputs.sae.encode(x))
        return [self.value(float((x - x_hat).pow(2).sum(-1).mean()), key=inputs.hook_point, n=int(x.shape[0]))]


class Declared(ReportedMetric):
    name = "test_declared"
    description = "A number the suite reports itself."
    higher_is_better = True
    scope = "model"


class Broken(Metric):
    name = "test_broken"
    description = "Always fails."
    higher_is_better = True
    scope = "intervention"

    def compute(self, inputs):
        raise KeyError("no such thing")


class Misnamed(Metric):
    name = "test_misnamed"
    description = "Returns a value under another metric's name."
    higher_is_better = True
    scope = "intervention"

    def compute(self, inputs):
        return MetricValue(metric="someone_else", value=1.0)


def _module():
    mod = types.ModuleType("contract_metrics")
    from harness import hookimpl

    @hookimpl
    def register_metrics(register):
        for cls in (ModelWidth, ErasedShare, MeanReconError, Declared, Broken, Misnamed):
            register(cls)

    mod.register_metrics = register_metrics
    return mod


@pytest.fixture(scope="module")
def registries():
    return registries_with(("contract_metrics", _module()), builtins=True)


def _ctx(registries, tmp_path, model_source=None):
    return CellContext(
        suite_config=PluginConfig(), method=None, model_ref=ModelRef(source="zoo", name="zoo-32"),
        model_source=model_source, seed=0, device="cpu", dtype="float32", registries=registries,
        artifact_dir=tmp_path / "artifacts",
    )  # fmt: skip


# --------------------------------------------------------------------------- the inputs classes
def test_one_frozen_inputs_class_per_scope():
    assert set(SCOPE_INPUTS) == {"sae", "model", "generations", "intervention"}
    for scope, cls in SCOPE_INPUTS.items():
        assert cls.scope == scope
    inputs = ModelInputs(model={"width": 3})
    assert scope_of(inputs) == "model"
    with pytest.raises(FrozenInstanceError):
        inputs.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError, match="ModelInputs"):
        scope_of({"model": 1})


def test_no_heavy_import_for_the_contract():
    import subprocess

    code = ("import sys, harness.metric_inputs, harness.stats, harness.context; "
            "print([m for m in ('torch', 'numpy', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- compute_metrics, each scope
def test_model_and_intervention_scope_by_hand(registries, tmp_path):
    ctx = _ctx(registries, tmp_path)
    (v,) = ctx.compute_metrics(ModelInputs(model={"width": 3}), ["test_model_width"])
    assert v == MetricValue(metric="test_model_width", value=6.0)  # the float became a MetricValue
    inputs = InterventionInputs(model=None, intervention={"erases": {"a", "c"}}, forget=["a", "b", "c", "d"], retain=[])
    (v,) = ctx.compute_metrics(inputs, ["test_erased_share"])
    assert (v.value, v.n) == (0.5, 4)


def test_generations_scope_builtins_by_hand(registries, tmp_path):
    import numpy as np

    ctx = _ctx(registries, tmp_path)
    samples = [SampledAnswers(texts=["a b", "a b"], embeddings=np.eye(2, 3), token_logprobs=[[-1.0], [-3.0]])] * 4
    inputs = GenerationsInputs(
        prompts=["q"] * 4, answers=["x"] * 4, truths=["x", "y", "x", "x"], labels=[0, 1, 0, 0],
        samples=samples, scores={"det": [0.1, 0.9, 0.2, 0.3]}, key="rare",
    )  # fmt: skip
    rate, acc, auroc, pe = ctx.compute_metrics(
        inputs, ["hallucination_rate", "known_fact_accuracy", "hallucination_auroc", "hd_predictive_entropy"]
    )
    assert (rate.value, rate.key, rate.n) == (0.25, "rare", 4)
    assert rate.stderr == pytest.approx((0.25 * 0.75 / 4) ** 0.5)
    assert (acc.value, acc.key) == (0.75, "rare")
    assert (auroc.value, auroc.key, auroc.n) == (1.0, "det", 4)
    assert pe.value == pytest.approx(2.0)  # -mean(-1, -3) per question, mean over questions


def test_names_none_computes_every_computed_metric_of_the_scope(registries, tmp_path):
    from harness import hookimpl

    mod = types.ModuleType("few_metrics")
    mod.register_metrics = hookimpl(lambda register: [register(c) for c in (ModelWidth, ErasedShare, Declared)])
    ctx = _ctx(registries_with(("few_metrics", mod), builtins=True), tmp_path)
    inputs = InterventionInputs(model=None, intervention={"erases": {"a"}}, forget=["a", "b"], retain=[])
    # the built-in intervention metrics are all reported by the unlearning / scaling suites
    assert [(v.metric, v.value) for v in ctx.compute_metrics(inputs)] == [("test_erased_share", 0.5)]
    # a failing metric is named, its error chained
    with pytest.raises(MetricComputeError, match='metric "test_broken" failed on InterventionInputs: KeyError') as e:
        _ctx(registries, tmp_path).compute_metrics(inputs)
    assert isinstance(e.value.__cause__, KeyError)


def test_errors_name_the_metric(registries, tmp_path):
    ctx = _ctx(registries, tmp_path)
    model = ModelInputs(model={"width": 1})
    with pytest.raises(TypeError, match='"test_erased_share" has scope "intervention" and needs InterventionInputs'):
        ctx.compute_metrics(model, ["test_erased_share"])
    with pytest.raises(TypeError, match='"test_declared" is a ReportedMetric'):
        ctx.compute_metrics(model, ["test_declared"])
    inputs = InterventionInputs(model=None, intervention=None, forget=["a"], retain=[])
    with pytest.raises(ValueError, match='"test_misnamed" returned a value of metric "someone_else"'):
        ctx.compute_metrics(inputs, ["test_misnamed"])


def test_reported_metric_compute_raises_a_clear_error():
    with pytest.raises(TypeError, match='"test_declared" is reported by the suite .* cannot be computed from ModelInputs'):
        Declared().compute(ModelInputs(model=None))
    # every built-in metric is either computed (its own compute) or reported, and reported ones say so
    reg = registries_with(builtins=True).metrics
    kinds = {n: issubclass(reg.get(n), ReportedMetric) for n in reg.names()}
    assert kinds["sae_ce_loss_recovered"] and kinds["lm_eval_acc"] and kinds["unlearning_recall"]
    assert not kinds["sae_alive_fraction"] and not kinds["hallucination_rate"] and not kinds["effective_features"]
    for name, reported in kinds.items():
        cls = reg.get(name)
        assert reported or cls.compute is not ReportedMetric.compute, name
        if reported:
            with pytest.raises(TypeError, match=f'"{name}" is reported'):
                cls().compute(SCOPE_INPUTS[cls.scope].__new__(SCOPE_INPUTS[cls.scope]))


# --------------------------------------------------------------------------- sae scope with the sae suite's inputs
@pytest.fixture(scope="module")
def zoo_model():
    from harness.zoo import list_zoo_models

    names = list_zoo_models()
    if not names:
        pytest.skip("no zoo checkpoints")
    from harness_plugins.zoo_models import ZooModels

    return ZooModels().load("zoo-32" if "zoo-32" in names else names[0], None, device="cpu", dtype="float32")


def test_third_party_sae_metric_on_the_sae_suites_inputs(registries, tmp_path, zoo_model):
    from harness_plugins.sae_bench import SAEBenchSuite, core
    from harness_plugins.sae_bench.run import COMPUTED, evaluate, held_out_batches, sae_inputs
    from harness_plugins.topk import TopK

    cfg = SAEBenchSuite.Config(hook_point="blocks.0.hook_resid_post", eval_tokens=256, context_length=32,
                               model_batch_size=4)
    sae = TopK.create(zoo_model.d_model, TopK.Config(expansion_factor=2, k=4), seed=0).eval()
    batches = held_out_batches(zoo_model, cfg)
    recon, _ = evaluate(zoo_model, sae, cfg, batches)
    ctx = _ctx(registries, tmp_path)
    inputs = sae_inputs(ctx, zoo_model, sae, cfg, recon, batches)
    assert inputs.activations.shape == (recon["n_tokens"], zoo_model.d_model) and inputs.token_batches

    values = {(v.metric, v.key): v for v in ctx.compute_metrics(inputs)}  # every computed sae metric
    mine = values[("test_sae_sq_error", "blocks.0.hook_resid_post")]
    assert mine.value == pytest.approx(recon["mse"] * zoo_model.d_model, rel=1e-5)  # the suite's own mse
    assert {("sae_alive_fraction", None), ("sae_dense_fraction", ">1%"), ("sae_dense_fraction", ">10%"),
            ("effective_features", "blocks.0.hook_resid_post")} <= set(values)
    # the computed built-ins give exactly what the suite's evaluation pass measured
    assert values[("sae_alive_fraction", None)].value == core.alive_fraction(recon["density"])
    assert values[("sae_dense_fraction", ">1%")].value == core.dense_fraction(recon["density"], 0.01)
    assert [v.metric for v in ctx.compute_metrics(inputs, COMPUTED)] == [
        "sae_alive_fraction", "sae_dense_fraction", "sae_dense_fraction"]
