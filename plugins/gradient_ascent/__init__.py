"""Unlearning method "gradient_ascent": Behavioural unlearning: gradient ascent on the memorised suffixes plus a retain-text loss (a weight edit).

Fits on the suite's ``UnlearningData`` (``harness_plugins.unlearning_suite.data``); the code
lives in ``harness_plugins.unlearning_suite.erasure`` (imported inside :meth:`fit`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.protocols import Intervention, UnlearningMethod


class GradientAscent(UnlearningMethod):
    name = "gradient_ascent"
    description = "Behavioural unlearning: gradient ascent on the memorised suffixes plus a retain-text loss (a weight edit)."
    paper = None

    class Config(PluginConfig):
        steps: int = Field(10, ge=1, description="Full-batch Adam steps.")
        lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
        retain_weight: float = Field(1.0, ge=0, description="Weight of the retain-text cross-entropy term.")

    def fit(self, model: Any, forget: Any, retain: Any, *, seed: int) -> Intervention:
        from harness_plugins.unlearning_suite.erasure import fit_gradient_ascent, stable_id

        c = self.config
        ident = stable_id(self.name, c, seed, forget, model)
        return fit_gradient_ascent(model, forget, retain, steps=c.steps, lr=c.lr, retain_weight=c.retain_weight, seed=seed, ident=ident)


@hookimpl
def register_unlearning_methods(register):
    register(GradientAscent)
