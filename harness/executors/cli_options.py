"""`harness run`'s "where cells run" options, derived from the registered executors.

Every field of an executor's ``Config`` is a ``harness run`` flag: the one it declares with
``Field(..., json_schema_extra={"cli": "--my-flag"})``, or ``--<executor>-<field>`` (``_``
as ``-``), e.g. ``--ray-address`` for the ``address`` field of ``ray``. ``"cli": False``
keeps a field out of the command line (spec only), and so does a field that is not a
scalar (str, int, float, bool, a path or a Literal). ``"metavar"`` names the value in
``--help``. A flag several executors declare (``--cell-timeout`` and ``--max-retries`` of
:class:`harness.executors.base.ExecutorConfig`) is one option serving each of them; a flag
of another executor than the chosen one is an error naming both.

The executor of a run is the spec's ``executor:`` (name and config), else ``local``;
``--executor`` and the flags override it.
"""

from __future__ import annotations

import argparse
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

from harness.errors import PluginLoadError, SpecError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from pydantic.fields import FieldInfo

    from harness.config import ComponentSpec
    from harness.executors.base import Executor
    from harness.plugins import Registries
    from harness.registry import Registry

#: The executor of a run that names none (neither ``--executor`` nor the spec's ``executor:``).
DEFAULT_EXECUTOR = "local"
_SCALARS = (str, int, float, bool, Path)


@dataclass
class ExecutorFlag:
    """One ``harness run`` option and the executor config fields it sets."""

    flag: str
    dest: str
    kind: Any  # str, int, float, bool or a tuple of Literal choices
    metavar: str
    help: str
    #: executor name -> field name of its Config
    fields: dict[str, str] = field(default_factory=dict)
    #: executor name -> the field's default (shown in --help when they differ)
    defaults: dict[str, Any] = field(default_factory=dict)


def _value_kind(annotation: Any) -> Any:
    """The scalar a flag parses (None if the field cannot be a flag)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _value_kind(args[0]) if len(args) == 1 else None
    if origin is Literal:
        return tuple(get_args(annotation))
    if annotation in _SCALARS:
        return str if annotation is Path else annotation
    return None


def _flag_of(executor: str, fname: str, info: FieldInfo) -> str | None:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "cli" in extra:
        return extra["cli"] or None  # type: ignore[return-value]
    if _value_kind(info.annotation) is None:
        return None
    return f"--{executor}-{fname.replace('_', '-')}"


def executor_flags(registries: Registries) -> dict[str, ExecutorFlag]:
    """flag -> :class:`ExecutorFlag`, over every registered executor's Config (in name order)."""
    flags: dict[str, ExecutorFlag] = {}
    for entry in registries.executors.entries():
        cls = entry.obj
        for fname, info in cls.Config.model_fields.items():
            flag = _flag_of(cls.name, fname, info)
            if flag is None:
                continue
            kind = _value_kind(info.annotation)
            if kind is None or not flag.startswith("--"):
                raise PluginLoadError(
                    f'Executor "{cls.name}" ({entry.origin}) declares the flag {flag!r} for its config field '
                    f'"{fname}", which {"is not a --long-option" if kind else "is not a scalar"}. Declare '
                    'json_schema_extra={"cli": "--name"} on a str, int, float, bool, path or Literal field, '
                    'or {"cli": False} to keep the field out of the command line.'
                )
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            spec = flags.get(flag)
            if spec is None:
                name = flag[2:].replace("-", "_")
                metavar = str(extra.get("metavar") or name.upper())
                spec = flags[flag] = ExecutorFlag(flag, f"executor_option_{name}", kind, metavar,
                                                  info.description or "")
            elif spec.kind != kind:
                first = next(iter(spec.fields))
                raise PluginLoadError(
                    f'Executor "{cls.name}" ({entry.origin}) declares {flag} for its field "{fname}" with another '
                    f'type than executor "{first}" does. Give the field its own flag.'
                )
            spec.fields[cls.name] = fname
            spec.defaults[cls.name] = info.get_default(call_default_factory=True)
    return flags


