import pytest

from harness.config import ModelRef, RunSpec, load_spec
from harness.errors import SpecError


@pytest.mark.parametrize(
    "text,source,name,rev",
    [
        ("zoo:zoo-m", "zoo", "zoo-m", None),
        ("zoo:zoo-m@step500", "zoo", "zoo-m", "step500"),
        ("EleutherAI/pythia-70m", "hf", "EleutherAI/pythia-70m", None),
        ("hf:gpt2@main", "hf", "gpt2", "main"),
        ("./models/local", "hf", "./models/local", None),
    ],
)
def test_model_ref_parse(text, source, name, rev):
    ref = ModelRef.parse(text)
    assert (ref.source, ref.name, ref.revision) == (source, name, rev)
    assert ModelRef.parse(str(ref)) == ref


def test_spec_from_yaml_and_overrides(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text("suites: [toy_suite]\nmethods:\n  - name: toy_eraser\n    config: {strength: 0.2}\nseeds: [1, 2]\n")
    spec = load_spec(p, {"models": ["toy:a"], "device": "cpu"})
    assert spec.suites[0].name == "toy_suite" and spec.methods[0].config == {"strength": 0.2}
    assert spec.seeds == [1, 2] and spec.models == [ModelRef(source="toy", name="a")] and spec.device == "cpu"


@pytest.mark.parametrize(
    "yaml_text,needle",
    [
        ("sedes: [1]\n", 'sedes: unknown key. Did you mean "seeds"?'),
        ("seeds: [one]\n", "seeds.0"),
        ("device: gpu\n", "device"),
        ("methods:\n  - name: x\n    confg: {}\n", "methods.0.confg: unknown key"),
        ("- a\n- b\n", "must be a mapping"),
        ("suites: [\n", "not valid YAML"),
    ],
)
def test_bad_spec_names_field(tmp_path, yaml_text, needle):
    p = tmp_path / "spec.yaml"
    p.write_text(yaml_text)
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert needle in str(e.value)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="Cannot read run spec"):
        load_spec(tmp_path / "nope.yaml")


def test_default_spec():
    spec = RunSpec()
    assert spec.suites == [] and spec.methods is None and spec.models == [] and spec.seeds is None
