"""Metrics "effective_features" (F = exp(H)) and "superposition_psi" (F / neurons).

Bereska, Tzifa-Kratira, Samavi, Gavves: "Superposition as Lossy Compression: Measure with
Sparse Autoencoders and Connect to Adversarial Vulnerability", TMLR 2025, arXiv 2512.13568.
The streaming counter lives in :mod:`.counter` (torch is imported only there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness import hookimpl
from harness.metric_inputs import SAEInputs
from harness.protocols import Metric
from harness.results import MetricValue

_LAZY = {"EffectiveFeatureCounter", "EffectiveFeatures", "effective_features", "entropy_of_mass", "count_through"}

INPUTS_DOC = """Metric inputs: :class:`harness.metric_inputs.SAEInputs`; F is counted through
``inputs.sae`` on ``inputs.activations`` (``[n, d_in]``), N = d_in, key = the hook point. A suite that
measured F itself reports it with ``metric.report(result, key=...)``; :func:`measure` builds a result
from one of: ``result`` (an :class:`EffectiveFeatures`); ``latents`` (a tensor ``[..., d_sae]`` or an
iterable of such batches); or ``learner`` (anything with ``encode``) plus ``activations`` (a tensor
``[..., d_in]`` or an iterable of batches); optional ``n_neurons`` (width of the measured layer; needed
for psi) and ``checkpoints`` (sample counts for the convergence readout)."""


def __getattr__(name: str) -> Any:  # lazy re-exports of the torch-backed counter
    if name in _LAZY:
        from . import counter

        return getattr(counter, name)
    raise AttributeError(name)


def measure(inputs: Mapping[str, Any]) -> Any:
    """An :class:`EffectiveFeatures` from a mapping (see ``INPUTS_DOC``)."""
    from .counter import EffectiveFeatureCounter, EffectiveFeatures, count_through

    if isinstance(inputs.get("result"), EffectiveFeatures):
        return inputs["result"]
    n_neurons = inputs.get("n_neurons")
    checkpoints = inputs.get("checkpoints", ())

    def batches(data: Any) -> Any:
        import torch

        return [data] if isinstance(data, torch.Tensor) else data

    if "latents" in inputs:
        return EffectiveFeatureCounter(n_neurons, checkpoints).update_all(batches(inputs["latents"])).result()
    if "learner" in inputs and "activations" in inputs:
        return count_through(inputs["learner"], batches(inputs["activations"]), n_neurons=n_neurons, checkpoints=checkpoints)
    raise KeyError(f"effective features need one of: result, latents, or learner + activations. {INPUTS_DOC}")


def _measure_sae(inputs: SAEInputs) -> Any:
    x = inputs.activations
    return measure({"learner": inputs.sae, "activations": x, "n_neurons": int(x.shape[-1])})


class EffectiveFeaturesMetric(Metric):
    name = "effective_features"
    description = (
        "Effective number of features F = exp(H(p)), p_i = share of latent i in the total |activation| "
        "mass over the samples (Bereska et al. 2025, arXiv 2512.13568). A measurement, sorted largest first."
    )
    paper = "arXiv:2512.13568"
    #: F is a measurement, not a quality score; "higher first" only orders columns (README).
    higher_is_better = True
    descriptive = True
    scope = "sae"
    unit = "features"

    def compute(self, inputs: SAEInputs) -> MetricValue:
        return self.report(_measure_sae(inputs), key=inputs.hook_point)

    def report(self, result: Any, *, key: str | None = None) -> MetricValue:
        """The value of an :class:`EffectiveFeatures` the suite measured."""
        return self.value(result.F, key=key, n=result.n_samples)


class SuperpositionPsi(Metric):
    name = "superposition_psi"
    description = "Superposition ratio psi = F / N (effective features per neuron of the measured layer)."
    paper = "arXiv:2512.13568"
    higher_is_better = True
    descriptive = True
    scope = "sae"
    unit = "features / neuron"

    def compute(self, inputs: SAEInputs) -> MetricValue:
        return self.report(_measure_sae(inputs), key=inputs.hook_point)

    def report(self, result: Any, *, key: str | None = None) -> MetricValue:
        """The value of an :class:`EffectiveFeatures` the suite measured (it must know its ``n_neurons``)."""
        if not result.n_neurons:
            raise KeyError("superposition_psi needs n_neurons (the width of the measured layer).")
        return self.value(result.psi, key=key, n=result.n_samples)


@hookimpl
def register_metrics(register):
    register(EffectiveFeaturesMetric)
    register(SuperpositionPsi)
