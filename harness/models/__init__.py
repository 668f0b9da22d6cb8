"""Load any Hugging Face causal LM, read and write its hook points, harvest activations.

Importing this package is cheap: torch and transformers are imported only when a function
below first needs them; most names are bound on first use (module-level ``__getattr__``).

- :func:`load_model`, :class:`LoadedModel`, :func:`model_fingerprint`, :func:`resolve_model`,
  :class:`ModelLoadError` (``harness.models.loading``)
- :func:`capture`, :func:`intervene`, :func:`run_with_cache`, :func:`list_hook_points`,
  :func:`resolve_hook_point`, :class:`HookPoint`, :class:`UnknownHookPointError`
  (``harness.models.hookpoints``)
- :class:`Replace`, :class:`Add`, :class:`ProjectOut` (``harness.models.interventions``)
- :func:`iter_token_batches`, :func:`harvest`, :func:`harvest_flat`,
  :func:`harvest_flat_with_tokens`, :func:`model_bos_id`, :class:`TokenBatch`,
  :class:`Activations` (``harness.models.harvest``)
- :class:`ActivationCache`, :func:`cached_harvest` (``harness.models.cache``)
- :class:`ActivationBuffer` (``harness.models.buffer``)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "LoadedModel": "loading",
    "ModelLoadError": "loading",
    "ResolvedModel": "loading",
    "load_model": "loading",
    "model_fingerprint": "loading",
    "resolve_model": "loading",
    "HookPoint": "hookpoints",
    "UnknownHookPointError": "hookpoints",
    "capture": "hookpoints",
    "intervene": "hookpoints",
    "list_hook_points": "hookpoints",
    "resolve_hook_point": "hookpoints",
    "run_with_cache": "hookpoints",
    "Replace": "interventions",
    "Add": "interventions",
    "ProjectOut": "interventions",
    "Activations": "harvest",
    "TokenBatch": "harvest",
    "harvest": "harvest",
    "harvest_flat": "harvest",
    "harvest_flat_with_tokens": "harvest",
    "iter_token_batches": "harvest",
    "model_bos_id": "harvest",
    "ActivationBuffer": "buffer",
    "ActivationCache": "cache",
    "cached_harvest": "cache",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    # ruff: noqa: F401
    from .buffer import ActivationBuffer
    from .cache import ActivationCache, cached_harvest
    from .harvest import (
        Activations,
        TokenBatch,
        harvest,
        harvest_flat,
        harvest_flat_with_tokens,
        iter_token_batches,
        model_bos_id,
    )
    from .hookpoints import (
        HookPoint,
        UnknownHookPointError,
        capture,
        intervene,
        list_hook_points,
        resolve_hook_point,
        run_with_cache,
    )
    from .interventions import Add, ProjectOut, Replace
    from .loading import (
        LoadedModel,
        ModelLoadError,
        ResolvedModel,
        load_model,
        model_fingerprint,
        resolve_model,
    )


# The submodule ``harvest`` and the function ``harvest`` share a name: importing the
# submodule binds the package attribute to the module, so bind the function now, after
# that import (the submodules import neither torch nor transformers at import time).
from .harvest import harvest  # noqa: E402, F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
