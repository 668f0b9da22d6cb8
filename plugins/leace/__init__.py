"""Unlearning method "leace": LEACE concept erasure (Belrose et al. 2023), closed form, at every depth (live).

Fits on the suite's ``UnlearningData`` (``harness_plugins.unlearning_suite.data``); the code
lives in ``harness_plugins.unlearning_suite.erasure`` (imported inside :meth:`fit`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig
from harness.protocols import Intervention, UnlearningMethod


class Leace(UnlearningMethod):
    name = "leace"
    description = "LEACE concept erasure (Belrose et al. 2023), closed form, at every depth (live)."
    paper = "arXiv:2306.03819"

    class Config(PluginConfig):
        hook: Literal["resid_post", "resid_pre", "mlp_out", "attn_out"] = Field(
            "resid_post", description="Hook kind edited at every depth (match the suite's `hook`)."
        )
        layers: list[int] | None = Field(None, description="Depths edited; None = every layer.")
        pooling: Literal["mean", "last", "max"] = Field(
            "mean", description="Pooling over positions of the activations the direction is fitted on."
        )

    def fit(self, model: Any, forget: Any, retain: Any, *, seed: int) -> Intervention:
        from harness_plugins.unlearning_suite.erasure import fit_leace, stable_id

        c = self.config
        ident = stable_id(self.name, c, seed, forget, model)
        return fit_leace(model, forget, hook=c.hook, layers=c.layers, pooling=c.pooling, ident=ident)


@hookimpl
def register_unlearning_methods(register):
    register(Leace)
