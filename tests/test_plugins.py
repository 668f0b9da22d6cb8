"""Plugin discovery: entry points, allow/block lists, --plugins-dir, failures named clearly."""

import sys
import textwrap

import pytest
from conftest import make_distribution

from harness.errors import PluginLoadError
from harness.plugins import Registries, discover
from harness.testing import registries_with

PLUGIN_SRC = textwrap.dedent(
    """
    from harness import hookimpl
    from harness.protocols import Metric

    class {cls}(Metric):
        name = "{metric}"
        higher_is_better = True
        scope = "model"
        def compute(self, inputs):
            return 1.0

    @hookimpl
    def {hook}(register):
        register({cls})
    """
)


def _write_module(folder, mod, metric, hook="register_metrics"):
    (folder / f"{mod}.py").write_text(PLUGIN_SRC.format(cls="X" + mod, metric=metric, hook=hook))


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """Two installed third-party distributions with entry points in group 'harness'."""
    _write_module(tmp_path, "tp_one", "tp_metric_one")
    _write_module(tmp_path, "tp_two", "tp_metric_two")
    make_distribution(tmp_path, "tp-one", {"tp_one": "tp_one"})
    make_distribution(tmp_path, "tp-two", {"tp_two": "tp_two"})
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for m in ("tp_one", "tp_two"):
        sys.modules.pop(m, None)


def test_entry_points_loaded_with_distribution(third_party):
    ps = discover(distributions=["tp-one", "tp-two"])
    regs = Registries(ps)
    assert {"tp_metric_one", "tp_metric_two"} <= set(regs.metrics.names())
    assert ps.sources["tp_one"].distribution == "tp-one"
    assert regs.metrics.entry("tp_metric_one").origin == "tp_one"


def test_allow_list(third_party, monkeypatch):
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "tp_two")
    regs = Registries(discover(distributions=["tp-one", "tp-two"]))
    assert regs.metrics.names() == ["tp_metric_two"]


def test_empty_allow_list_loads_none(third_party, monkeypatch):
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "")
    assert Registries(discover()).metrics.names() == []


def test_block_list(third_party, monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "tp_one")
    regs = Registries(discover(distributions=["tp-one", "tp-two"]))
    assert "tp_metric_one" not in regs.metrics and "tp_metric_two" in regs.metrics


def test_failing_import_names_plugin_and_fix(tmp_path, monkeypatch):
    (tmp_path / "tp_broken.py").write_text("import no_such_module_xyz\n")
    make_distribution(tmp_path, "tp-broken", {"tp_broken": "tp_broken"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginLoadError) as e:
        discover(distributions=["tp-broken"])
    msg = str(e.value)
    assert "tp_broken" in msg and "tp-broken" in msg and "HARNESS_DISABLE_PLUGINS=tp_broken" in msg


def test_misspelt_hook_fails_at_startup(tmp_path):
    _write_module(tmp_path, "typo", "typo_metric", hook="register_metric")
    with pytest.raises(PluginLoadError) as e:
        discover(entry_points=False, plugins_dirs=[tmp_path])
    assert '"typo"' in str(e.value) and 'Did you mean "register_metrics"' in str(e.value)


def test_plugins_dir(tmp_path):
    _write_module(tmp_path, "onefile", "onefile_metric")
    ps = discover(entry_points=False, plugins_dirs=[tmp_path])
    regs = Registries(ps)
    assert "onefile_metric" in regs.metrics
    assert ps.sources["onefile"].origin.startswith("plugins-dir")


def test_plugins_dir_must_exist(tmp_path):
    with pytest.raises(PluginLoadError, match="not a folder"):
        discover(entry_points=False, plugins_dirs=[tmp_path / "nope"])


def test_two_plugins_one_metric_name(tmp_path):
    _write_module(tmp_path, "first", "same_name")
    _write_module(tmp_path, "second", "same_name")
    with pytest.raises(Exception) as e:
        Registries(discover(entry_points=False, plugins_dirs=[tmp_path]))
    assert "first" in str(e.value) and "second" in str(e.value) and "same_name" in str(e.value)


def test_hook_that_raises_names_plugin():
    class Bad:
        from harness import hookimpl

        @staticmethod
        @hookimpl
        def register_metrics(register):
            raise ValueError("kaputt")

    with pytest.raises(PluginLoadError, match='"bad".*register_metrics.*kaputt'):
        registries_with(("bad", Bad))


def test_registries_are_frozen(toy_registries):
    assert all(r.frozen for r in toy_registries.by_kind.values())
