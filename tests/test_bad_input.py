"""Property-based bad input: any malformed run spec or plugin config gives one validation
error naming the field path; malformed CLI arguments exit 2 without a traceback."""

import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from harness import hookimpl
from harness.cli import main
from harness.config import PluginConfig, RunSpec, validate_config
from harness.errors import HarnessError, SpecError
from harness.testing import registries_with

TOY = str(__import__("pathlib").Path(__file__).parent / "toy")
junk = st.one_of(
    st.text(max_size=8), st.integers(), st.floats(allow_nan=True), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2), st.none(), st.booleans(),
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _configs():
    regs = registries_with(builtins=True)
    out = [pytest.param(RunSpec, "run spec", id="run_spec")]
    for kind, e in regs.all_entries():
        if e.obj.Config.model_fields:
            out.append(pytest.param(e.obj.Config, f'config of {kind} "{e.name}"', id=f"{kind}:{e.name}"))
    return out


@pytest.mark.parametrize("cls,where", _configs())
@SETTINGS
@given(data=st.data())
def test_malformed_field_names_its_path(cls, where, data):
    fields = sorted(cls.model_fields)
    field = data.draw(st.sampled_from(fields))
    value = data.draw(junk)
    # required fields (a local data set's path) get a valid value, so only ``field`` can be wrong
    given = {k: "x" for k, f in cls.model_fields.items() if f.is_required() and f.annotation is str}
    try:
        validate_config(cls, {**given, field: value}, where=where)
    except SpecError as e:
        msg = str(e)
        assert msg.startswith(f"Invalid {where}:") and f"  - {field}" in msg, msg
    # a value that validates is a legitimate value of that field: nothing to check


@pytest.mark.parametrize("cls,where", _configs())
@SETTINGS
@given(key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_unknown_key_is_refused_by_name(cls, where, key):
    if key in cls.model_fields:
        return
    with pytest.raises(SpecError) as e:
        validate_config(cls, {key: 1}, where=where)
    assert f"{key}: unknown key" in str(e.value)


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    """Toy plugins only, and a throw-away working folder (a garbage `run` may really run)."""
    from harness import plugins

    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_LOAD_PLUGINS", "executors")  # the built-in executors, no other entry point
    mp.chdir(tmp_path_factory.mktemp("cli"))
    plugins.reset()
    yield
    mp.undo()
    plugins.reset()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.sampled_from(["run", "--seed", "x", "--device", "gpu", "--dtype", "--suite", "nope",
                                      "--model", "::", "--dry-run", "--spec", "/nonexistent.yaml", "-1",
                                      "--method", "schema", "--plugin", "plugins", "--json", "--bogus"]),
                     min_size=1, max_size=6))
def test_cli_garbage_exits_cleanly(isolated, argv):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(["--plugins-dir", TOY, *argv])
        except SystemExit as e:  # argparse
            code = e.code
    assert code in (0, 1, 2), (argv, code)
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert err.getvalue().strip(), "an error exit must say why"


