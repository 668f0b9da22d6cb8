import pytest
from toy_plugins import ToyScore

from harness.errors import RegistryError, UnknownNameError
from harness.protocols import Metric, Suite
from harness.registry import Register, Registry


def _metric(name: str) -> type[Metric]:
    return type("M", (ToyScore,), {"name": name})


def test_register_and_get():
    reg: Registry[Metric] = Registry("metric", Metric)
    Register(reg, "plug-a")(ToyScore)
    assert reg.get("toy_score") is ToyScore
    assert reg.entry("toy_score").origin == "plug-a"
    assert reg.names() == ["toy_score"] and "toy_score" in reg and len(reg) == 1


def test_duplicate_names_both_origins():
    reg: Registry[Metric] = Registry("metric", Metric)
    reg.add(ToyScore, "plug-a")
    with pytest.raises(RegistryError) as e:
        reg.add(_metric("toy_score"), "plug-b")
    assert "plug-a" in str(e.value) and "plug-b" in str(e.value) and "toy_score" in str(e.value)


def test_unknown_name_did_you_mean():
    reg: Registry[Metric] = Registry("metric", Metric)
    reg.add(ToyScore, "plug-a")
    with pytest.raises(UnknownNameError) as e:
        reg.get("toy_scor")
    assert 'Did you mean "toy_score"' in str(e.value)
    with pytest.raises(KeyError):  # also a KeyError for callers that expect one
        reg.get("zzz")


def test_frozen_refuses_late_registration():
    reg: Registry[Metric] = Registry("metric", Metric)
    reg.freeze()
    with pytest.raises(RegistryError, match="frozen"):
        reg.add(ToyScore, "late")


@pytest.mark.parametrize("bad", [object, Suite])
def test_wrong_base_refused(bad):
    reg: Registry[Metric] = Registry("metric", Metric)
    with pytest.raises(RegistryError, match="not a subclass"):
        reg.add(bad, "plug")


@pytest.mark.parametrize("name", ["", "Bad Name", "1abc", None])
def test_bad_names_refused(name):
    reg: Registry[Metric] = Registry("metric", Metric)
    with pytest.raises(RegistryError, match="name"):
        reg.add(_metric(name), "plug")
