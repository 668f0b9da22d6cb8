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

from harness.errors import PluginLoadError, did_you_mean
from harness.kinds import kinds, method_kinds
from harness.protocols import Kind, Plugin
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


def spec_modules() -> list[ModuleType]:
    """The modules holding hookspecs: ``harness.hookspecs`` and any other named by the kinds table."""
    names = ["harness.hookspecs", *(k.spec_module for k in kinds())]
    return [importlib.import_module(n) for n in dict.fromkeys(names)]


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("harness")
    for module in spec_modules():
        pm.add_hookspecs(module)
    return pm


def known_hooks(pm: pluggy.PluginManager) -> list[str]:
    """Names of every hook with a spec (read through pluggy's public ``parse_hookspec_opts``)."""
    return sorted({a for m in spec_modules() for a in dir(m) if pm.parse_hookspec_opts(m, a) is not None})


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
    known = known_hooks(ps.pm)
    for name, plugin in ps.pm.list_name_plugin():
        for attr in dir(plugin):
            impl_opts = ps.pm.parse_hookimpl_opts(plugin, attr)
            if impl_opts is not None and attr not in known:
                raise PluginLoadError(
                    f'Plugin "{name}" implements unknown hook "{attr}".{did_you_mean(attr, known)} '
                    f"Known hooks: {', '.join(known)}."
                )
    ps.pm.check_pending()  # belt and braces: pluggy's own check


class _Origins:
    """Which plugin a registration or an error comes from, when a hook is called once for all.

    The hook implementations of the call are known (``get_hookimpls``): a registration is
    attributed to the implementation found on the stack above ``register(...)``, an error to
    the implementation found in its traceback.
    """

    def __init__(self, impls: list[Any]) -> None:
        self.codes = {impl.function.__code__: impl.plugin_name for impl in impls}

    def of_call(self, depth: int = 2) -> str:
        frame = sys._getframe(depth)  # the caller of register(...) / add_parser(...)
        while frame is not None:
            if frame.f_code in self.codes:
                return self.codes[frame.f_code]
            frame = frame.f_back
        return "unknown plugin"

    def of_error(self, e: BaseException) -> str | None:
        import traceback

        owner = None
        for frame, _ in traceback.walk_tb(e.__traceback__):
            owner = self.codes.get(frame.f_code, owner)
        return owner


class _AttributedRegister(Register[Any]):
    """The register object of one hook call: each registration names the plugin that made it."""

    def __init__(self, registry: Registry[Any], origins: _Origins) -> None:
        super().__init__(registry, origin="")
        self._origins = origins

    def __call__(self, obj: type[Any]) -> type[Any]:
        return self._registry.add(obj, self._origins.of_call())


