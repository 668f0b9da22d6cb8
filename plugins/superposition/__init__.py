"""Suite "superposition": effective features F = exp(H) checked against ground truth.

Bereska et al., "Superposition as Lossy Compression", TMLR 2025, arXiv 2512.13568. Rows are
dictionary learners (the paper's tied SAE, ``tied_sae``, and any other registered learner);
the baseline row measures in the neuron basis (no dictionary). Per row and seed:

1. toy models of superposition (Elhage et al. 2022) over a sparsity sweep: Pearson r between
   F (through a fresh learner per toy model) and the ground-truth count of represented
   features (primary metric);
2. a dropout sweep on toy models: Spearman rho of F vs dropout rate;
3. a layer-wise profile of the cell's LM: F and psi at every layer's residual stream,
   attention output and MLP output (+ convergence of F in the number of tokens).

The heavy code is in the submodules (imported inside :meth:`SuperpositionSuite.run`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, model_serializer

from harness import hookimpl
from harness.config import PluginConfig
from harness.datasets import DatasetRef, dataset_field
from harness.protocols import ReportedMetric, Suite
from harness.results import MetricValue, SuiteOutput
from harness.stats import correlation_stderr, pearson, spearman

from .experiment_configs import (
    EXPERIMENTS,
    AdversarialConfig,
    AlgorithmicConfig,
    Experiment,
    GrokkingConfig,
    SaturationConfig,
    StabilityConfig,
)

if TYPE_CHECKING:  # pragma: no cover
    from harness.context import CellContext

#: Budgets of the two presets; a field left at None takes its value from the chosen preset.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "toy_models": 20, "toy_steps": 1500, "toy_batch_size": 256, "toy_lr": 1e-2,
        "sae_samples": 10000, "sae_epochs": 20, "sae_lr": 1e-2, "dropout_seeds": 1, "experiments": [],
    },
    "paper": {
        "toy_models": 100, "toy_steps": 10000, "toy_batch_size": 1024, "toy_lr": 1e-3,
        "sae_samples": 10000, "sae_epochs": 100, "sae_lr": None, "dropout_seeds": 5, "experiments": list(EXPERIMENTS),
    },
}  # fmt: skip


class ToyPearsonR(ReportedMetric):
    """Reported: the suite trains the toy models and measures F; :meth:`report` builds the value."""

    name = "superposition_toy_pearson_r"
    description = (
        "Pearson r between effective features F (through the row's dictionary) and the ground-truth number "
        "of represented features, over toy models of superposition swept in sparsity (paper: 0.94 +/- 0.02)."
    )
    paper = "arXiv:2512.13568"
    higher_is_better = True
    scope = "sae"
    unit = "r"

    def report(self, F: Sequence[float], ground_truth: Sequence[float], *, key: str | None = None) -> MetricValue:
        """Pearson r of ``F`` and ``ground_truth`` (one entry per toy model) with its large-sample stderr."""
        try:
            r = pearson(F, ground_truth)
        except ValueError as e:
            raise ValueError(
                f"{self.name}: {e} E.g. every toy model represents the same number of features: widen the sparsity "
                "range or train the toy models longer."
            ) from e
        n = len(F)
        return self.value(r, key=key, stderr=correlation_stderr(r, n), n=n)


class ToyPearsonRWeights(ToyPearsonR):
    name = "superposition_toy_pearson_r_weights"
    description = (
        "Pearson r between F computed from the toy models' embedding column norms ||W_i|| (no dictionary) "
        "and the ground-truth count (paper: 0.99). Reported on the baseline row."
    )
    scope = "model"


class DropoutSpearman(ReportedMetric):
    """Reported: the suite trains the dropout toy models; :meth:`report` builds the value."""

    name = "superposition_dropout_spearman"
    description = (
        "Spearman rho between F and the dropout rate of toy models trained with dropout on the hidden layer "
        "(paper: F falls monotonically with dropout; -1 = perfectly monotone fall)."
    )
    paper = "arXiv:2512.13568"
    higher_is_better = False
    scope = "sae"
    unit = "rho"

    def report(self, rates: Sequence[float], F: Sequence[float]) -> MetricValue:
        """Spearman rho of the toy models' dropout ``rates`` and their ``F`` with its large-sample stderr."""
        rho = spearman(rates, F)
        n = len(F)
        return self.value(rho, stderr=correlation_stderr(rho, n), n=n)


