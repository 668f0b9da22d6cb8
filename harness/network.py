"""Network access of a run: the Hugging Face offline variables and how to lift them.

`harness run` switches the Hugging Face libraries to offline mode when every model of the
spec is local (the zoo, or a folder on disk), so nothing reaches for the hub unasked
(``harness.cli._offline_unless_asked``). The ask is ``harness run --allow-network`` or the
environment variable ``HARNESS_ALLOW_NETWORK=1`` (or a hub model name in the spec). When
something that needs the hub - a standard lm-eval task's data set, a Hugging Face data set -
cannot load while offline mode is on, its error appends :func:`network_hint`, which names
both ways. Only ``os`` is imported here: ``harness --help`` stays light.
"""

from __future__ import annotations

import os

__all__ = ["ALLOW_NETWORK_FLAG", "ALLOW_NETWORK_VAR", "OFFLINE_VARS", "network_hint", "offline_vars_set"]

#: Environment variables of the Hugging Face libraries that switch off network access.
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
#: ``HARNESS_ALLOW_NETWORK=1``: `harness run` leaves the offline variables alone.
ALLOW_NETWORK_VAR = "HARNESS_ALLOW_NETWORK"
#: The `harness run` flag that does the same for one run.
ALLOW_NETWORK_FLAG = "--allow-network"


def _on(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def offline_vars_set() -> list[str]:
    """The offline variables that are on now (read at call time), e.g. ``["HF_HUB_OFFLINE"]``."""
    return [v for v in OFFLINE_VARS if _on(os.environ.get(v))]


def network_hint() -> str:
    """How to allow network access, naming the offline variables that are on ("" when none is).

    For the error of anything that needs the Hugging Face Hub and failed to load."""
    on = offline_vars_set()
    if not on:
        return ""
    shown = ", ".join(f"{v}=1" for v in on)
    return (
        f"Network access is off ({shown}): `harness run` sets offline mode when every model is local. "
        f"To allow it: `harness run {ALLOW_NETWORK_FLAG}`, or set {ALLOW_NETWORK_VAR}=1 in the environment "
        f"(and unset {', '.join(on)} if you exported them yourself); or fill the Hugging Face datasets cache "
        "(HF_DATASETS_CACHE) where there is network."
    )
