"""Unlearning method "mean_diff_projection": Project the class-mean difference out of every depth (live, depth by depth).

Fits on the suite's ``UnlearningData`` (``harness_plugins.unlearning_suite.data``); the code
lives in ``harness_plugins.unlearning_suite.erasure`` (imported inside :meth:`fit`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.protocols import Intervention, UnlearningMethod


class MeanDiffProjection(UnlearningMethod):
    name = "mean_diff_projection"
    description = "Project the class-mean difference out of every depth (live, depth by depth)."
    paper = None

    class Config(PluginConfig):
        hook: Literal["resid_post", "resid_pre", "mlp_out", "attn_out"] = Field(
            "resid_post", description="Hook kind edited at every depth (match the suite's `hook`)."
        )
        layers: list[int] | None = Field(None, description="Depths edited; None = every layer.")
        pooling: Literal["mean", "last", "max"] = Field(
            "mean", description="Pooling over positions of the activations the direction is fitted on."
        )

    def fit(self, model: Any, forget: Any, retain: Any, *, seed: int) -> Intervention:
        from harness_plugins.unlearning_suite.erasure import fit_mean_diff, stable_id

        c = self.config
        ident = stable_id(self.name, c, seed, forget, model)
        return fit_mean_diff(model, forget, hook=c.hook, layers=c.layers, pooling=c.pooling, ident=ident)


@hookimpl
def register_unlearning_methods(register):
    register(MeanDiffProjection)
