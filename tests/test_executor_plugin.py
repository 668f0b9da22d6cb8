"""A third-party executor registered through ``register_executors``: chosen by --executor and
by the spec's ``executor:``, with its own flag derived from its Config, computing `harness run`."""

import argparse
import sys
from pathlib import Path

import pytest
from pydantic import Field

from harness import hookimpl, plugins
from harness.cli import main
from harness.config import RunSpec
from harness.errors import PluginLoadError, SpecError
from harness.executors import builtin, make_executor
from harness.executors.base import Executor, ExecutorConfig
from harness.executors.cli_options import add_executor_arguments, executor_flags, executor_from_args
from harness.runner import execute, plan
from harness.store import Store

TOY_DIR = Path(__file__).parent / "toy"
EXEC_DIR = Path(__file__).parent / "toy_executor"
sys.path.insert(0, str(EXEC_DIR))

import reverse_executor  # noqa: E402
import toy_plugins  # noqa: E402


@pytest.fixture
def regs(harness_registries_with):
    return harness_registries_with(("toy", toy_plugins), ("reverse", reverse_executor), ("executors", builtin))


@pytest.fixture
def cli(monkeypatch, capsys):
    """``harness --plugins-dir toy --plugins-dir toy_executor ARGS`` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "executors")  # no other entry point
    plugins.reset()

    def run(*args):
        code = main(["--plugins-dir", str(TOY_DIR), "--plugins-dir", str(EXEC_DIR), *map(str, args)])
        out = capsys.readouterr()
        return code, out.out, out.err

    yield run
    plugins.reset()


def _run_args(tmp_path, *extra):
    return ("run", "--suite", "toy_suite", "--model", "toy:a", "--model", "toy:b", "--seed", "0", "--seed", "1",
            "--device", "cpu", "--output-dir", tmp_path / "o", "--leaderboard-dir", tmp_path / "lb", "--no-progress",
            *extra)


def _planned_keys(regs, tmp_path):
    spec = RunSpec(suites=["toy_suite"], models=["toy:a", "toy:b"], seeds=[0, 1], device="cpu",
                   output_dir=tmp_path / "o")
    return [c.key for c in plan(spec, regs)]


def test_harness_run_computes_the_cells_through_the_chosen_plugin_executor(cli, regs, tmp_path):
    order = tmp_path / "order.txt"
    code, out, err = cli(*_run_args(tmp_path, "--executor", "reverse", "--reverse-order-file", order))
    assert code == 0, err
    keys = _planned_keys(regs, tmp_path)
    assert len(keys) == 8 and order.read_text().split() == keys[::-1]  # every cell, through the plugin
    assert "computed 8, reused 0, failed 0" in err and "## toy_suite" in out
    code, _, err = cli(*_run_args(tmp_path, "--executor", "reverse", "--reverse-order-file", order))
    assert code == 0 and "reused 8" in err and len(order.read_text().split()) == 8


def test_the_spec_chooses_the_executor_and_flags_override_its_config(cli, regs, tmp_path):
    from_spec, from_flag = tmp_path / "spec-order.txt", tmp_path / "flag-order.txt"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"executor:\n  name: reverse\n  config: {{order_file: {from_spec}}}\n")
    code, _, err = cli(*_run_args(tmp_path, "--spec", spec, "--seed", "2"))
    assert code == 0, err
    assert len(from_spec.read_text().split()) == 12
    code, _, err = cli(*_run_args(tmp_path / "again", "--spec", spec, "--reverse-order-file", from_flag))
    assert code == 0, err
    assert len(from_flag.read_text().split()) == 8 and len(from_spec.read_text().split()) == 12
    code, _, err = cli(*_run_args(tmp_path / "local", "--spec", spec, "--executor", "local"))
    assert code == 0 and not (tmp_path / "local" / "order.txt").exists()  # --executor wins over the spec's
    assert len(from_spec.read_text().split()) == 12  # the spec's config is reverse's: not used for local


def test_a_flag_of_another_executor_is_refused_naming_both(cli, tmp_path):
    code, _, err = cli(*_run_args(tmp_path, "--executor", "reverse", "--workers", "2"))
    assert code == 2 and "--workers only applies to --executor local (this run uses --executor reverse)" in err
    code, _, err = cli(*_run_args(tmp_path, "--reverse-order-file", tmp_path / "x"))
    assert code == 2
    assert "--reverse-order-file only applies to --executor reverse (this run uses --executor local)" in err
    assert not (tmp_path / "o").exists()


def test_harness_plugins_lists_the_executors(cli):
    code, out, _ = cli("plugins")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:] if line.strip()}
    assert code == 0 and {n: rows.get(n) for n in ("local", "ray", "slurm", "reverse")} == dict.fromkeys(
        ("local", "ray", "slurm", "reverse"), "executor")


def test_run_help_text(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "executors")
    plugins.reset()
    try:
        with pytest.raises(SystemExit):
            main(["--plugins-dir", str(EXEC_DIR), "run", "--help"])
    finally:
        plugins.reset()
    out = " ".join(capsys.readouterr().out.split())
    assert "--executor {local,ray,reverse,slurm}" in out
    assert "reverse: this process, last planned cell first" in out
    assert "--reverse-order-file REVERSE_ORDER_FILE reverse: Append the key" in out
    assert "--max-retries N Retries of a cell whose worker died (crash, lost node). Default: local 1, ray 2" in out


def test_spec_executor_config_is_validated_when_planning(regs, tmp_path):
    bad = RunSpec(suites=["toy_suite"], output_dir=tmp_path, executor={"name": "reverse", "config": {"order_fil": 1}})
    with pytest.raises(SpecError) as e:
        plan(bad, regs)
    assert 'executor "reverse" (executor.config)' in str(e.value) and 'Did you mean "order_file"' in str(e.value)
    with pytest.raises(SpecError, match='Unknown executor "revers". Did you mean "reverse"'):
        plan(RunSpec(suites=["toy_suite"], output_dir=tmp_path, executor={"name": "revers"}), regs)


def test_shared_flags_reach_the_plugin_config_and_the_api_builds_it_too(regs, tmp_path):
    parser = argparse.ArgumentParser()
    add_executor_arguments(parser.add_argument_group("where cells run"), regs)
    args = parser.parse_args(["--executor", "reverse", "--cell-timeout", "5"])
    ex = executor_from_args(args, regs)
    assert isinstance(ex, reverse_executor.ReverseExecutor) and ex.config.cell_timeout == 5
    assert executor_flags(regs)["--cell-timeout"].fields == {"local": "cell_timeout", "ray": "cell_timeout",
                                                             "reverse": "cell_timeout", "slurm": "cell_timeout"}
    order = tmp_path / "order.txt"
    spec = RunSpec(suites=["toy_suite"], models=["toy:a"], seeds=[0], device="cpu", output_dir=tmp_path / "o")
    cells = plan(spec, regs)
    summary = execute(cells, Store(spec.output_dir), regs, device="cpu", progress=False,
                      executor=make_executor("reverse", regs, order_file=order))
    assert summary.done == 2 and order.read_text().split() == [c.key for c in cells][::-1]


def test_an_executor_flag_that_cannot_be_a_flag_is_named(harness_registries_with):
    class Cfg(ExecutorConfig):
        table: dict[str, int] = Field(default_factory=dict, description="x", json_schema_extra={"cli": "--table"})

    class Bad(Executor):
        name = "bad"
        description = "bad"
        Config = Cfg

        def run(self, *a, **k):  # pragma: no cover - never run
            raise AssertionError

    plugin = type("P", (), {"register_executors": staticmethod(hookimpl(lambda register: register(Bad)))})
    regs = harness_registries_with(("badexec", plugin))
    with pytest.raises(PluginLoadError, match=r'Executor "bad" \(badexec\) declares the flag .--table. .*not a scalar'):
        add_executor_arguments(argparse.ArgumentParser().add_argument_group("g"), regs)
