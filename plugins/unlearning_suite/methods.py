"""Shared bases of the built-in activation-edit unlearning methods (``pga``, ``md_pga``,
``pga_adversarial``, ``leace``, ``mean_diff_projection``).

Each of those plugins is a thin subclass: it names itself, subclasses one of the configs
below (adding its own fields) and says how many probe directions / rounds it uses or which
closed-form edit it fits. The fitting code lives in :mod:`.erasure` (imported inside ``fit``,
so importing a plugin stays light).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from harness.config import PluginConfig
from harness.protocols import Intervention, UnlearningMethod

from .data import Hook, Pooling


class HookEditConfig(PluginConfig):
    hook: Hook = Field("resid_post", description="Hook kind edited at every depth (match the suite's `hook`).")
    layers: list[int] | None = Field(None, description="Depths edited; None = every layer.")
    pooling: Pooling = Field(
        "suffix_mean", description="Pooling over positions of the activations the edit is fitted on (match the suite's "
        "`pooling`; see pooled_activations); the edit itself applies at every position.",
    )


class ProbeEditConfig(HookEditConfig):
    l2: float = Field(1.0, gt=0, description="L2 strength of the live logistic probe (standardised features).")
    strength: float = Field(
        2.0, gt=0, description="[RECON] h' = h - strength (w.h - t) w with t the class-mean midpoint: 1 = every "
        "projection onto t (chance), 2 = each class reflected across t (overshoot: a frozen probe goes below chance)."
    )


class HookEditMethod(UnlearningMethod):
    """Base of the closed-form per-depth edits: ``fit`` hashes the inputs into a stable id and
    calls :meth:`fit_edits`, by default the function ``erase_fn`` of :mod:`.erasure` (e.g.
    ``fit_leace``) with the config's hook, layers and pooling."""

    Config = HookEditConfig
    #: Name of the :mod:`.erasure` function fitting the edit (closed-form methods set it).
    erase_fn: ClassVar[str]

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """Edited depths must be layers of the model."""
        from harness.validation import layer_problems

        return layer_problems("layers", config.layers, shape)

    def fit(self, model: Any, forget: Any, retain: Any, *, seed: int) -> Intervention:
        from .erasure import stable_id

        return self.fit_edits(model, forget, ident=stable_id(self.name, self.config, seed, forget, model))

    def fit_edits(self, model: Any, forget: Any, *, ident: str) -> Intervention:
        """The edit fitted on ``forget`` (labels 1 = erase), with the given stable ``ident``."""
        from . import erasure

        c = self.config
        return getattr(erasure, self.erase_fn)(model, forget, hook=c.hook, layers=c.layers, pooling=c.pooling, ident=ident)


class ProbeEditMethod(HookEditMethod):
    """Base of the PGA family: live-refitted probe directions, overshooting affine edit
    (:func:`.erasure.fit_probe_edits`). Subclasses override :meth:`directions` / :meth:`rounds`."""

    Config = ProbeEditConfig

    def directions(self) -> int:
        """Orthonormal probe directions per round and depth."""
        return 1

    def rounds(self) -> int:
        """Edit / re-fit rounds per depth."""
        return 1

    def fit_edits(self, model: Any, forget: Any, *, ident: str) -> Intervention:
        from .erasure import fit_probe_edits

        c = self.config
        return fit_probe_edits(
            model, forget, hook=c.hook, layers=c.layers, pooling=c.pooling, directions=self.directions(),
            rounds=self.rounds(), strength=c.strength, l2=c.l2, ident=ident,
        )
