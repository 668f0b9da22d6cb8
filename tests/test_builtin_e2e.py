"""The built-in plugins end to end on the embedded zoo, as a user runs them (CLI subprocesses)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, make_distribution

from harness.zoo import list_zoo_models

pytestmark = pytest.mark.skipif(not list_zoo_models(), reason="no zoo checkpoints")


def _run(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          env=env or dict(os.environ), cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def smallest():
    return list_zoo_models()[0]


def test_lm_eval_suite_on_zoo_with_example_plugin_metric(tmp_path, smallest):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "suites:\n  - name: lm_eval\n    config: {limit: 16, tasks: [zoo_facts_frequent, zoo_arithmetic]}\n"
        f"models: ['zoo:{smallest}']\nextra_metrics: [embedding_anisotropy]\n"
    )
    make_distribution(tmp_path / "site", "harness-example-metric", {"example_metric": "harness_example_metric"})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(REPO / "docs" / "example-plugin")])
    env["HARNESS_LOAD_PLUGINS"] = "example_metric,lm_eval_suite,zoo_models,executors"
    r = _run("run", "--spec", str(spec), "--output-dir", str(tmp_path / "o"), "--leaderboard-dir",
             str(tmp_path / "lb"), "--no-progress", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "## lm_eval" in r.stdout and f"zoo:{smallest}" in r.stdout and "embedding_anisotropy" in r.stdout
    (rec_path,) = (tmp_path / "o" / "records" / "lm_eval").glob("*.json")
    rec = json.loads(rec_path.read_text())
    metrics = {(m["metric"], m["key"]): m for m in rec["output"]["metrics"]}
    assert {("lm_eval_acc", "zoo_facts_frequent"), ("lm_eval_acc", "zoo_arithmetic"), ("lm_eval_acc_mean", None),
            ("embedding_anisotropy", None)} <= set(metrics)
    assert metrics[("lm_eval_acc", "zoo_arithmetic")]["n"] == 16
    assert metrics[("lm_eval_acc", "zoo_arithmetic")]["chance"] is not None
    assert rec["output"]["versions"]["lm_eval"] and "zoo_arithmetic" in rec["output"]["versions"]
    assert rec["provenance"]["packages"]["torch"].startswith("2.")
    board = json.loads((tmp_path / "lb" / "lm_eval.json").read_text())
    assert board["rows"][0]["values"]["lm_eval_acc[zoo_arithmetic]"]["normalised"] is not None
    assert (tmp_path / "lb" / "site" / "index.html").exists()


def test_plugins_lists_builtins():
    r = _run("plugins", "--json")
    rows = {(row["name"], row["kind"]): row for row in json.loads(r.stdout)}
    for name, kind in [("lm_eval", "suite"), ("zoo", "model_source"), ("hf", "model_source"), ("hf", "dataset"),
                       ("lm_eval_acc", "metric")]:
        assert rows[(name, kind)]["distribution"] == "harness-interp"


def test_offline_hub_name_is_one_clear_error(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = _run("run", "--suite", "lm_eval", "--model", "EleutherAI/no-such-model-xyz", "--output-dir",
             str(tmp_path / "o"), env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no-such-model-xyz" in r.stderr and "HF_HUB_OFFLINE" in r.stderr
