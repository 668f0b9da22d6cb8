"""Local lm-eval task folders: the suites' include-path fields, `harness run --tasks-dir`, their
cell-key identity (folder contents), and the offline error naming `--allow-network`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from harness.config import ComponentSpec, RunSpec
from harness.errors import SpecError
from harness.evaluation.folders import (
    TaskFolders,
    config_task_dirs,
    folder_digest,
    task_folder_fields,
    task_folders_field,
    with_task_dirs,
)
from harness.testing import registries_with
from harness.zoo import list_zoo_models

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")

#: A multiple-choice task over world-like words, data next to the YAML (relative path).
TASK_YAML = """\
task: my_colours
dataset_path: json
dataset_kwargs:
  data_files:
    test: colours.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: "{{label}}"
metric_list:
  - metric: acc
metadata:
  version: 1.0
  kind: knowledge
"""
DOCS = [{"question": f"the colour of item {i} is", "choices": ["red", "blue", "green"], "label": i % 3}
        for i in range(6)]
HUB_YAML = TASK_YAML.replace("my_colours", "my_hub_colours").replace(
    "dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: colours.jsonl\n",
    "dataset_path: harness-tests-nonexistent-org/no-such-dataset\n",
)


def write_tasks(root, yaml_text=TASK_YAML, name="my_colours"):
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml_text)
    (folder / "colours.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return root


@pytest.fixture(scope="module")
def regs():
    return registries_with(builtins=True)


def test_every_lm_eval_using_suite_declares_task_folders(regs):
    fields = {name: task_folder_fields(regs.suites.get(name).Config) for name in regs.suites.names()}
    assert fields["lm_eval"] == ["include_paths"] and fields["scaling"] == ["include_paths"]
    for name in ("sae", "unlearning", "hallucination"):
        assert fields[name] == ["capability_include_paths"], name
    assert fields["superposition"] == []


@pytest.mark.parametrize("suite", ["lm_eval", "scaling"])
def test_new_field_at_its_default_leaves_the_config_dump_and_so_the_key_unchanged(regs, suite, tmp_path):
    cls = regs.suites.get(suite)
    assert "include_paths" not in cls.Config().model_dump(mode="json")
    cfg = cls.parse_config({"include_paths": [str(tmp_path)]})
    dumped = cfg.model_dump(mode="json")
    assert dumped["include_paths"] == [str(tmp_path)]
    assert cls.parse_config(dumped).model_dump(mode="json") == dumped  # the workers' round trip
    assert config_task_dirs(cfg) == [str(tmp_path)]


def test_a_third_party_config_gets_the_same_treatment():
    from harness.config import PluginConfig

    class Config(PluginConfig):
        mine: TaskFolders = task_folders_field("My task folders.")
        other: list[str] = []

    assert task_folder_fields(Config) == ["mine"]
    assert Config(mine=["a", "b"], other=["c"]).model_dump() == {"mine": ["a", "b"], "other": ["c"]}
    assert config_task_dirs(Config(mine=["a", "a"])) == ["a"]


def test_folder_digest_follows_file_contents(tmp_path):
    root = write_tasks(tmp_path / "t")
    first = folder_digest(root)
    assert first == folder_digest(root) and first.startswith("sha256:")
    (root / "my_colours" / "__pycache__").mkdir()
    (root / "my_colours" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (root / ".hidden").write_text("editor state")
    assert folder_digest(root) == first  # caches and hidden files are no part of a task
    data = root / "my_colours" / "colours.jsonl"
    data.write_text(data.read_text().replace('"label": 0', '"label": 1', 1))
    assert folder_digest(root) != first
    with pytest.raises(SpecError, match="no folder"):
        folder_digest(tmp_path / "nope")


def test_with_task_dirs_adds_to_every_planned_suite_that_has_the_field(regs, tmp_path):
    d = str(write_tasks(tmp_path / "t"))
    spec = with_task_dirs(RunSpec(), regs, [d, d])
    by_name = {s.name: s.config for s in spec.suites}
    assert set(by_name) == set(regs.suites.names())  # no suites named: every registered one
    assert by_name["lm_eval"] == {"include_paths": [d]} and by_name["scaling"] == {"include_paths": [d]}
    assert by_name["sae"] == {"capability_include_paths": [d]} and by_name["superposition"] == {}
    spec = RunSpec(suites=[ComponentSpec(name="lm_eval", config={"include_paths": ["x"], "limit": 3})])
    (s,) = with_task_dirs(spec, regs, [d]).suites
    assert s.config == {"include_paths": ["x", d], "limit": 3}
    with pytest.raises(SpecError, match="--tasks-dir .*nope: no such folder"):
        with_task_dirs(spec, regs, [str(tmp_path / "nope")])


@pytest.mark.skipif(not list_zoo_models(), reason="no zoo checkpoints")
def test_folder_contents_enter_the_cell_key(regs, tmp_path):
    from harness.runner import plan

    root = write_tasks(tmp_path / "t")
    base = RunSpec(suites=[ComponentSpec(name="lm_eval", config={"tasks": ["my_colours"]})], models=["zoo:zoo-32"])
    with pytest.raises(SpecError, match="my_colours"):  # not findable without the folder
        plan(base, regs)
    (cell,) = plan(with_task_dirs(base, regs, [str(root)]), regs)
    assert cell.cell.task_dirs == {str(root): folder_digest(root)}
    assert cell.cell.suite_config["include_paths"] == [str(root)]
    (again,) = plan(with_task_dirs(base, regs, [str(root)]), regs)
    assert again.key == cell.key
    yaml_path = root / "my_colours" / "my_colours.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("version: 1.0", "version: 1.1"))
    (edited,) = plan(with_task_dirs(base, regs, [str(root)]), regs)
    assert edited.key != cell.key  # a changed task recomputes
    (default,) = plan(RunSpec(suites=[ComponentSpec(name="lm_eval")], models=["zoo:zoo-32"]), regs)
    assert default.cell.task_dirs == {} and "task_dirs" not in json.dumps(default.cell.suite_config)


def _cli(*args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_VARS and k != "HARNESS_ALLOW_NETWORK"}
    env.pop("HARNESS_LOAD_PLUGINS", None)
    env.pop("HARNESS_DISABLE_PLUGINS", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.mark.skipif(not list_zoo_models(), reason="no zoo checkpoints")
def test_tasks_dir_runs_local_tasks_and_a_hub_dataset_offline_names_the_fix(tmp_path):
    """`harness run --tasks-dir` scores a local task on a zoo model (lm_eval runs every task of the
    folder by default); a task naming a hub data set fails offline with both ways to allow network."""
    tasks = write_tasks(tmp_path / "tasks")
    write_tasks(tasks, HUB_YAML, "my_hub_colours")
    spec = tmp_path / "spec.yaml"
    spec.write_text("suites:\n  - name: lm_eval\n    config: {tasks: [my_colours, zoo_sequence], limit: 6}\n"
                    "models: ['zoo:zoo-32']\n")
    r = _cli("run", "--spec", str(spec), "--tasks-dir", str(tasks), "--output-dir", "o", "--leaderboard-dir", "lb",
             "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    (rec_path,) = (tmp_path / "o" / "records" / "lm_eval").glob("*.json")
    rec = json.loads(rec_path.read_text())
    metrics = {(m["metric"], m["key"]): m for m in rec["output"]["metrics"]}
    assert metrics[("lm_eval_acc", "my_colours")]["n"] == 6 and ("lm_eval_acc", "zoo_sequence") in metrics
    assert rec["cell"]["task_dirs"] == {str(tasks): folder_digest(tasks)}

    spec.write_text("suites:\n  - name: lm_eval\n    config: {tasks: [my_hub_colours]}\nmodels: ['zoo:zoo-32']\n")
    r = _cli("run", "--spec", str(spec), "--tasks-dir", str(tasks), "--output-dir", "o2", "--leaderboard-dir", "lb2",
             "--no-progress", cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-3000:]  # the cell fails and is recorded as failed
    (rec_path,) = (tmp_path / "o2" / "records" / "lm_eval").glob("*.json")
    err = json.loads(rec_path.read_text())["error"]["message"]
    assert 'could not load task "my_hub_colours"' in err
    assert "HARNESS_ALLOW_NETWORK=1" in err and "harness run --allow-network" in err, err


def test_allow_network_flag_keeps_offline_mode_off(monkeypatch, tmp_path):
    from harness import plugins
    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "lm_eval_suite,zoo_models,executors")
    for var in (*OFFLINE_VARS, "HARNESS_ALLOW_NETWORK"):
        monkeypatch.setenv(var, "0")  # recorded, so that what main sets is undone after the test
        monkeypatch.delenv(var)
    plugins.reset()
    try:
        assert main(["run", "--suite", "lm_eval", "--model", "zoo:zoo-32", "--dry-run", "--allow-network"]) == 0
        assert os.environ.get("HARNESS_ALLOW_NETWORK") == "1"
        assert not [v for v in OFFLINE_VARS if v in os.environ]
        monkeypatch.delenv("HARNESS_ALLOW_NETWORK")
        assert main(["run", "--suite", "lm_eval", "--model", "zoo:zoo-32", "--dry-run"]) == 0
        assert all(os.environ.get(v) == "1" for v in OFFLINE_VARS)  # a local model: offline unless asked
    finally:
        plugins.reset()


def test_readme_documents_both_ways_to_allow_network():
    text = (REPO / "README.md").read_text()
    section = text.split("## Running on a real model", 1)[1].split("\n## ", 1)[0]
    assert "--allow-network" in section and "HARNESS_ALLOW_NETWORK=1" in section and "--tasks-dir" in section
