"""Plugin discovery and the typed registries built from the hooks.

Discovery order: entry points of group ``harness`` (built-ins are listed there too,
exactly like third-party packages), filtered by ``HARNESS_LOAD_PLUGINS`` (allow-list of
entry-point names; set but empty = load none) and ``HARNESS_DISABLE_PLUGINS``
(block-list); then one-file plugins from ``--plugins-dir``; then ``check_pending()`` so a
misspelt hook fails at start-up naming the plugin.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import PluginLoadError, did_you_mean
from harness.protocols import METHOD_KINDS, PLUGIN_BASES, Kind, Plugin
from harness.registry import Entry, Register, Registry

ENTRY_POINT_GROUP = "harness"
OWN_DISTRIBUTION = "harness-interp"


@dataclass(frozen=True)
class PluginSource:
    """Where a loaded plugin module came from."""

    name: str
    distribution: str | None
    version: str | None
    origin: str  # "entry point", "plugins-dir <path>", "registered"


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {x.strip() for x in raw.split(",") if x.strip()}


def _load_module_from_file(path: Path) -> ModuleType:
    mod_name = f"harness_dir_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"Cannot import plugin file {path}: not a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - any import failure is reported with its cause
        sys.modules.pop(mod_name, None)
        raise PluginLoadError(
            f"Plugin file {path} failed to import: {type(e).__name__}: {e}. "
            "Fix the file or remove it from the --plugins-dir folder."
        ) from e
    return module


@dataclass
class PluginSet:
    """A plugin manager plus the provenance of each plugin it holds."""

    pm: pluggy.PluginManager
    sources: dict[str, PluginSource] = field(default_factory=dict)

    def register(self, plugin: Any, name: str, source: PluginSource) -> None:
        if self.pm.has_plugin(name):
            other = self.sources.get(name)
            raise PluginLoadError(
                f'Two plugins are named "{name}" ({other.origin if other else "?"} and {source.origin}). '
                "Rename one entry point or plugin file."
            )
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as e:
            raise PluginLoadError(f'Plugin "{name}" ({source.origin}) has an invalid hook: {e}') from None
        self.sources[name] = source


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    return pm


def discover(
    *,
    entry_points: bool = True,
    distributions: Iterable[str] | None = None,
    plugins_dirs: Sequence[Path] = (),
    extra: Sequence[tuple[str, Any]] = (),
) -> PluginSet:
    """Load plugins. ``distributions`` restricts entry points to those packages (tests use
    it to load only the built-ins); ``extra`` registers (name, module-or-object) pairs."""
    ps = PluginSet(new_plugin_manager())
    if entry_points:
        allow = _env_list("HARNESS_LOAD_PLUGINS")
        block = _env_list("HARNESS_DISABLE_PLUGINS") or set()
        only = set(distributions) if distributions is not None else None
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else None
            if only is not None and dist not in only:
                continue
            if (allow is not None and ep.name not in allow) or ep.name in block:
                continue
            try:
                obj = ep.load()
            except Exception as e:  # noqa: BLE001
                raise PluginLoadError(
                    f'Plugin "{ep.name}" (entry point {ep.value} of distribution {dist}) failed to import: '
                    f"{type(e).__name__}: {e}. Fix or uninstall {dist}, or skip it with "
                    f"HARNESS_DISABLE_PLUGINS={ep.name}."
                ) from e
            version = ep.dist.version if ep.dist else None
            ps.register(obj, ep.name, PluginSource(ep.name, dist, version, "entry point"))
    for d in plugins_dirs:
        d = Path(d)
        if not d.is_dir():
            raise PluginLoadError(f"--plugins-dir {d} is not a folder. Pass a folder of one-file plugins (*.py).")
        for path in sorted(d.glob("*.py")):
            if path.name.startswith("_"):
                continue
            module = _load_module_from_file(path)
            ps.register(module, path.stem, PluginSource(path.stem, None, None, f"plugins-dir {d}"))
    for name, obj in extra:
        ps.register(obj, name, PluginSource(name, None, None, "registered"))
    check_pending(ps)
    return ps


def check_pending(ps: PluginSet) -> None:
    """Fail when a plugin implements a hook that does not exist (e.g. a misspelling)."""
    known = list(hookspecs.HOOK_KINDS)
    for name, plugin in ps.pm.list_name_plugin():
        for attr in dir(plugin):
            impl_opts = ps.pm.parse_hookimpl_opts(plugin, attr)
            if impl_opts is not None and attr not in known:
                raise PluginLoadError(
                    f'Plugin "{name}" implements unknown hook "{attr}".{did_you_mean(attr, known)} '
                    f"Known hooks: {', '.join(known)}."
                )
    ps.pm.check_pending()  # belt and braces: pluggy's own check


class Registries:
    """One frozen :class:`Registry` per plugin kind, filled from the hooks."""

    def __init__(self, plugin_set: PluginSet) -> None:
        self.plugin_set = plugin_set
        self.by_kind: dict[str, Registry[Any]] = {k: Registry(k.replace("_", " "), b) for k, b in PLUGIN_BASES.items()}
        self.hooks_of: dict[str, list[str]] = {}
        for hook_name, kind in hookspecs.HOOK_KINDS.items():
            registry = self.by_kind[kind]
            for impl in getattr(plugin_set.pm.hook, hook_name).get_hookimpls():
                self.hooks_of.setdefault(impl.plugin_name, []).append(hook_name)
                try:
                    impl.function(register=Register(registry, origin=impl.plugin_name))
                except PluginLoadError:
                    raise
                except Exception as e:  # noqa: BLE001
                    raise PluginLoadError(
                        f'Plugin "{impl.plugin_name}" failed in hook {hook_name}: {type(e).__name__}: {e}'
                    ) from e
        for reg in self.by_kind.values():
            reg.freeze()

    def __getitem__(self, kind: Kind) -> Registry[Any]:
        return self.by_kind[kind]

    @property
    def metrics(self) -> Registry[Any]:
        return self.by_kind["metric"]

    @property
    def suites(self) -> Registry[Any]:
        return self.by_kind["suite"]

    @property
    def model_sources(self) -> Registry[Any]:
        return self.by_kind["model_source"]

    def method(self, name: str) -> type[Plugin]:
        """Find a method of any method kind by name."""
        for kind in METHOD_KINDS:
            if name in self.by_kind[kind]:
                return self.by_kind[kind].get(name)
        names = [n for k in METHOD_KINDS for n in self.by_kind[k].names()]
        from harness.errors import UnknownNameError

        raise UnknownNameError(
            f'Unknown method "{name}".{did_you_mean(name, names)} Known methods: '
            f"{', '.join(sorted(names)) or 'none registered'}. Run `harness plugins` to list them."
        )

    def all_entries(self) -> list[tuple[str, Entry[Any]]]:
        return [(kind, e) for kind, reg in self.by_kind.items() for e in reg.entries()]


_CACHED: Registries | None = None


def get_registries(plugins_dirs: Sequence[Path] = ()) -> Registries:
    """The process-wide registries (built once; ``plugins_dirs`` adds one-file plugins)."""
    global _CACHED
    if _CACHED is None or plugins_dirs:
        _CACHED = Registries(discover(plugins_dirs=plugins_dirs))
    return _CACHED


def reset() -> None:
    """Forget the process-wide registries (tests, or after installing a plugin)."""
    global _CACHED
    _CACHED = None
