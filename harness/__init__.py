"""harness: an open benchmarking harness for methods that read, edit or retrain the insides of language models."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Decorator for plugin hook implementations (``@hookimpl def register_metrics(register): ...``).
hookimpl = pluggy.HookimplMarker("harness")

__all__ = ["__version__", "hookimpl"]
