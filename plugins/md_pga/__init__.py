"""Unlearning method "md_pga": Multi-direction PGA: the PGA edit along k orthonormal probe directions per depth.

Fits on the suite's ``UnlearningData`` (``harness_plugins.unlearning_suite.data``); the code
lives in ``harness_plugins.unlearning_suite.erasure`` (imported inside :meth:`fit`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.protocols import Intervention, UnlearningMethod


class MDPGA(UnlearningMethod):
    name = "md_pga"
    description = "Multi-direction PGA: the PGA edit along k orthonormal probe directions per depth."
    paper = "arXiv:2605.01699"

    class Config(PluginConfig):
        hook: Literal["resid_post", "resid_pre", "mlp_out", "attn_out"] = Field(
            "resid_post", description="Hook kind edited at every depth (match the suite's `hook`)."
        )
        layers: list[int] | None = Field(None, description="Depths edited; None = every layer.")
        pooling: Literal["mean", "last", "max"] = Field(
            "mean", description="Pooling over positions of the activations the direction is fitted on."
        )
        l2: float = Field(1.0, gt=0, description="L2 strength of the live logistic probe (standardised features).")
        strength: float = Field(
            2.0, gt=0, description="[RECON] h' = h - strength (w.h - t) w with t the class-mean midpoint: 1 = every "
            "projection onto t (chance), 2 = each class reflected across t (overshoot: a frozen probe goes below chance)."
        )
        k: int = Field(2, ge=1, description="Directions per depth (paper: 'MD-PGA k=2'); each fitted after projecting out the previous.")

    def fit(self, model: Any, forget: Any, retain: Any, *, seed: int) -> Intervention:
        from harness_plugins.unlearning_suite.erasure import fit_probe_edits, stable_id

        c = self.config
        ident = stable_id(self.name, c, seed, forget, model)
        return fit_probe_edits(model, forget, hook=c.hook, layers=c.layers, pooling=c.pooling, directions=c.k, rounds=1, strength=c.strength, l2=c.l2, ident=ident)


@hookimpl
def register_unlearning_methods(register):
    register(MDPGA)
