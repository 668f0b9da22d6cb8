"""The CLI as a user runs it: subprocesses, exit codes, no traceback walls."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TOY_DIR = str(Path(__file__).parent / "toy")


def harness(*args, cwd=None, env_extra=None, load_builtins=False):
    env = dict(os.environ)
    if not load_builtins:
        env["HARNESS_LOAD_PLUGINS"] = "executors"  # only the toy plugins from --plugins-dir (and the executors)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_help_is_fast_and_does_not_import_torch():
    code = ("import sys, time; t=time.perf_counter(); from harness.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy=[m for m in ('torch','transformers','lm_eval') if m in sys.modules]\n"
            "print('HEAVY', heavy, time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    line = out.strip().splitlines()[-1]
    assert line.startswith("HEAVY []"), line
    assert float(line.split()[-1]) < 1.0


def test_version():
    r = harness("--version")
    assert r.returncode == 0 and r.stdout.startswith("harness ")


def test_plugins_json_lists_plugin_dir_plugins():
    r = harness("--plugins-dir", TOY_DIR, "plugins", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["toy_suite"]["kind"] == "suite" and "register_suites" in rows["toy_suite"]["hooks"]
    assert rows["toy_eraser"]["source"].startswith("plugins-dir")


def test_run_then_resume_then_leaderboard(tmp_path):
    args = ("--plugins-dir", TOY_DIR, "run", "--output-dir", str(tmp_path / "o"),
            "--leaderboard-dir", str(tmp_path / "lb"), "--no-progress", "--seed", "0", "--seed", "1")
    r = harness(*args)
    assert r.returncode == 0, r.stderr
    assert "## toy_suite" in r.stdout and "toy_eraser" in r.stdout
    assert "4 to compute" in r.stderr
    r2 = harness(*args)
    assert "0 to compute" in r2.stderr and "reused 4" in r2.stderr
    assert (tmp_path / "lb" / "toy_suite.md").read_text().strip() in r2.stdout
    r3 = harness("--plugins-dir", TOY_DIR, "leaderboard", "--output-dir", str(tmp_path / "o"),
                 "--leaderboard-dir", str(tmp_path / "lb2"))
    assert r3.returncode == 0 and (tmp_path / "lb2" / "toy_suite.json").exists()
    r4 = harness("--plugins-dir", TOY_DIR, "status", "--output-dir", str(tmp_path / "o"), "--seed", "0",
                 "--seed", "1", "--seed", "2")
    assert "toy_suite: done 4, failed 0, pending 2" in r4.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (("run", "--suite", "toy_suit"), 'Did you mean "toy_suite"'),
        (("run", "--method", "toy_eraserr"), 'Did you mean "toy_eraser"'),
        (("run", "--model", "nosource:x"), "Unknown model source"),
        (("schema", "--plugin", "toy_eraserr"), 'Did you mean "toy_eraser"'),
    ],
)
def test_bad_input_one_clear_error(tmp_path, args, needle):
    r = harness("--plugins-dir", TOY_DIR, *args[:1], *(["--output-dir", str(tmp_path)] if args[0] == "run" else []),
                *args[1:])
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.count("\n") <= 4


def test_bad_spec_file(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("methods:\n  - name: toy_eraser\n    config: {strength: lots}\n")
    r = harness("--plugins-dir", TOY_DIR, "run", "--spec", str(spec), "--output-dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "methods" not in r.stdout
    assert 'unlearning method "toy_eraser" (methods[0].config)' in r.stderr and "strength" in r.stderr and "Traceback" not in r.stderr


def test_argparse_errors_exit_2():
    r = harness("run", "--device", "gpu")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_broken_plugin_file_is_named(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('I am broken')\n")
    r = harness("--plugins-dir", str(tmp_path), "plugins")
    assert r.returncode == 2 and "broken.py" in r.stderr and "I am broken" in r.stderr
    assert "Traceback" not in r.stderr


def test_failed_cell_keeps_other_records(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("suites:\n  - name: toy_suite\n    config: {fail_label: toy_eraser}\n")
    r = harness("--plugins-dir", TOY_DIR, "run", "--spec", str(spec), "--output-dir", str(tmp_path / "o"),
                "--leaderboard-dir", str(tmp_path / "lb"), "--no-progress")
    assert r.returncode == 1 and "FAILED" in r.stdout
    assert len(list((tmp_path / "o" / "records" / "toy_suite").glob("*.json"))) == 2


def test_schema_includes_plugin_configs():
    r = harness("--plugins-dir", TOY_DIR, "schema")
    data = json.loads(r.stdout)
    assert "seeds" in data["run_spec"]["properties"]
    assert "strength" in data["plugins"]["unlearning_method"]["toy_eraser"]["properties"]


def test_run_with_worker_pool_and_cell_timeout_then_status(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("suites:\n  - name: toy_suite\n    config: {hang_label: toy_eraser}\n")
    common = ("--spec", str(spec), "--output-dir", str(tmp_path / "o"))
    r = harness("--plugins-dir", TOY_DIR, "run", *common, "--leaderboard-dir", str(tmp_path / "lb"),
                "--no-progress", "--workers", "2", "--cell-timeout", "2")
    assert r.returncode == 1, r.stderr
    assert "computed 1, reused 0, failed 1" in r.stderr and "timeout after 2s" in r.stdout
    r2 = harness("--plugins-dir", TOY_DIR, "status", *common)
    assert "toy_suite: done 1, failed 1, pending 0" in r2.stdout


def test_flags_of_another_executor_are_refused(tmp_path):
    r = harness("--plugins-dir", TOY_DIR, "run", "--output-dir", str(tmp_path), "--workers", "2",
                "--executor", "ray")
    assert r.returncode == 2 and "--workers only applies to --executor local" in r.stderr
