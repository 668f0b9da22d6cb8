"""Unlearning method "leace": LEACE concept erasure (Belrose et al. 2023), closed form, at every depth (live).

A thin subclass of ``harness_plugins.unlearning_suite.methods.HookEditMethod``; the fitting code lives in
``harness_plugins.unlearning_suite.erasure`` (imported inside ``fit``).
"""

from __future__ import annotations

from harness import hookimpl
from harness_plugins.unlearning_suite.methods import HookEditConfig, HookEditMethod


class Leace(HookEditMethod):
    name = "leace"
    description = "LEACE concept erasure (Belrose et al. 2023), closed form, at every depth (live)."
    paper = "arXiv:2306.03819"

    class Config(HookEditConfig):
        pass  # own class so the schema title stays "Config"

    erase_fn = "fit_leace"


@hookimpl
def register_unlearning_methods(register):
    register(Leace)
