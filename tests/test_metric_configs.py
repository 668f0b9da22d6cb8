"""Metric configs from the spec: ``suites[].config.metrics.config.<metric>`` (plan-time checks, cell keys)."""

from __future__ import annotations

import json

import pytest

from harness.config import RunSpec
from harness.errors import SpecError
from harness.runner import plan
from harness.testing import registries_with

MODEL = "zoo:zoo-32"
#: The smallest sae-suite budget (as tests/test_openness.py's TINY): only planned here.
TINY = {"hook_point": "blocks.0.hook_resid_post", "train_tokens": 2048, "epochs": 1, "batch_size": 256,
        "eval_tokens": 512, "sweep_values": [], "probing": False, "absorption": False, "scr_tpp": False,
        "tsne": False, "bootstrap": 0}
OPENAI = {"judge": "openai", "openai": {"base_url": "http://127.0.0.1:9/v1", "model": "judge-1"}}


@pytest.fixture(scope="module")
def regs():
    return registries_with(builtins=True)


def _plan(regs, metrics: dict | None, **extra):
    cfg = {**TINY, **({"metrics": metrics} if metrics is not None else {})}
    spec = RunSpec(suites=[{"name": "sae", "config": cfg}], methods=[{"name": "topk"}], models=[MODEL], seeds=[0],
                   **extra)
    return plan(spec, regs)


def _error(regs, metrics: dict) -> str:
    with pytest.raises(SpecError) as e:
        _plan(regs, metrics)
    return str(e.value)


def test_a_metric_config_enters_the_key_only_when_set(regs):
    base = _plan(regs, None)[0]
    include_only = _plan(regs, {"include": ["sae_autointerp"]})[0]
    assert "metrics" not in base.cell.suite_config
    assert "config" not in include_only.cell.suite_config["metrics"]  # key-neutral while empty
    # the metric's defaults, spelt out or empty, keep the key of the unconfigured metric
    for same in ({"sae_autointerp": {}}, {"sae_autointerp": {"judge": "baseline", "n_latents": 16}}):
        assert _plan(regs, {"include": ["sae_autointerp"], "config": same})[0].key == include_only.key
    judged = _plan(regs, {"include": ["sae_autointerp"], "config": {"sae_autointerp": OPENAI}})[0]
    assert judged.key != include_only.key
    stored = judged.cell.suite_config["metrics"]["config"]["sae_autointerp"]
    assert stored["judge"] == "openai" and stored["openai"]["base_url"] == "http://127.0.0.1:9/v1"
    assert stored["n_latents"] == 16  # validated: defaults filled, so two spellings share one key
    spelt = {**OPENAI, "n_latents": 16, "openai": {**OPENAI["openai"], "temperature": 0.0}}
    assert _plan(regs, {"include": ["sae_autointerp"], "config": {"sae_autointerp": spelt}})[0].key == judged.key
    # the suite config the cell computes with carries the normalised config too (what a worker receives)
    assert judged.suite_config.metrics.config["sae_autointerp"] == stored


def test_bad_metric_configs_fail_at_plan_time_naming_the_path(regs):
    at = "suites[0].config.metrics.config"
    msg = _error(regs, {"include": ["sae_autointerp"], "config": {"sae_autointerpp": {}}})
    assert f'{at}.sae_autointerpp: no computed metric "sae_autointerpp"' in msg and 'Did you mean "sae_autointerp"' in msg
    msg = _error(regs, {"include": ["sae_autointerp"], "config": {"sae_autointerp": {"judge": "gpt"}}})
    assert f"({at}.sae_autointerp)" in msg and "judge: Input should be 'baseline', 'openai' or 'hf_chat'" in msg
    msg = _error(regs, {"include": ["sae_autointerp"], "config": {"sae_autointerp": {"jduge": "openai"}}})
    assert "jduge: unknown key." in msg and 'Did you mean "judge"' in msg
    # a secret has no field: the key is read from the environment variable the config names
    msg = _error(regs, {"include": ["sae_autointerp"],
                        "config": {"sae_autointerp": {"judge": "openai", "openai": {"api_key": "sk-secret"}}}})
    assert "openai.api_key: unknown key." in msg and 'Did you mean "api_key_env"' in msg
    msg = _error(regs, {"config": {"sae_ravel": {"k": 2}}})  # opt-in and not included: the config would do nothing
    assert f'{at}.sae_ravel: metric "sae_ravel" is not computed by this suite config' in msg
    assert "Fix: add sae_ravel to metrics.include" in msg
    msg = _error(regs, {"include": ["sae_ravel"], "exclude": ["sae_ravel"], "config": {"sae_ravel": {"k": 2}}})
    assert "it is in metrics.exclude" in msg
    msg = _error(regs, {"include": ["sae_ravel"], "config": {"sae_l0": {}}})
    assert f'{at}.sae_l0: no computed metric "sae_l0"' in msg  # reported by the suite: nothing to configure


def _entities(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_metric_data_field_is_checked_and_keyed(regs, tmp_path):
    rows = [{"entity": "Paris", "attributes": {"country": "France", "continent": "Europe"}}]
    data = {"dataset": "local", "config": {"path": _entities(tmp_path / "cities.jsonl", rows),
                                           "templates": {"country": ["%s is in"], "continent": ["%s lies in"]}}}
    cell = _plan(regs, {"include": ["sae_ravel"], "config": {"sae_ravel": {"data": data}}})[0]
    ident = cell.cell.datasets["suite.metrics.sae_ravel.data"]
    assert ident["file"] == "cities.jsonl" and len(ident["path_sha256"]) == 64
    assert cell.cell.suite_config["metrics"]["config"]["sae_ravel"]["data"]["dataset"] == "local"
    default = _plan(regs, {"include": ["sae_ravel"], "config": {"sae_ravel": {"k": 4}}})[0]
    assert default.cell.datasets == {} and "data" not in default.cell.suite_config["metrics"]["config"]["sae_ravel"]
    bad = {**data, "config": {**data["config"], "templates": {"country": ["in %s, %s"]}}}
    msg = _error(regs, {"include": ["sae_ravel"], "config": {"sae_ravel": {"data": bad}}})
    assert "suites[0].config.metrics.config.sae_ravel.data: config.templates.country[0]" in msg
    assert "holds '%s' 2 times, not once" in msg
    missing = {"dataset": "local", "config": {"path": str(tmp_path / "nope.jsonl"), "templates": {"a": ["%s"]}}}
    msg = _error(regs, {"include": ["sae_ravel"], "config": {"sae_ravel": {"data": missing}}})
    assert "sae_ravel.data: config.path" in msg and "no such file" in msg


def test_a_worker_rebuilds_a_cell_with_metric_configs(regs):
    """A worker re-validates the cell it receives against the key dump: the sae suite's default data fields
    and a normalised metric config rebuild to the planned key."""
    from harness.executors.base import cell_payload
    from harness.executors.worker import rebuild_cell

    pc = _plan(regs, {"include": ["sae_autointerp"], "config": {"sae_autointerp": OPENAI}})[0]
    rebuilt = rebuild_cell(cell_payload(pc), regs)
    assert rebuilt.key == pc.key
    assert rebuilt.suite_config.metrics.config["sae_autointerp"]["judge"] == "openai"