class Registries:
    """One frozen :class:`Registry` per plugin kind (the kinds table), filled from the hooks.

    Each hook is called once through ``pm.hook`` (pluggy's ordering and hook wrappers apply).
    """

    def __init__(self, plugin_set: PluginSet) -> None:
        self.plugin_set = plugin_set
        pm = plugin_set.pm
        self.by_kind: dict[str, Registry[Any]] = {k.kind: Registry(k.label, k.base_class()) for k in kinds()}
        self.hooks_of: dict[str, list[str]] = {}
        self._identities: dict[str, tuple[str, str] | None] = {}
        for hook_name in known_hooks(pm):
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                self.hooks_of.setdefault(impl.plugin_name, []).append(hook_name)
        for spec in kinds():
            caller = getattr(pm.hook, spec.hook)
            origins = _Origins(caller.get_hookimpls())
            try:
                caller(register=_AttributedRegister(self.by_kind[spec.kind], origins))
            except PluginLoadError:
                raise
            except Exception as e:  # noqa: BLE001
                who = origins.of_error(e) or "?"
                raise PluginLoadError(f'Plugin "{who}" failed in hook {spec.hook}: {type(e).__name__}: {e}') from e
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

    @property
    def executors(self) -> Registry[Any]:
        return self.by_kind["executor"]

    def method(self, name: str) -> type[Plugin]:
        """Find a method of any method kind by name."""
        for kind in method_kinds():
            if name in self.by_kind[kind]:
                return self.by_kind[kind].get(name)
        names = [n for k in method_kinds() for n in self.by_kind[k].names()]
        from harness.errors import UnknownNameError

        raise UnknownNameError(
            f'Unknown method "{name}".{did_you_mean(name, names)} Known methods: '
            f"{', '.join(sorted(names)) or 'none registered'}. Run `harness plugins` to list them."
        )

    def plugin_identity(self, origin: str) -> tuple[str, str] | None:
        """``(name, version)`` identifying the code of plugin ``origin`` in cell keys, or None for the
        built-ins (harness's own distribution, versioned by its suites). A distribution gives
        ``(distribution, version)``; a one-file plugin, or a module registered in-process,
        ``("file:<file name>", sha256 of its source)``. Worked out once per plugin (the registries
        are frozen, so a file is hashed once, not once per planned cell)."""
        if origin not in self._identities:
            self._identities[origin] = self._identify(origin)
        return self._identities[origin]

    def _identify(self, origin: str) -> tuple[str, str] | None:
        source = self.plugin_set.sources.get(origin)
        if source is None or source.distribution == OWN_DISTRIBUTION:
            return None
        if source.distribution:
            return source.distribution, source.version or "unknown"
        obj = self.plugin_set.pm.get_plugin(origin)
        path = getattr(obj, "__file__", None) or getattr(sys.modules.get(getattr(obj, "__module__", "")), "__file__", None)
        if not path:
            return None
        import hashlib

        return f"file:{Path(path).name}", "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]

    def cell_plugins(self, *classes: type[Any] | None) -> dict[str, str]:
        """The third-party plugins taking part in a cell: those of ``classes`` (suite, method, model
        source) and every third-party metric plugin (suites compute every registered metric of
        their scopes, so any of them may add a column)."""
        origins: list[str] = []
        for kind, entry in self.all_entries():
            if any(entry.obj is c for c in classes if c is not None) or kind == "metric":
                origins.append(entry.origin)
        ids = (self.plugin_identity(o) for o in dict.fromkeys(origins))
        return dict(sorted(i for i in ids if i is not None))

    def all_entries(self) -> list[tuple[str, Entry[Any]]]:
        return [(kind, e) for kind, reg in self.by_kind.items() for e in reg.entries()]

    def add_commands(self, commands: Any) -> dict[str, str]:
        """Let plugins add ``harness`` subcommands to ``commands`` (argparse sub-parsers).

        Returns command name -> plugin. A name already taken (by a built-in command or
        another plugin) is refused with both named.
        """
        pm = self.plugin_set.pm
        added: dict[str, str] = {}
        for impl in pm.hook.register_commands.get_hookimpls():
            self.hooks_of.setdefault(impl.plugin_name, [])
        caller = pm.hook.register_commands
        origins = _Origins(caller.get_hookimpls())

        class _Guarded:
            """Forwards to ``commands``; refuses a name in use, naming its owner."""

            def __getattr__(self, attr: str) -> Any:
                return getattr(commands, attr)

            def add_parser(self, name: str, **kwargs: Any) -> Any:
                who = origins.of_call()
                if name in commands.choices:
                    owner = added.get(name, "harness (built-in)")
                    raise PluginLoadError(
                        f'Plugin "{who}" adds command "{name}", which {owner} already provides. Rename the command.'
                    )
                added[name] = who
                return commands.add_parser(name, **kwargs)

        try:
            caller(commands=_Guarded())
        except PluginLoadError:
            raise
        except Exception as e:  # noqa: BLE001
            who = origins.of_error(e) or "?"
            raise PluginLoadError(f'Plugin "{who}" failed in hook register_commands: {type(e).__name__}: {e}') from e
        return added


_CACHED: Registries | None = None
_CACHED_DIRS: tuple[str, ...] = ()


def get_registries(plugins_dirs: Sequence[Path] = ()) -> Registries:
    """The process-wide registries (built once per set of ``plugins_dirs``, which adds one-file plugins)."""
    global _CACHED, _CACHED_DIRS
    dirs = tuple(str(Path(d).resolve()) for d in plugins_dirs)
    if _CACHED is None or dirs != _CACHED_DIRS:
        _CACHED, _CACHED_DIRS = Registries(discover(plugins_dirs=plugins_dirs)), dirs
    return _CACHED


def current_registries() -> Registries:
    """The process-wide registries as last built (with whatever ``plugins_dirs`` the run gave), or the
    default ones when none were built yet: for code below the runner that is handed no registries
    (e.g. opening a dataset by name) and must see the plugins the run loaded."""
    return _CACHED if _CACHED is not None else get_registries()


def reset() -> None:
    """Forget the process-wide registries (tests, or after installing a plugin)."""
    global _CACHED, _CACHED_DIRS
    _CACHED, _CACHED_DIRS = None, ()
