"""``SAEBase``: the torch side every built-in learner shares.

Parameters (SAELens names): ``W_enc`` [d_in, d_sae], ``b_enc`` [d_sae], ``W_dec``
[d_sae, d_in], ``b_dec`` [d_in]; buffer ``tokens_since_fired`` [d_sae] (dead-latent
tracking, part of checkpoints, not of saved SAEs). Save/load: ``cfg.json`` (SAELens
field names plus a ``harness`` block with the learner name and its full config) and
``sae_weights.safetensors``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from harness.errors import HarnessError
from harness.sae.config import SAEConfig

PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle"}


class SAELoadError(HarnessError):
    """An SAE folder could not be loaded; the message names the file and the fix."""

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
#: Tensors only harness reads (e.g. JumpReLU's exact log-threshold, a vSAE's variance encoder):
#: kept out of ``sae_weights.safetensors``, whose keys SAELens checks strictly.
HARNESS_WEIGHTS_FILE = "harness_weights.safetensors"
#: The SAELens cfg.json format harness writes (SAELens >= 6 reads it as is).
SAELENS_FORMAT_VERSION = "6.0.0"
#: Tensor names SAELens's SAE classes load (standard, topk, jumprelu, gated).
SAELENS_TENSORS = frozenset({"W_enc", "b_enc", "W_dec", "b_dec", "threshold", "b_gate", "r_mag", "b_mag"})


def saelens_cfg(architecture: str, d_in: int, d_sae: int, weight: torch.Tensor, apply_b_dec_to_input: bool,
                metadata: dict[str, Any], *, learner: str, config: dict[str, Any], seed: int) -> dict[str, Any]:
    """A cfg.json SAELens reads (its field names) plus a ``harness`` block (learner, full config, seed)."""
    meta = dict(metadata)
    cfg: dict[str, Any] = {
        "architecture": architecture,
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": str(weight.dtype).removeprefix("torch."),
        "device": str(weight.device),
        "apply_b_dec_to_input": apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "hook_name": meta.get("hook_name"),
        "hook_layer": meta.get("hook_layer"),
        "hook_head_index": None,
        "model_name": meta.get("model_name"),
        "context_size": meta.get("context_size"),
        "prepend_bos": meta.get("prepend_bos", True),
        "dataset_path": meta.get("dataset_path"),
        "activation_fn_str": "relu",
        "activation_fn_kwargs": {},
        "finetuning_scaling_factor": False,
    }
    cfg["metadata"] = {k: cfg[k] for k in ("hook_name", "hook_layer", "model_name", "context_size",
                                          "prepend_bos", "dataset_path")} | {
        "sae_lens_training_version": None,
        # The cfg.json format followed (SAELens reads older formats through a converter that
        # breaks on unset hook names); harness itself is not SAELens.
        "sae_lens_version": SAELENS_FORMAT_VERSION,
    }
    cfg["harness"] = {"learner": learner, "config": config, "seed": seed, "metadata": meta}
    return cfg


def save_weights(tensors: dict[str, torch.Tensor], directory: Path) -> None:
    """SAELens's tensors to ``sae_weights.safetensors``, harness-only ones to ``harness_weights.safetensors``."""
    from safetensors.torch import save_file

    ours = {k: v for k, v in tensors.items() if k not in SAELENS_TENSORS}
    save_file({k: v for k, v in tensors.items() if k not in ours}, str(directory / WEIGHTS_FILE))
    extra = directory / HARNESS_WEIGHTS_FILE
    if ours:
        save_file(ours, str(extra))
    elif extra.exists():
        extra.unlink()


