"""Layering of the core: no import cycle among harness modules (function-level imports count,
`if TYPE_CHECKING:` blocks do not), and the directions the architecture fixes."""

import ast

from import_graph import _imports, core_graph, find_cycle, import_graph


def test_no_import_cycle():
    cycle = find_cycle(core_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_graph_sees_function_level_imports_and_skips_type_checking():
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import harness.b\ndef f():\n    from harness.c import x\n"
    assert _imports(ast.parse(src), "harness.a", False, {"harness.a", "harness.b", "harness.c"}) == {"harness.c"}


def test_executors_sit_below_the_runner_and_the_cell_below_the_executors():
    graph = core_graph()
    for name, deps in graph.items():
        if name.startswith("harness.executors"):
            assert "harness.runner" not in deps, name
    assert not {d for d in graph["harness.cell"] if d.startswith("harness.executors")}


def test_harvest_builds_on_neither_cache_nor_buffer():
    graph = core_graph()
    assert graph["harness.models.harvest"].isdisjoint({"harness.models.cache", "harness.models.buffer"})
    assert "harness.models.harvest" in graph["harness.models.cache"]


def test_zoo_world_is_below_build_info_and_train():
    graph = core_graph()
    assert {d for d in graph["harness.zoo.world"] if d.startswith("harness.zoo")} <= {"harness.zoo.lexicon"}
    assert "harness.zoo.build" not in graph["harness.zoo.info"]


def test_site_reads_only_the_leaderboard_documents_and_formatters():
    graph = core_graph()
    assert graph["harness.site"] == {"harness.leaderboard.documents", "harness.leaderboard.markdown"}
    assert graph["harness.leaderboard.markdown"] <= {"harness.leaderboard.documents"}
    # statistics also uses the shared formulas of harness.stats (paired t test, MDD), a leaf module
    assert graph["harness.leaderboard.statistics"] <= {"harness.leaderboard.documents", "harness.stats"}
    assert graph["harness.stats"] == set()


def test_the_core_imports_no_plugin():
    offenders = {n: sorted(d for d in deps if d.startswith("harness_plugins")) for n, deps in import_graph().items()}
    assert {n: d for n, d in offenders.items() if d} == {}
