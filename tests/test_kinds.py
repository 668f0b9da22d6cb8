"""The kinds table drives everything that lists kinds; hooks are called through pluggy;
plugins add `harness` subcommands through register_commands."""

import json
import sys
import textwrap

import pytest

from harness import hookimpl, kinds
from harness.cli import main
from harness.errors import PluginLoadError
from harness.kinds import KindSpec
from harness.protocols import Metric
from harness.scaffold import scaffold
from harness.testing import registries_with

WIDGET_MODULE = textwrap.dedent(
    '''
    """A temporary plugin kind for tests: its base class and its hookspec."""
    import pluggy

    from harness.protocols import Plugin

    hookspec = pluggy.HookspecMarker("harness")


    class Widget(Plugin):
        """A test kind."""

        kind = "widget"


    @hookspec
    def register_widgets(register):
        """Register widgets: subclasses of Widget."""
    '''
)

WIDGET_PLUGIN = textwrap.dedent(
    '''
    from harness import hookimpl
    from tests_kinds_widget import Widget


    class Gear(Widget):
        name = "gear"
        description = "A gear."


    @hookimpl
    def register_widgets(register):
        register(Gear)
    '''
)


@pytest.fixture
def widget_kind(tmp_path, monkeypatch):
    """A kind added to the table: one KindSpec plus the module holding its hookspec."""
    (tmp_path / "tests_kinds_widget.py").write_text(WIDGET_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = KindSpec("widget", "register_widgets", "tests_kinds_widget:Widget", spec_module="tests_kinds_widget")
    monkeypatch.setattr(kinds, "KINDS", (*kinds.KINDS, spec))
    import harness.plugins

    monkeypatch.setattr(harness.plugins, "_CACHED", None)
    yield tmp_path
    sys.modules.pop("tests_kinds_widget", None)
    harness.plugins.reset()


def test_new_kind_reaches_registries_plugins_and_scaffold(widget_kind, monkeypatch, capsys):
    plugin_dir = widget_kind / "plugin_dir"
    plugin_dir.mkdir()
    (plugin_dir / "gears.py").write_text(WIDGET_PLUGIN)
    # the registries
    import importlib.util

    spec = importlib.util.spec_from_file_location("gears_mod", plugin_dir / "gears.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    regs = registries_with(("gears", module))
    assert regs["widget"].names() == ["gear"]
    assert regs["widget"].entry("gear").origin == "gears"
    # harness plugins (one-file plugin from --plugins-dir; built-ins not loaded)
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "")
    assert main(["--plugins-dir", str(plugin_dir), "plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": "gear", "kind": "widget", "plugin": "gears"}.items() <= rows[0].items()
    # harness new-plugin --kind widget: the scaffold subclasses the table's base and implements its hook
    assert main(["new-plugin", "my_widget", "--kind", "widget", "--dir", str(widget_kind)]) == 0
    source = (widget_kind / "harness-my-widget" / "harness_my_widget" / "__init__.py").read_text()
    assert "from tests_kinds_widget import Widget" in source and "def register_widgets(register):" in source
    monkeypatch.syspath_prepend(str(widget_kind / "harness-my-widget"))
    import importlib

    scaffolded = importlib.import_module("harness_my_widget")
    assert registries_with(("my_widget", scaffolded))["widget"].names() == ["my_widget"]
    sys.modules.pop("harness_my_widget", None)


def test_unknown_kind_names_the_known_ones(tmp_path):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="Known kinds: dictionary_learner"):
        scaffold("x", "widgit", tmp_path)


def test_every_table_hook_has_a_documented_spec():
    from harness import hookspecs

    for spec in kinds.kinds():
        fn = getattr(hookspecs, spec.hook)
        assert fn.__doc__, spec.hook
        assert spec.base_class().__name__ == spec.base_name


class _M(Metric):
    higher_is_better = True
    scope = "model"

    def compute(self, inputs):
        return 1.0


def _metric(name):
    return type(f"M_{name}", (_M,), {"name": name, "__module__": __name__})


def test_hooks_are_called_through_pluggy_wrappers_and_ordering():
    """Registries call pm.hook, so a hook wrapper sees the call and tryfirst orders registrations."""
    seen = []
    first, second = _metric("first_metric"), _metric("second_metric")

    class Late:
        @staticmethod
        @hookimpl(trylast=True)
        def register_metrics(register):
            seen.append("late")
            register(second)

    class Early:
        @staticmethod
        @hookimpl(tryfirst=True)
        def register_metrics(register):
            seen.append("early")
            register(first)

    class Wrapper:
        @staticmethod
        @hookimpl(wrapper=True)
        def register_metrics(register):
            seen.append("wrapper in")
            result = yield
            seen.append("wrapper out")
            return result

    regs = registries_with(("late", Late), ("early", Early), ("wrapper", Wrapper))
    assert seen == ["wrapper in", "early", "late", "wrapper out"]
    assert regs.metrics.entry("first_metric").origin == "early"
    assert regs.metrics.entry("second_metric").origin == "late"


def test_failing_hook_names_its_plugin():
    class Broken:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            raise ValueError("boom")

    with pytest.raises(PluginLoadError, match='Plugin "broken" failed in hook register_metrics: ValueError: boom'):
        registries_with(("ok", type("Ok", (), {})), ("broken", Broken))


COMMAND_PLUGIN = textwrap.dedent(
    '''
    from harness import hookimpl


    def _hello(args):
        print(f"hello {args.name}")
        return 3


    @hookimpl
    def register_commands(commands):
        p = commands.add_parser("hello", help="Say hello.")
        p.add_argument("--name", default="world")
        p.set_defaults(func=_hello)
    '''
)


def test_plugin_adds_a_subcommand(tmp_path, monkeypatch, capsys):
    (tmp_path / "hello_cmd.py").write_text(COMMAND_PLUGIN)
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "")
    import harness.plugins

    harness.plugins.reset()
    assert main(["--plugins-dir", str(tmp_path), "hello", "--name", "harness"]) == 3
    assert capsys.readouterr().out == "hello harness\n"
    assert main(["--plugins-dir", str(tmp_path), "plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r for r in rows if r["kind"] == "command"] == [
        {"name": "hello", "kind": "command", "plugin": "hello_cmd", "distribution": None, "version": None,
         "hooks": ["register_commands"], "source": f"plugins-dir {tmp_path}",
         "description": "`harness hello` subcommand"}]
    harness.plugins.reset()


def test_plugin_command_may_not_shadow_a_builtin(tmp_path, monkeypatch, capsys):
    (tmp_path / "clash.py").write_text(COMMAND_PLUGIN.replace('"hello"', '"run"'))
    (tmp_path / "other.py").write_text("")
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "")
    import harness.plugins

    harness.plugins.reset()
    assert main(["--plugins-dir", str(tmp_path), "plugins"]) == 2
    err = capsys.readouterr().err
    assert 'Plugin "clash" adds command "run", which harness (built-in) already provides' in err
    harness.plugins.reset()


def test_help_lists_builtin_commands_without_loading_plugins(monkeypatch, capsys):
    import harness.plugins

    def boom(*a, **k):
        raise AssertionError("plugins were loaded for --help")

    monkeypatch.setattr(harness.plugins, "get_registries", boom)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "register_commands" in capsys.readouterr().out
