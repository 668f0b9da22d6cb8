"""Error types of harness. Every error says what was wrong, where, and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Base class: an error the CLI reports as one clear message (no traceback)."""


class RegistryError(HarnessError):
    """A plugin registered something invalid, or twice."""


class UnknownNameError(HarnessError, KeyError):
    """A name (plugin, metric, suite, model...) that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class PluginLoadError(HarnessError):
    """A plugin module failed to import or declares an unknown hook."""


class SpecError(HarnessError):
    """A run spec or plugin config failed validation."""


class StoreError(HarnessError):
    """A run record could not be read or written."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean "x"?' for the closest of ``choices``, or '' when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f' Did you mean "{close[0]}"?' if close else ""
