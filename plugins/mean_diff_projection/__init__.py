"""Unlearning method "mean_diff_projection": Project the class-mean difference out of every depth (live, depth by depth).

A thin subclass of :class:`harness.unlearning.methods.HookEditMethod`: :meth:`MeanDiffProjection.edit`
is the edit of one depth; :func:`harness.unlearning.erasure.fit_depthwise` fits it depth by depth.
"""

from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.unlearning.erasure import AffineEdit
from harness.unlearning.methods import HookEditConfig, HookEditMethod


class MeanDiffProjection(HookEditMethod):
    name = "mean_diff_projection"
    description = "Project the class-mean difference out of every depth (live, depth by depth)."
    paper = None

    class Config(HookEditConfig):
        pass  # own class so the schema title stays "Config"

    def edit(self, x: Any, y: Any) -> AffineEdit:
        """Project out the class-mean difference w: h <- h - ((h - mu).w) w."""
        d = x[y == 1].mean(0) - x[y == 0].mean(0)
        d = (d / d.norm().clamp_min(1e-12)).unsqueeze(0)
        return AffineEdit(U=d, V=d.clone(), t=(x.mean(0) @ d.T))


@hookimpl
def register_unlearning_methods(register):
    register(MeanDiffProjection)
