"""Unlearning method "pga_adversarial": Adversarial PGA: per depth, edit, re-fit a fresh probe on the edited activations, edit again (n rounds).

A thin subclass of ``harness.unlearning.methods.ProbeEditMethod``; the fitting code lives in
``harness.unlearning.erasure`` (imported inside ``fit``).
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.unlearning.methods import ProbeEditConfig, ProbeEditMethod


class AdversarialPGA(ProbeEditMethod):
    name = "pga_adversarial"
    description = "Adversarial PGA: per depth, edit, re-fit a fresh probe on the edited activations, edit again (n rounds)."
    paper = "arXiv:2605.01699"

    class Config(ProbeEditConfig):
        rounds: int = Field(3, ge=1, description="Edit / re-fit rounds per depth (each new direction orthogonal to the earlier ones).")

    def rounds(self) -> int:
        return self.config.rounds


@hookimpl
def register_unlearning_methods(register):
    register(AdversarialPGA)
