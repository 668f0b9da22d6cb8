"""Typed registries: one per plugin kind, keyed by each class's ``name``.

A registry refuses duplicates (naming both origins), answers unknown names with a
"did you mean", and is frozen once all plugins have been loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from harness.errors import RegistryError, UnknownNameError, did_you_mean

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]*$")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered class and the plugin it came from."""

    name: str
    obj: type[T]
    origin: str


class Registry(Generic[T]):
    """A name -> class mapping for one plugin kind.

    ``base`` is the class every entry must subclass; ``kind`` is the human name used in
    error messages (e.g. "metric").
    """

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Entry[T]] = {}
        self._frozen = False

    # -- registration -------------------------------------------------------------
    def add(self, obj: type[T], origin: str) -> type[T]:
        """Register ``obj`` (a class) under ``obj.name``; ``origin`` names the plugin."""
        if self._frozen:
            raise RegistryError(
                f"The {self.kind} registry is frozen: {origin} tried to register {obj!r} after "
                "plugins were loaded. Register from a hook implementation instead."
            )
        if not isinstance(obj, type) or not issubclass(obj, self.base):
            raise RegistryError(
                f"Plugin {origin} registered {obj!r} as a {self.kind}, but it is not a subclass "
                f"of {self.base.__module__}.{self.base.__qualname__}. Subclass it."
            )
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistryError(
                f"Plugin {origin} registered {obj.__qualname__} as a {self.kind} with name "
                f"{name!r}. Set a class attribute `name` of lowercase letters, digits, '_' or '-', "
                "starting with a letter."
            )
        if name in self._entries:
            first = self._entries[name]
            raise RegistryError(
                f'Two plugins register a {self.kind} named "{name}": {first.origin} '
                f"({first.obj.__module__}.{first.obj.__qualname__}) and {origin} "
                f"({obj.__module__}.{obj.__qualname__}). Rename one, or disable one with "
                "HARNESS_DISABLE_PLUGINS."
            )
        self._entries[name] = Entry(name=name, obj=obj, origin=origin)
        return obj

    def freeze(self) -> None:
        self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    # -- lookup ------------------------------------------------------------------
    def get(self, name: str) -> type[T]:
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none registered"
            raise UnknownNameError(
                f'Unknown {self.kind} "{name}".{did_you_mean(name, self._entries)} '
                f"Known {self.kind}s: {known}. Run `harness plugins` to list them."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[k] for k in sorted(self._entries)]

    def names(self) -> list[str]:
        return sorted(self._entries)


class Register(Generic[T]):
    """The typed object a hook receives: call it with a class to register that class.

    ``register(MyMetric)`` registers ``MyMetric`` under ``MyMetric.name``; it returns the
    class, so it also works as a decorator.
    """

    def __init__(self, registry: Registry[T], origin: str) -> None:
        self._registry = registry
        self.origin = origin

    def __call__(self, obj: type[T]) -> type[T]:
        return self._registry.add(obj, self.origin)

    @property
    def kind(self) -> str:
        return self._registry.kind
