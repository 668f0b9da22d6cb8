"""Config sections of the superposition suite's optional experiments (torch-free: imported at plugin load)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from harness.config import PluginConfig


class AlgorithmicConfig(PluginConfig):
    tasks: int = Field(3, ge=1, description="Parity tasks (one-hot task bits at the input).")
    bits_per_task: int = Field(4, ge=1, description="Data bits per task whose parity is the label.")
    widths: list[int] = Field([16, 32, 64], min_length=1, description="Hidden widths N of the MLPs (one per width).")
    layers: int = Field(2, ge=1, description="Hidden ReLU layers per MLP (F is counted at each).")
    steps: int = Field(2000, ge=1, description="Adam steps.")
    batch_size: int = Field(256, ge=1, description="Training batch.")
    lr: float = Field(3e-3, gt=0, description="Adam learning rate.")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="Share of the patterns held out for test accuracy.")
    sae_samples: int = Field(8192, ge=16, description="Hidden vectors the learner trains on (F counted on all).")
    sae_epochs: int = Field(20, ge=1, description="Learner epochs.")


class GrokkingConfig(PluginConfig):
    modulus: int = Field(31, ge=3, description="p of (a + b) mod p; the data set is all p^2 pairs.")
    train_fraction: float = Field(0.6, gt=0, lt=1, description="Share of the p^2 pairs trained on (rest: test).")
    embed_dim: int = Field(32, ge=1, description="Width of the shared token embedding.")
    width: int = Field(128, ge=2, description="Hidden ReLU neurons N (F is counted here).")
    steps: int = Field(2500, ge=1, description="Full-batch AdamW steps.")
    lr: float = Field(3e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(2.0, ge=0, description="AdamW weight decay (grokking needs it strong).")
    eval_every: int = Field(100, ge=1, description="Steps between readouts of accuracy and F.")
    sae_epochs: int = Field(60, ge=1, description="Learner epochs over the p^2 hidden vectors at each readout.")
    memorised_at: float = Field(0.99, gt=0, le=1, description="Train accuracy that marks memorisation.")
    generalised_at: float = Field(0.9, gt=0, le=1, description="Test accuracy that marks generalisation.")


class AdversarialConfig(PluginConfig):
    classes: list[int] = Field([2, 10], min_length=1, description="Tasks: classify the first k digits (2..10).")
    widths: list[int] = Field([8, 32, 128], min_length=1, description="Hidden widths N.")
    epsilons: list[float] = Field([0.0, 0.1, 0.2, 0.3], min_length=2, description="Training epsilons (L-inf, "
                                  "inputs in [0, 1]); must include 0 (the clean reference).")
    attack: Literal["fgsm", "pgd"] = Field("fgsm", description="Attack used to make the training batches.")
    pgd_steps: int = Field(10, ge=1, description="PGD steps (training with attack=pgd, and every robust evaluation).")
    clean_weight: float = Field(0.5, ge=0, le=1, description="Adversarial training loss = w x clean loss + (1 - w) x "
                                "adversarial loss (the authors' default 0.5; 0 = adversarial batches only).")
    epochs: int = Field(40, ge=1, description="Training epochs over the train split.")
    batch_size: int = Field(64, ge=1, description="Training batch.")
    lr: float = Field(3e-3, gt=0, description="Adam learning rate.")
    test_fraction: float = Field(0.3, gt=0, lt=1, description="Share of each task's images held out.")
    sae_epochs: int = Field(100, ge=1, description="Learner epochs over the hidden vectors (every image of the task).")
    flat_band: float = Field(0.05, ge=0, description="|relative F change| below this is 'flat' (no regime).")

    @field_validator("classes")
    @classmethod
    def _classes_in_range(cls, v: list[int]) -> list[int]:
        bad = [k for k in v if not 2 <= k <= 10]
        if bad:
            raise ValueError(f"classes {bad}: digits has 10 classes; each task needs 2 to 10. Fix: e.g. [2, 10].")
        return v

    @field_validator("epsilons")
    @classmethod
    def _has_zero(cls, v: list[float]) -> list[float]:
        if 0.0 not in v or any(e < 0 for e in v):
            raise ValueError("epsilons must be >= 0 and include 0.0 (the clean-trained reference). Fix: e.g. [0, 0.1, 0.2].")
        return sorted(v)


class StabilityConfig(PluginConfig):
    l1_coefficients: list[float] = Field([1e-3, 1e-2, 1e-1, 1.0], min_length=1, description="Values of the learner's "
                                         "`l1_coefficient` swept (paper: 1e-3 to 1).")
    expansion_factors: list[float] = Field([2.0, 4.0, 8.0, 16.0, 32.0], min_length=1, description="Values of the "
                                           "learner's `expansion_factor` swept (paper: 2x to 32x).")
    toy_models: int = Field(8, ge=3, description="Toy models of the sparsity sweep used (evenly spread over it).")


class SaturationConfig(PluginConfig):
    count_tokens: int = Field(65536, ge=64, description="Tokens streamed to count F in the layer-wise profile when "
                              "this experiment is on (replaces `layer_count_tokens`).")
    checkpoints: list[int] = Field(
        [256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536], min_length=2,
        description="Token counts of the F trace (replaces `convergence_checkpoints`).",
    )
    tolerance: float = Field(0.02, gt=0, lt=1, description="F has saturated at the first checkpoint after which it "
                             "stays within this relative distance of its final value.")


#: The optional experiments, in the order they run.
EXPERIMENTS = ("algorithmic", "grokking", "adversarial", "stability", "saturation")
Experiment = Literal["algorithmic", "grokking", "adversarial", "stability", "saturation"]
