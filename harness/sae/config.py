"""Pydantic configs shared by the dictionary learners (no torch import here).

Every learner's ``Config`` subclasses :class:`SAEConfig`; learners override defaults by
re-declaring a field. :class:`SAETrainConfig` is the shared trainer's config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.config import PluginConfig


class SAEConfig(PluginConfig):
    """Fields every sparse autoencoder has (architecture-specific ones live in subclasses)."""

    expansion_factor: int = Field(8, ge=1, description="d_sae = expansion_factor * d_in (unless d_sae is set).")
    d_sae: int | None = Field(None, ge=1, description="Dictionary size; overrides expansion_factor when set.")
    lr: float | None = Field(
        None, gt=0, description="Adam learning rate; None = the architecture's default rule (see its README)."
    )
    apply_b_dec_to_input: bool = Field(
        True, description="Subtract b_dec from the input before encoding (SAELens field of the same name)."
    )
    unit_norm_decoder: bool = Field(
        True,
        description="Keep decoder rows at unit norm: the gradient component parallel to each row is removed "
        "before the step and rows are renormalised after it.",
    )
    decoder_init_norm: float | None = Field(
        None, gt=0, description="Norm of the initial decoder rows; None = 1 (unit norm). W_enc starts as W_dec^T."
    )
    b_dec_init: Literal["zeros", "mean", "geometric_median"] = Field(
        "geometric_median", description="How the trainer initialises b_dec from the first batch."
    )
    dead_tokens_threshold: int = Field(
        10_000_000,
        ge=1,
        description="A latent is dead when it has not fired for this many training tokens (AuxK target, logs).",
    )
    kernel: Literal["auto", "sparse", "dense"] = Field(
        "auto",
        description="Compute path for top-k style learners: sparse (top-k without [batch, d_sae] autograd tensors; "
        "the per-device tuning in harness.sae.kernels.TUNING picks gather or GEMM for each piece) or dense "
        "(full [batch, d_sae] autograd matmuls); auto picks sparse when k <= d_sae / 8.",
    )

    def resolve_d_sae(self, d_in: int) -> int:
        return self.d_sae if self.d_sae is not None else self.expansion_factor * d_in


class SAETrainConfig(PluginConfig):
    """Options of :func:`harness.sae.train_sae` (the same for every learner)."""

    batch_size: int = Field(4096, ge=1, description="Activations (tokens) per optimiser step.")
    steps: int | None = Field(None, ge=1, description="Optimiser steps; None = ceil(tokens / batch_size).")
    tokens: int | None = Field(None, ge=1, description="Token budget, used when steps is None.")
    seed: int = Field(0, description="Seed of initialisation, batch order and sampling noise.")
    device: str = Field("auto", description='"auto" (cuda when available), "cpu", "cuda" or "cuda:N".')
    autocast: Literal["auto", "off", "bf16"] = Field(
        "auto", description="bf16 autocast of the big matmuls: auto = on for cuda, off for cpu."
    )
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas.")
    warmup_steps: int | None = Field(
        None, ge=0, description="Linear LR warm-up steps; None = min(1000, 5% of the steps)."
    )
    decay_start: float = Field(
        0.8, ge=0.0, le=1.0, description="Fraction of training after which the LR decays to 0 (1.0 = no decay)."
    )
    decay: Literal["linear", "cosine", "none"] = Field("linear", description="Shape of the LR decay.")
    grad_clip: float = Field(1.0, ge=0.0, description="Max global gradient norm (0 = no clipping).")
    normalize_activations: Literal["none", "expected_average_only_in"] = Field(
        "none",
        description="Scale inputs so E||x|| = sqrt(d_in) (SAELens name); the scale is folded into the saved "
        "weights, so the saved SAE takes raw activations.",
    )
    log_every: int = Field(50, ge=1, description="Steps between log records (and progress-bar updates).")
    checkpoint_every: int | None = Field(
        None, ge=1, description="Steps between checkpoints in checkpoint_dir (None = only at the end)."
    )
    progress: bool = Field(True, description="Show a tqdm progress bar with L0 / explained variance / dead fraction.")