def test_bad_spec_value_via_cli_is_exit_2(isolated, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("seeds: [zero]\n")
    assert main(["--plugins-dir", TOY, "run", "--spec", str(spec), "--dry-run"]) == 2
    assert "seeds.0" in capsys.readouterr().err


def test_harness_errors_are_not_bare_exceptions():
    assert issubclass(SpecError, HarnessError)


# --------------------------------------------------------------------------- semantic (plan-time) checks
@pytest.fixture
def builtins_env(monkeypatch):
    """Entry points load as a user has them (the module-scoped ``isolated`` above turns them off)."""
    monkeypatch.delenv("HARNESS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def builtins_cli(builtins_env, tmp_path, monkeypatch):
    """The built-in plugins as a user has them, in a throw-away working folder."""
    from harness import plugins

    monkeypatch.chdir(tmp_path)
    plugins.reset()
    yield tmp_path
    plugins.reset()


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("harness: error:")]
    assert len(lines) == 1, err
    return err


def test_unknown_zoo_model_is_one_line_exit_2(builtins_cli, capsys):
    assert main(["run", "--suite", "lm_eval", "--model", "zoo:zoo-999", "--dry-run"]) == 2
    err = _one_error(capsys)
    assert "no zoo model 'zoo-999'" in err and "zoo-32" in err and len(err.strip().splitlines()) == 1


def test_unknown_zoo_revision_is_one_line_exit_2(builtins_cli, capsys):
    assert main(["run", "--suite", "lm_eval", "--model", "zoo:zoo-32@step5", "--dry-run"]) == 2
    err = _one_error(capsys)
    assert "has no revision 'step5'" in err and "step92" in err


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seed_outside_numpy_range_is_refused_when_planning(builtins_cli, capsys, seed):
    # without --dry-run: before this check the run planned 4 cells and recorded all 4 as failed
    assert main(["run", "--suite", "lm_eval", "--seed", seed, "--no-progress"]) == 2
    err = _one_error(capsys)
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1 and problems[0].startswith("  - seeds:") and "2**32" in problems[0], err
    assert not (builtins_cli / "harness-results").exists()


def test_train_sae_k_above_d_sae_is_one_line_exit_2(builtins_cli, capsys):
    out = builtins_cli / "D"
    code = main(["train-sae", "zoo:zoo-32", "--hook", "blocks.0.hook_resid_post", "--learner", "topk",
                 "--set", "k=100000", "--tokens", "5000", "--output-dir", str(out), "--no-progress"])
    assert code == 2
    err = _one_error(capsys)
    line = next(x for x in err.splitlines() if x.startswith("harness: error:"))
    assert "--set k: 100000 is more than d_sae = 256" in line and "allowed at most 256" in line and "Fix:" in line
    assert not out.exists()


@pytest.mark.parametrize("argv,needle", [
    (["--hook", "blocks.7.hook_resid_post"], "--hook: Unknown hook point 'blocks.7.hook_resid_post'"),
    (["--hook", "pattern.0"], "--hook: 'pattern.0' is an attention pattern"),
    (["--hook", "resid_post.0", "--set", "bogus=1"], "bogus: unknown key"),
    (["--hook", "resid_post.0", "--learner", "tied_sae"], "--learner tied_sae: not trainable by harness train-sae"),
    (["--hook", "resid_post.0", "--set", "d_sae=100000000"], "d_sae: gives d_sae = 100000000"),
    (["--hook", "resid_post.0", "--context-length", "4096"], "--context-length 4096: zoo:zoo-32 has 256 positions"),
    (["--hook", "resid_post.0", "--tokens", "0"], "--tokens 0: must be at least 1"),
    (["--hook", "resid_post.0", "--seed", "-3"], "--seed -3: must be at least 0"),
    (["--hook", "resid_post.0", "--text-file", "missing.txt"], "--text-file missing.txt: no such file"),
])
def test_train_sae_bad_arguments_exit_2_before_training(builtins_cli, capsys, argv, needle):
    assert main(["train-sae", "zoo:zoo-32", "--output-dir", "D", "--no-progress", *argv]) == 2
    assert needle in _one_error(capsys)
    assert not (builtins_cli / "D").exists()


def test_train_sae_running_out_of_text_is_one_line_exit_2(builtins_cli, capsys):
    (builtins_cli / "t.txt").write_text("the cat sat on the mat\n")
    code = main(["train-sae", "zoo:zoo-32", "--hook", "blocks.0.hook_resid_post", "--text-file", "t.txt",
                 "--tokens", "100000", "--batch-size", "64", "--output-dir", "D", "--no-progress"])
    assert code == 2
    assert "activation source ran out" in _one_error(capsys)


def test_train_sae_reads_the_hook_points_own_width(builtins_cli, capsys):
    # mlp.hook_post is d_mlp = 128 wide on zoo-32 (d_model 32): the learner must be built for 128
    code = main(["train-sae", "zoo:zoo-32", "--hook", "blocks.0.mlp.hook_post", "--set", "k=4", "--set", "d_sae=64",
                 "--tokens", "512", "--batch-size", "128", "--output-dir", "D", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "d_in=128, d_sae=64" in capsys.readouterr().out


SPEC_PROBLEMS = [
    ({"suites": [{"name": "sae", "config": {"hook_point": "blocks.9.hook_resid_post"}}], "methods": ["topk"]},
     "suites[0].config.hook_point: Unknown hook point 'blocks.9.hook_resid_post'"),
    ({"suites": [{"name": "sae", "config": {"context_length": 4096}}], "methods": ["topk"]},
     "suites[0].config.context_length: 4096 is more than the max positions of zoo:zoo-32 = 256"),
    ({"suites": ["sae"], "methods": [{"name": "topk", "config": {"k": 300}}]},
     "methods[0].config.k: 300 is more than d_sae = 256"),
    ({"suites": [{"name": "sae", "config": {"hook_point": "blocks.0.mlp.hook_post"}}],
      "methods": [{"name": "topk", "config": {"k": 300}}]}, None),  # d_mlp 128 x 8 = 1024 latents: fits
    ({"suites": ["superposition"], "methods": [{"name": "tied_sae", "config": {"expansion_factor": 0.001}}]},
     "methods[0].config.expansion_factor: gives d_sae = 0"),
    ({"suites": [{"name": "unlearning", "config": {"layers": [2]}}], "methods": []},
     "suites[0].config.layers: 2 out of range: zoo:zoo-32 has 2 layers, allowed -2..1"),
    ({"suites": [{"name": "unlearning", "config": {"layers": []}}], "methods": []}, "suites[0].config.layers: empty list"),
    ({"suites": [{"name": "unlearning", "config": {"capability_tasks": ["zoo_facts_frequnt"]}}], "methods": []},
     "no zoo task 'zoo_facts_frequnt'. Did you mean \"zoo_facts_frequent\"?"),
    ({"suites": [{"name": "unlearning", "config": {"sequences_jsonl": "nope.jsonl"}}], "methods": []},
     "suites[0].config.sequences_jsonl: no file 'nope.jsonl'"),
    ({"suites": ["unlearning"], "methods": [{"name": "leace", "config": {"layers": [-3]}}]},
     "methods[0].config.layers: -3 out of range"),
    ({"suites": [{"name": "lm_eval", "config": {"tasks": ["zoo_nope"]}}]}, "suites[0].config.tasks: no zoo task 'zoo_nope'"),
    ({"suites": [{"name": "scaling", "config": {"swap_heads": [2]}}]}, "swap_heads: [2] out of range: zoo:zoo-32 has 2 heads"),
    ({"suites": [{"name": "scaling", "config": {"swap_layers": [-1]}}]}, "swap_layers: -1 out of range"),
    ({"suites": ["hallucination"], "methods": [{"name": "send", "config": {"layer": 5}}]},
     "methods[0].config.layer: 5 out of range"),
]


@pytest.mark.parametrize("spec,needle", SPEC_PROBLEMS)
def test_model_dependent_spec_values_are_checked_when_planning(builtins_env, spec, needle):
    from harness.runner import plan

    regs = registries_with(builtins=True)
    run = RunSpec.model_validate({**spec, "models": ["zoo:zoo-32"]})
    if needle is None:
        assert plan(run, regs)
        return
    with pytest.raises(SpecError) as e:
        plan(run, regs)
    assert needle in str(e.value) and "Fix:" in str(e.value)


def test_third_party_plugins_declare_checks_against_the_default_shape(tmp_path):
    """A source that only gives resolve()'s "path" gets ModelShape from config.json; a plugin's check runs."""
    from harness.protocols import ModelSource, Suite
    from harness.results import SuiteOutput
    from harness.runner import plan
    from harness.zoo import zoo_model_path

    class FolderSource(ModelSource):
        name = "folder"
        description = "zoo folders by name"

        def list_models(self):
            return []

        def resolve(self, name, revision):
            return {"name": name, "revision": revision, "fingerprint": name, "path": zoo_model_path(name)}

        def load(self, name, revision, *, device, dtype):  # pragma: no cover - planning only
            raise AssertionError("planning must not load weights")

    class WidthSuite(Suite):
        name = "width_suite"
        description = "needs a width"

        class Config(PluginConfig):
            width: int = Field(8, ge=1, description="At most d_model.")

        @classmethod
        def check(cls, config, shape):
            return [f"width: {config.width} > d_model {shape.d_model}. Fix: lower it."] if config.width > shape.d_model else []

        def run(self, cell):  # pragma: no cover - planning only
            return SuiteOutput(metrics=[])

    class Plugs:
        @staticmethod
        @hookimpl
        def register_models(register):
            register(FolderSource)

        @staticmethod
        @hookimpl
        def register_suites(register):
            register(WidthSuite)

    regs = registries_with(("plugs", Plugs))
    ok = RunSpec.model_validate({"suites": [{"name": "width_suite", "config": {"width": 32}}], "models": ["folder:zoo-32"]})
    assert len(plan(ok, regs)) == 1
    bad = RunSpec.model_validate({"suites": [{"name": "width_suite", "config": {"width": 33}}], "models": ["folder:zoo-32"]})
    with pytest.raises(SpecError, match=r"suites\[0\]\.config\.width: 33 > d_model 32"):
        plan(bad, regs)


@pytest.mark.parametrize("arch", ["pythia-70m", "gpt2", "opt-125m", "llama-small"])
def test_model_shape_from_config_matches_the_loaded_model(arch):
    """Plan-time shapes (config.json only) agree with the runtime hook points and widths of real architectures."""
    import sys
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from _hf_configs import CONFIGS, shared

    from harness.models.hookpoints import list_hook_points, run_with_cache
    from harness.validation import ModelShape

    model = shared(arch, shrink=2 if arch in ("gpt2", "opt-125m") else None)  # as tests/test_hookpoints.py
    shape = ModelShape.from_config(model.config.to_dict(), arch)
    assert shape.hook_points == list_hook_points(model)
    assert shape.vocab_size == CONFIGS[arch]["vocab_size"]
    points = ["blocks.0.hook_resid_post", "blocks.1.mlp.hook_post", "blocks.-1.attn.hook_out", "hook_final"]
    _, acts = run_with_cache(model, points, torch.zeros(1, 4, dtype=torch.long))
    for p in points:
        assert shape.width(p) == acts[p].shape[-1], (arch, p)
        assert shape.at(p).d_in == acts[p].shape[-1]


def test_non_zoo_task_names_are_checked_against_lm_eval_index(monkeypatch):
    from harness import validation

    monkeypatch.setattr(validation, "_lm_eval_task_names", lambda: frozenset({"hellaswag", "piqa"}))
    assert validation.task_problems("tasks", ["hellaswag", "zoo_arithmetic"]) == []
    (problem,) = validation.task_problems("tasks", ["hellaswagg"])
    assert problem.startswith("tasks: no lm-eval task 'hellaswagg'. Did you mean \"hellaswag\"?") and "Fix:" in problem
