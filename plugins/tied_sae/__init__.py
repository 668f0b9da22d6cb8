"""Dictionary learner "tied_sae": the tied ReLU SAE of Bereska et al. (2025), arXiv 2512.13568.

The class lives in :mod:`.model` (torch is imported only there).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig


class TiedSAEConfig(PluginConfig):
    expansion_factor: float = Field(8.0, gt=0, description="Dictionary size d_sae / d_in (paper: 4x-8x; 8x in the toy checks).")
    l1_coefficient: float = Field(0.1, ge=0, description="Weight of the L1 penalty mean|z| (paper: 0.1).")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate for trainers that honour it (authors' code: 1e-3).")


def __getattr__(name: str) -> Any:
    if name == "TiedSAE":
        from .model import TiedSAE

        return TiedSAE
    raise AttributeError(name)


@hookimpl
def register_dictionary_learners(register):
    from .model import TiedSAE

    register(TiedSAE)