def _help(spec: ExecutorFlag, all_names: list[str]) -> str:
    owners = list(spec.fields)
    text = spec.help if owners == all_names else f"{', '.join(owners)}: {spec.help}"
    shown = {n: d for n, d in spec.defaults.items() if d is not None and d is not False}
    if len(set(map(repr, shown.values()))) > 1:  # e.g. --max-retries: local 1, ray 2
        text += " Default: " + ", ".join(f"{n} {d}" for n, d in shown.items()) + "."
    elif shown:
        text += f" Default: {next(iter(shown.values()))}."
    return text.replace("%", "%%")


def add_executor_arguments(group: argparse._ArgumentGroup, registries: Registries) -> None:
    """Add ``--executor`` (choices: the registered executors) and every executor's flags to ``group``."""
    names = registries.executors.names()
    described = "; ".join(
        f"{n}{' (default)' if n == DEFAULT_EXECUTOR else ''}: {registries.executors.get(n).description}"
        for n in names
    )
    group.add_argument("--executor", choices=names, default=None,
                       help=f"Where cells run (default: the spec's executor, else {DEFAULT_EXECUTOR}). {described}.")
    for spec in executor_flags(registries).values():
        kwargs: dict[str, Any] = {"dest": spec.dest, "default": None, "help": _help(spec, names)}
        if spec.kind is bool:  # a default-True switch also gets --no-...
            kwargs["action"] = argparse.BooleanOptionalAction if True in spec.defaults.values() else "store_true"
        elif isinstance(spec.kind, tuple):
            kwargs.update(choices=list(spec.kind), type=type(spec.kind[0]))
        else:
            kwargs.update(type=spec.kind, metavar=spec.metavar)
        try:
            group.add_argument(spec.flag, **kwargs)
        except argparse.ArgumentError as e:
            raise PluginLoadError(
                f"Executor {' / '.join(spec.fields)} declares the flag {spec.flag}, which `harness run` already "
                f'has ({e}). Declare another one with json_schema_extra={{"cli": "--..."}}.'
            ) from None


def executor_from_args(args: argparse.Namespace, registries: Registries,
                       spec_executor: ComponentSpec | None = None) -> Executor:
    """The executor of a run: ``--executor`` (else the spec's ``executor:``, else local), its
    config from the spec (when it names the same executor) overridden by the flags given.

    A flag of another executor is an error naming both; the config is validated against
    the executor's ``Config`` (errors name ``executor.config.<field>``).
    """
    name = getattr(args, "executor", None) or (spec_executor.name if spec_executor else DEFAULT_EXECUTOR)
    cls = executor_class(name, registries.executors)
    config: dict[str, Any] = dict(spec_executor.config) if spec_executor and spec_executor.name == name else {}
    for spec in executor_flags(registries).values():
        value = getattr(args, spec.dest, None)
        if value is None:
            continue
        if name not in spec.fields:
            owners = " / ".join(spec.fields)
            raise SpecError(f"{spec.flag} only applies to --executor {owners} (this run uses --executor {name}).")
        config[spec.fields[name]] = value
    return cls(cls.parse_config(config, at="executor.config"))


def executor_class(name: str, reg: Registry[Executor]) -> type[Executor]:
    """The executor called ``name`` in ``reg``; an unknown name is an error listing the known ones."""
    if name in reg:
        return reg.get(name)
    if not len(reg):
        raise SpecError(
            f'No executor is registered, so none can run the cells (asked for "{name}"). The built-in ones come '
            'with the "executors" plugin: check HARNESS_LOAD_PLUGINS / HARNESS_DISABLE_PLUGINS.'
        )
    raise SpecError(f'Unknown executor "{name}".{did_you_mean(name, reg.names())} '
                    f"Choose one of {', '.join(reg.names())} (`harness plugins` lists them).")
