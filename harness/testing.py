"""pytest plugin for plugin authors (auto-registered through the ``pytest11`` entry point).

Fixtures never autoload every installed plugin: a test sees exactly the plugins it asks
for, so third-party packages in the environment cannot change its outcome.

- ``harness_registries_with(*("name", module_or_object))``: registries holding only those plugins.
- ``harness_builtin_registries``: registries of the built-in plugins only (session-scoped).
- ``harness_with_builtins(*("name", obj))``: the built-ins plus the given plugins, for one test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.plugins import OWN_DISTRIBUTION, Registries, discover


def registries_with(*plugins: tuple[str, Any], builtins: bool = False) -> Registries:
    """Fresh registries holding ``plugins`` (and the built-ins when asked)."""
    return Registries(
        discover(entry_points=builtins, distributions=[OWN_DISTRIBUTION] if builtins else None, extra=list(plugins))
    )


@pytest.fixture
def harness_registries_with() -> Callable[..., Registries]:
    return lambda *plugins: registries_with(*plugins)


@pytest.fixture
def harness_with_builtins() -> Callable[..., Registries]:
    return lambda *plugins: registries_with(*plugins, builtins=True)


@pytest.fixture(scope="session")
def harness_builtin_registries() -> Registries:
    return registries_with(builtins=True)
