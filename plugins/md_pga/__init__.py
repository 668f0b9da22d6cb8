"""Unlearning method "md_pga": Multi-direction PGA: the PGA edit along k orthonormal probe directions per depth.

A thin subclass of ``harness.unlearning.methods.ProbeEditMethod``; the fitting code lives in
``harness.unlearning.erasure`` (imported inside ``fit``).
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.unlearning.methods import ProbeEditConfig, ProbeEditMethod


class MDPGA(ProbeEditMethod):
    name = "md_pga"
    description = "Multi-direction PGA: the PGA edit along k orthonormal probe directions per depth."
    paper = "arXiv:2605.01699"

    class Config(ProbeEditConfig):
        k: int = Field(2, ge=1, description="Directions per depth (paper: 'MD-PGA k=2'); each fitted after projecting out the previous.")

    def directions(self) -> int:
        return self.config.k


@hookimpl
def register_unlearning_methods(register):
    register(MDPGA)