class SAEBase(nn.Module):
    """Mixin placed before the registered plugin class: ``class TopKSAE(SAEBase, TopK)``."""

    #: SAELens ``architecture`` written to cfg.json.
    architecture: ClassVar[str] = "standard"
    #: Extra tensors (besides W_enc, b_enc, W_dec, b_dec) saved with the SAE.
    extra_weights: ClassVar[tuple[str, ...]] = ()

    def __init__(self, d_in: int, config: Any = None, *, seed: int = 0) -> None:
        nn.Module.__init__(self)
        self.config: SAEConfig = type(self).parse_config(config)
        self.d_in = int(d_in)
        self.d_sae = self.config.resolve_d_sae(self.d_in)
        self.seed = int(seed)
        #: Provenance written to cfg.json (hook_name, model_name, ...); set by the trainer.
        self.metadata: dict[str, Any] = {}
        self.W_enc = nn.Parameter(torch.empty(self.d_in, self.d_sae))
        self.b_enc = nn.Parameter(torch.zeros(self.d_sae))
        self.W_dec = nn.Parameter(torch.empty(self.d_sae, self.d_in))
        self.b_dec = nn.Parameter(torch.zeros(self.d_in))
        self.register_buffer("tokens_since_fired", torch.zeros(self.d_sae, dtype=torch.long))
        self.build()
        self.reset_parameters(torch.Generator().manual_seed(self.seed))

    # -- construction -------------------------------------------------------------
    @classmethod
    def create(cls, d_in: int, config: Any = None, *, seed: int = 0) -> SAEBase:
        return cls(d_in, config, seed=seed)

    def build(self) -> None:
        """Add architecture-specific parameters/buffers (called before initialisation)."""

    @torch.no_grad()
    def reset_parameters(self, gen: torch.Generator) -> None:
        """Decoder rows: random directions of norm ``decoder_init_norm`` (1); W_enc = W_dec^T."""
        w = torch.randn(self.d_sae, self.d_in, generator=gen)
        w = w / w.norm(dim=1, keepdim=True) * (self.config.decoder_init_norm or 1.0)
        self.W_dec.copy_(w)
        self.W_enc.copy_(w.t())
        self.b_enc.zero_()
        self.b_dec.zero_()

    def default_lr(self) -> float:
        """Learning rate when ``config.lr`` is None (Gao et al.'s scaling rule by default)."""
        return 2e-4 / math.sqrt(self.d_sae / 2**14)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Initialise b_dec from a first batch (``config.b_dec_init``)."""
        from harness.sae.kernels import geometric_median

        how = self.config.b_dec_init
        if how == "mean":
            self.b_dec.copy_(x.float().mean(0))
        elif how == "geometric_median":
            self.b_dec.copy_(geometric_median(x.float()))

    # -- forward ------------------------------------------------------------------
    def encode_pre(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encode_pre(x))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def use_sparse(self, k: int) -> bool:
        kernel = self.config.kernel
        return kernel == "sparse" or (kernel == "auto" and k * 8 <= self.d_sae)

    # -- training hooks -------------------------------------------------------------
    def loss(self, x: torch.Tensor, step: int, total_steps: int) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError

    def after_step(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step (e.g. BatchTopK's threshold estimate)."""

    @torch.no_grad()
    def update_firing(self, fired: torch.Tensor, n_tokens: int) -> None:
        """``fired``: bool [d_sae] (or latent indices) of latents active in this batch."""
        self.tokens_since_fired += n_tokens
        if fired.dtype == torch.bool:
            self.tokens_since_fired.masked_fill_(fired, 0)  # no host sync (a boolean index would sync on a GPU)
        else:
            self.tokens_since_fired.index_fill_(0, fired, 0)

    @torch.no_grad()
    def record_firing(self, idx: torch.Tensor, active: torch.Tensor, n_tokens: int) -> None:
        """:meth:`update_firing` for the latents ``idx`` whose entry in ``active`` is true (same shape)."""
        hits = torch.zeros(self.d_sae, device=idx.device).index_add_(0, idx.reshape(-1), active.reshape(-1).float())
        self.update_firing(hits > 0, n_tokens)

    def dead_mask(self) -> torch.Tensor:
        return self.tokens_since_fired >= self.config.dead_tokens_threshold

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Drop the component of dL/dW_dec parallel to each (unit-norm) decoder row."""
        if not self.config.unit_norm_decoder or self.W_dec.grad is None:
            return
        g, w = self.W_dec.grad, self.W_dec
        g.sub_((g * w).sum(-1, keepdim=True) * w)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        if self.config.unit_norm_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def fold_input_scale(self, scale: float) -> None:
        """Make an SAE trained on ``scale * x`` take raw ``x`` (same latents, same x_hat / scale)."""
        self.W_enc.mul_(scale)
        self.W_dec.div_(scale)
        self.b_dec.div_(scale)

    # -- SAELens-format save / load ------------------------------------------------
    def saelens_cfg(self) -> dict[str, Any]:
        return saelens_cfg(self.architecture, self.d_in, self.d_sae, self.W_enc, self.config.apply_b_dec_to_input,
                           self.metadata, learner=self.name, config=self.config.model_dump(mode="json"),  # type: ignore[attr-defined]
                           seed=self.seed)

    def weights_to_save(self) -> dict[str, torch.Tensor]:
        names = ("W_enc", "b_enc", "W_dec", "b_dec", *self.extra_weights)
        return {n: getattr(self, n).detach().contiguous().cpu() for n in names}

    def save(self, directory: Path | str) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CFG_FILE).write_text(json.dumps(self.saelens_cfg(), indent=2, sort_keys=True) + "\n")
        save_weights(self.weights_to_save(), directory)

    @classmethod
    def config_from_saelens(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        """Learner config for a SAELens-written cfg.json (no ``harness`` block)."""
        return {"d_sae": int(cfg["d_sae"]), "apply_b_dec_to_input": bool(cfg.get("apply_b_dec_to_input", True)),
                "unit_norm_decoder": False}

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy saved tensors in (subclasses translate SAELens-only names, e.g. threshold)."""
        missing = [n for n in ("W_enc", "b_enc", "W_dec", "b_dec") if n not in tensors]
        if missing:
            raise ValueError(f"{type(self).__name__}: the weights file lacks {missing}.")
        with torch.no_grad():
            for n, t in tensors.items():
                if hasattr(self, n) and isinstance(getattr(self, n), torch.Tensor):
                    target = getattr(self, n)
                    if target.shape != t.shape:
                        raise ValueError(f"{type(self).__name__}: {n} has shape {tuple(t.shape)}, "
                                         f"expected {tuple(target.shape)}.")
                    target.copy_(t)

    @classmethod
    def load(cls, directory: Path | str) -> SAEBase:
        from safetensors.torch import load_file

        directory = Path(directory)
        cfg = json.loads((directory / CFG_FILE).read_text())
        block = cfg.get("harness")
        if block:
            config, seed = block["config"], int(block.get("seed", 0))
        else:
            from harness.sae.io import unsupported_saelens_options

            problems = unsupported_saelens_options(cfg)
            if problems:
                raise SAELoadError(f"{directory / CFG_FILE} uses SAELens options harness does not implement (loading "
                                   f"it would be silently wrong): {'; '.join(problems)}.")
            config, seed = cls.config_from_saelens(cfg), 0
        sae = cls(int(cfg["d_in"]), config, seed=seed)
        sae.metadata = dict(block.get("metadata", {})) if block else {
            k: v for k, v in (cfg.get("metadata") or cfg).items()
            if k in ("hook_name", "hook_layer", "model_name", "context_size", "prepend_bos", "dataset_path")
        }
        path = directory / WEIGHTS_FILE
        if not path.is_file():
            pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
            if pickles:
                raise SAELoadError(
                    f"{directory} holds only pickle-based weights ({', '.join(pickles)}). harness loads SAEs from "
                    "safetensors only, because unpickling can run arbitrary code; convert them with "
                    "safetensors.torch.save_file in an environment you trust."
                )
            raise SAELoadError(f"SAE weights {path} are missing.")
        tensors = {}
        for file in (path, directory / HARNESS_WEIGHTS_FILE):
            if file is not path and not file.is_file():
                continue
            try:
                tensors |= load_file(str(file))
            except Exception as exc:  # noqa: BLE001 - any parse failure means the file is unusable
                raise SAELoadError(f"SAE weights {file} are corrupt or truncated ({type(exc).__name__}: {exc}).") from exc
        try:
            sae.load_weights(tensors)
        except ValueError as exc:
            raise SAELoadError(f"SAE weights {path} do not fit {directory / CFG_FILE}: {exc}") from exc
        return sae.eval()

    # -- checkpoint helpers ---------------------------------------------------------------
    def firing_stats(self) -> dict[str, float]:
        return {"dead_fraction": float(self.dead_mask().float().mean())}
