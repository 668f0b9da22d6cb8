"""Unlearning method "pga": Probe-Geometry Alignment: one rank-one affine overshooting edit per depth along a live-refitted probe direction.

A thin subclass of ``harness.unlearning.methods.ProbeEditMethod``; the fitting code lives in
``harness.unlearning.erasure`` (imported inside ``fit``).
"""

from __future__ import annotations

from harness import hookimpl
from harness.unlearning.methods import ProbeEditConfig, ProbeEditMethod


class PGA(ProbeEditMethod):
    name = "pga"
    description = "Probe-Geometry Alignment: one rank-one affine overshooting edit per depth along a live-refitted probe direction."
    paper = "arXiv:2605.01699"

    class Config(ProbeEditConfig):
        pass  # own class so the schema title stays "Config"


@hookimpl
def register_unlearning_methods(register):
    register(PGA)
