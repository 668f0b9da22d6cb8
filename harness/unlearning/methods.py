"""Bases of activation-edit unlearning methods (built in: ``pga``, ``md_pga``,
``pga_adversarial``, ``leace``, ``mean_diff_projection``; a third party's can subclass them too).

Each of those plugins is a thin subclass: it names itself, subclasses one of the configs
below (adding its own fields) and says how many probe directions / rounds it uses
(:class:`ProbeEditMethod`) or which closed-form edit it fits at each depth
(:meth:`HookEditMethod.edit`). The shared fitting code lives in :mod:`.erasure` (imported
inside ``fit``, so importing a plugin stays light).
"""

from __future__ import annotations

from typing import Any

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
    calls :meth:`fit_edits`, by default :func:`.erasure.fit_depthwise` with the config's hook,
    layers and pooling and the subclass's :meth:`edit`."""

    Config = HookEditConfig

    @classmethod
    def check(cls, config: PluginConfig, shape: Any) -> list[str]:
        """Edited depths must be layers of the model."""
        from harness.validation import layer_problems

        return layer_problems("layers", config.layers, shape)

    def fit(self, model: Any, forget: Any, retain: Any, *, seed: int) -> Intervention:
        from .erasure import stable_id

        return self.fit_edits(model, forget, ident=stable_id(self.name, self.config, seed, forget, model))

    def edit(self, x: Any, y: Any) -> Any:
        """The :class:`~.erasure.AffineEdit` of one depth, fitted on pooled activations ``x``
        ``[n, d]`` with 0/1 labels ``y`` (1 = erase); closed-form methods override it."""
        raise NotImplementedError(f"{type(self).__name__} must override edit(x, y) or fit_edits(...).")

    def fit_edits(self, model: Any, forget: Any, *, ident: str) -> Intervention:
        """The edit fitted on ``forget`` (labels 1 = erase), with the given stable ``ident``."""
        from .erasure import fit_depthwise

        c = self.config
        return fit_depthwise(model, forget, self.edit, hook=c.hook, layers=c.layers, pooling=c.pooling, ident=ident)


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
