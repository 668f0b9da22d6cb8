"""Unlearning method "mean_diff_projection": Project the class-mean difference out of every depth (live, depth by depth).

A thin subclass of ``harness_plugins.unlearning_suite.methods.HookEditMethod``; the fitting code lives in
``harness_plugins.unlearning_suite.erasure`` (imported inside ``fit``).
"""

from __future__ import annotations

from harness import hookimpl
from harness_plugins.unlearning_suite.methods import HookEditConfig, HookEditMethod


class MeanDiffProjection(HookEditMethod):
    name = "mean_diff_projection"
    description = "Project the class-mean difference out of every depth (live, depth by depth)."
    paper = None

    class Config(HookEditConfig):
        pass  # own class so the schema title stays "Config"

    erase_fn = "fit_mean_diff"


@hookimpl
def register_unlearning_methods(register):
    register(MeanDiffProjection)
