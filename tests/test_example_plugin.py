"""docs/example-plugin: a separate package registering a metric through the entry point."""

import json
import os
import subprocess
import sys

from conftest import REPO, make_distribution

EXAMPLE = REPO / "docs" / "example-plugin"


def _env(tmp_path):
    make_distribution(tmp_path, "harness-example-metric", {"example_metric": "harness_example_metric",
                                                           "example_learner": "harness_example_metric.learner"})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(EXAMPLE), env.get("PYTHONPATH", "")])
    env["HARNESS_LOAD_PLUGINS"] = "example_metric,example_learner"
    return env


def test_installed_example_shows_in_plugins(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness.cli", "plugins", "--json"], capture_output=True, text=True,
                       env=_env(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    row = rows["embedding_anisotropy"]
    assert row["kind"] == "metric" and row["distribution"] == "harness-example-metric"
    assert row["version"] == "0.1" and row["hooks"] == ["register_metrics"]
    learner = rows["example_threshold_sae"]
    assert learner["kind"] == "dictionary_learner" and learner["distribution"] == "harness-example-metric"
    assert learner["plugin"] == "example_learner" and learner["hooks"] == ["register_dictionary_learners"]


def test_example_own_tests_pass(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                       capture_output=True, text=True, env=_env(tmp_path), timeout=300, cwd=EXAMPLE)
    assert r.returncode == 0, r.stdout + r.stderr
