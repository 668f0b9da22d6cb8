"""Property-based bad input: any malformed run spec or plugin config gives one validation
error naming the field path; malformed CLI arguments exit 2 without a traceback."""

import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.config import RunSpec, validate_config
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
    try:
        validate_config(cls, {field: value}, where=where)
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
