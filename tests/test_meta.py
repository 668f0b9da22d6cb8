"""Tests derived from the live hooks and registries."""

import inspect

import pytest

from harness import hookspecs
from harness.kinds import get_kind, hook_kinds
from harness.testing import registries_with

HOOKS = sorted(hook_kinds())
#: Hooks that do not fill a registry of the kinds table.
OTHER_HOOKS = {"register_commands"}


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_documented_and_delivers_to_its_registry(hook):
    spec = getattr(hookspecs, hook)
    assert inspect.getdoc(spec), f"{hook} needs a docstring"
    assert list(inspect.signature(spec).parameters) == ["register"]
    kind = hook_kinds()[hook]
    base = get_kind(kind).base_class()
    cls = type(f"Probe_{kind}", (base,), {"name": f"probe_{kind}", "__module__": __name__})

    from harness import hookimpl

    plugin = type("P", (), {hook: staticmethod(hookimpl(lambda register: register(cls)))})
    regs = registries_with(("probe", plugin))
    assert regs[kind].get(f"probe_{kind}") is cls
    assert regs[kind].entry(f"probe_{kind}").origin == "probe"
    assert regs.hooks_of["probe"] == [hook]


def test_hook_table_matches_module():
    declared = {n for n, f in vars(hookspecs).items() if n.startswith("register_") and callable(f)}
    assert declared == set(HOOKS) | OTHER_HOOKS


def _builtin_entries():
    regs = registries_with(builtins=True)
    return [pytest.param(kind, e.obj, id=f"{kind}:{e.name}") for kind, e in regs.all_entries()]


@pytest.mark.parametrize("kind,cls", _builtin_entries())
def test_builtin_config_round_trips(kind, cls):
    # a required field (a local data set's path) is the only thing a default config lacks
    required = {k: "x" for k, f in cls.Config.model_fields.items() if f.is_required() and f.annotation is str}
    cfg = cls.Config(**required)
    assert type(cfg).model_config.get("extra") == "forbid", f"{cls.name}: Config must forbid extra keys"
    assert cls.Config.model_validate_json(cfg.model_dump_json()) == cfg
    for fname, field in cls.Config.model_fields.items():
        assert field.description, f"{cls.name}.Config.{fname} needs a description"
    assert cls.description, f"{cls.name} needs a description"


@pytest.mark.parametrize("kind,cls", _builtin_entries())
def test_builtin_metric_declarations(kind, cls):
    if kind != "metric":
        pytest.skip("metrics only")
    assert isinstance(cls.higher_is_better, bool)
    assert cls.scope in {"sae", "model", "generations", "intervention"}