class SuperpositionSuite(Suite):
    name = "superposition"
    description = (
        "Effective features F = exp(H) (Bereska et al. 2025): validated on toy models of superposition "
        "(Pearson r with ground truth), dropout sweep, and a layer-wise F / psi profile of the LM."
    )
    paper = "arXiv:2512.13568"
    method_kinds = ("dictionary_learner",)
    include_baseline = True
    #: the baseline reads F in the neuron basis (F <= N): a reference, not a competitor of the dictionaries
    reference_label = "neuron basis (reference)"
    rank_reference = False
    metrics = (
        "superposition_toy_pearson_r",
        "superposition_toy_pearson_r_weights",
        "superposition_dropout_spearman",
        "effective_features",
        "superposition_psi",
    )
    version = "1"
    default_seeds = (0, 1, 2)
    default_models = ("zoo:zoo-64",)
    default_methods = ("tied_sae",)  # the paper's dictionary; others cost ~2 min a row (name them in a spec)

    class Config(PluginConfig):
        preset: Literal["quick", "paper"] = Field(
            "quick",
            description="Budget of the toy checks: 'quick' (~1 min on 2 CPU cores) or 'paper' (100 toy models, "
            "10k steps, the paper's scale). Fields left at None take the preset's value.",
        )
        toy_features: int = Field(20, ge=2, description="Features n of each toy model (paper: 20).")
        toy_hidden: int = Field(5, ge=1, description="Hidden neurons m of each toy model (paper: 5).")
        importance_decay: float = Field(0.7, gt=0, le=1, description="Feature i has importance decay**i (paper: 0.7).")
        sparsity_min: float = Field(0.001, ge=0, lt=1, description="Smallest feature sparsity S of the sweep.")
        sparsity_max: float = Field(0.999, gt=0, lt=1, description="Largest feature sparsity S of the sweep.")
        toy_models: int | None = Field(None, ge=3, description="Toy models in the sweep (1 - S log-spaced); None = preset.")
        toy_steps: int | None = Field(None, ge=1, description="Adam steps per toy model; None = preset.")
        toy_batch_size: int | None = Field(None, ge=1, description="Toy training batch; None = preset.")
        toy_lr: float | None = Field(None, gt=0, description="Toy training Adam learning rate; None = preset.")
        norm_threshold: float = Field(
            0.5, gt=0, description="Ground truth: a feature is represented when ||W_i|| exceeds this."
        )
        sae_samples: int | None = Field(
            None, ge=16, description="Hidden-activation samples per toy model (train and count); None = preset."
        )
        sae_epochs: int | None = Field(None, ge=1, description="Learner epochs over those samples; None = preset.")
        sae_batch_size: int = Field(256, ge=1, description="Learner training batch on the toy models.")
        sae_lr: float | None = Field(
            None,
            gt=0,
            description="Adam lr of the toy-model learners; None = preset (quick: 1e-2 to converge in few steps; "
            "paper: the learner config's own `lr`).",
        )
        dropout_rates: list[float] = Field(
            [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], min_length=2, description="Dropout rates on the toy hidden layer."
        )
        dropout_sparsity: float = Field(0.9, ge=0, lt=1, description="Feature sparsity S of the dropout toy models.")
        dropout_seeds: int | None = Field(None, ge=1, description="Toy models per dropout rate; None = preset.")
        layerwise: bool = Field(True, description="Profile the cell's LM layer by layer (False: toy checks only).")
        layer_kinds: list[Literal["resid_post", "attn_out", "mlp_out"]] = Field(
            ["resid_post", "attn_out", "mlp_out"], min_length=1, description="Hook kinds profiled at every layer."
        )
        corpus: DatasetRef = dataset_field(
            "corpus", "Text of the layer-wise profile: the learners train on its first `layer_train_tokens` tokens "
            "and F is counted on `layer_count_tokens` more from the documents after those (the world: from "
            "document 1,000,000). Default: the embedded world.",
        )
        layer_train_tokens: int = Field(4096, ge=64, description="Tokens of `corpus` text the per-point learners "
                                                                 "train on.")
        layer_count_tokens: int = Field(4096, ge=64, description="Disjoint tokens streamed to count F.")
        layer_epochs: int = Field(16, ge=1, description="Learner epochs over the training tokens.")
        layer_batch_size: int = Field(128, ge=1, description="Learner batch for the layer-wise profile.")
        layer_lr: float | None = Field(None, gt=0, description="Adam lr of the layer-wise learners; None = the learner's own.")
        layer_normalize: bool = Field(
            True, description="Scale each hook point's activations to E||x||^2 = d before the learner (our choice)."
        )
        convergence_checkpoints: list[int] = Field(
            [256, 512, 1024, 2048, 4096], description="Token counts at which F is recorded (convergence readout)."
        )

        experiments: list[Experiment] | None = Field(
            None,
            description="Optional experiments of the paper (issue #25): 'algorithmic' (sparse parity, F per layer vs "
            "N), 'grokking' (F across training on modular addition), 'adversarial' (FGSM / PGD training on digits: F "
            "and robust accuracy vs epsilon, abundance / scarcity verdict), 'stability' (F over l1 and dictionary "
            "size), 'saturation' (the layer-wise count streamed to `saturation.count_tokens`). None = the preset's: "
            "none in 'quick', all in 'paper'. [] = none.",
        )
        algorithmic: AlgorithmicConfig = Field(default_factory=AlgorithmicConfig, description="The 'algorithmic' experiment.")
        grokking: GrokkingConfig = Field(default_factory=GrokkingConfig, description="The 'grokking' experiment.")
        adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig, description="The 'adversarial' experiment.")
        stability: StabilityConfig = Field(default_factory=StabilityConfig, description="The 'stability' experiment.")
        saturation: SaturationConfig = Field(default_factory=SaturationConfig, description="The 'saturation' experiment.")

        def budget(self, key: str) -> Any:
            value = getattr(self, key)
            return PRESETS[self.preset][key] if value is None else value

        def enabled(self) -> list[str]:
            """The experiments this config runs (resolved against the preset), in running order."""
            chosen = set(self.budget("experiments"))
            return [e for e in EXPERIMENTS if e in chosen]

        @model_serializer(mode="wrap")
        def _key_without_off_experiments(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
            """The dump (and so the cell key) names the experiments that run, resolved, and their sections only:
            with none on it is exactly the dump of the config before the experiments existed."""
            data = handler(self)
            if not isinstance(data, dict):
                return data
            on = self.enabled()
            data.pop("experiments", None)
            for name in EXPERIMENTS:
                if name not in on:
                    data.pop(name, None)
            if on:
                data["experiments"] = on
            return data

    def run(self, cell: CellContext) -> SuiteOutput:
        from .run import run_cell

        return run_cell(self, cell)


@hookimpl
def register_metrics(register):
    register(ToyPearsonR)
    register(ToyPearsonRWeights)
    register(DropoutSpearman)


@hookimpl
def register_suites(register):
    register(SuperpositionSuite)
