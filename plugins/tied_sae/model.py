"""The tied ReLU SAE of Bereska et al. (2025): W_dec = W_enc^T, no decoder bias."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.config import PluginConfig
from harness.protocols import DictionaryLearner

from . import TiedSAEConfig

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"


class TiedSAE(DictionaryLearner, nn.Module):
    """z = ReLU(x W_enc + b_enc), x_hat = z W_enc^T; loss = MSE + l1 * mean|z|.

    Parameters follow SAELens names: ``W_enc`` [d_in, d_sae], ``b_enc`` [d_sae]; ``W_dec``
    [d_sae, d_in] is the transpose view of ``W_enc`` (tied) and ``b_dec`` is a zero buffer.
    """

    name = "tied_sae"
    sparsity_field = "l1_coefficient"  # the sae suite sweeps multiples of it (no k)
    description = (
        "Tied-weight ReLU SAE (W_dec = W_enc^T, no decoder bias, MSE + l1 mean|z|): the dictionary "
        "Bereska et al. 2025 use to count effective features."
    )
    paper = "arXiv:2512.13568"
    Config = TiedSAEConfig

    def __init__(self, d_in: int, config: PluginConfig | dict[str, Any] | None = None) -> None:
        DictionaryLearner.__init__(self, config)
        nn.Module.__init__(self)
        self.d_in = int(d_in)
        self.d_sae = round(self.config.expansion_factor * self.d_in)
        self.W_enc = nn.Parameter(torch.empty(self.d_in, self.d_sae))
        self.b_enc = nn.Parameter(torch.zeros(self.d_sae))
        self.register_buffer("b_dec", torch.zeros(self.d_in), persistent=False)

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """d_sae = round(expansion_factor x d_in) must be at least 1 (and fit in memory)."""
        from harness.validation import dictionary_size_problems

        if shape.d_in is None:
            return []
        at = f" at {shape.hook}" if shape.hook else ""
        how = f"round(expansion_factor {config.expansion_factor} x d_in {shape.d_in}){at} of {shape.name}"
        return dictionary_size_problems("expansion_factor", round(config.expansion_factor * shape.d_in), shape.d_in, how)

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, d_in: int, config: PluginConfig | dict[str, Any] | None = None, *, seed: int = 0) -> TiedSAE:
        sae = cls(d_in, config)
        gen = torch.Generator().manual_seed(int(seed))
        bound = (6.0 / (sae.d_in + sae.d_sae)) ** 0.5  # Xavier-uniform, as the authors' nn.init
        with torch.no_grad():
            sae.W_enc.uniform_(-bound, bound, generator=gen)
        return sae

    @property
    def W_dec(self) -> torch.Tensor:
        return self.W_enc.T

    # ------------------------------------------------------------------ forward
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.W_enc.dtype)
        return torch.relu(x @ self.W_enc + self.b_enc)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_enc.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, step: int = 0, total_steps: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
        x = x.to(self.W_enc.dtype)
        z = self.encode(x)
        x_hat = self.decode(z)
        mse = (x_hat - x).pow(2).mean()
        l1 = z.abs().mean()
        loss = mse + self.config.l1_coefficient * l1
        with torch.no_grad():
            l0 = (z > 0).float().sum(-1).mean()
        return loss, {"loss": float(loss.detach()), "mse": float(mse.detach()), "l1": float(l1.detach()), "l0": float(l0)}

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        """SAELens "standard" format: the tied SAE is a standard SAE with W_dec = W_enc^T, b_dec = 0
        and no b_dec subtraction, so SAELens reads the same function; load() uses W_enc only."""
        from harness.sae.base import saelens_cfg, save_weights

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cfg = saelens_cfg("standard", self.d_in, self.d_sae, self.W_enc, False, getattr(self, "metadata", {}),
                          learner=self.name, config=self.config.model_dump(mode="json"), seed=0)
        (directory / CFG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        save_weights({
            "W_enc": self.W_enc.detach().contiguous().cpu(),
            "b_enc": self.b_enc.detach().contiguous().cpu(),
            "W_dec": self.W_enc.detach().T.contiguous().cpu(),
            "b_dec": torch.zeros(self.d_in, dtype=self.W_enc.dtype),
        }, directory)

    @classmethod
    def load(cls, directory: Path) -> TiedSAE:
        from safetensors.torch import load_file

        directory = Path(directory)
        try:
            cfg = json.loads((directory / CFG_FILE).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{directory} has no {CFG_FILE}: not a saved tied_sae.") from None
        block = cfg.get("harness") or {}
        sae = cls(cfg["d_in"], block.get("config", cfg.get("harness_config", {})))  # (older folders: harness_config)
        if sae.d_sae != cfg["d_sae"]:
            raise ValueError(f"{directory / CFG_FILE}: d_sae {cfg['d_sae']} does not match the expansion factor.")
        tensors = load_file(str(directory / WEIGHTS_FILE))
        with torch.no_grad():
            sae.W_enc.copy_(tensors["W_enc"])
            sae.b_enc.copy_(tensors["b_enc"])
        return sae
