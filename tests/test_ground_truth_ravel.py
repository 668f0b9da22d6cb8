"""sae_ground_truth (latents vs the world's known features) and sae_ravel (cause / isolation)."""

from __future__ import annotations

import pytest
import torch

from harness.metric_inputs import SAEInputs
from harness_plugins.ground_truth import GroundTruth
from harness_plugins.ground_truth.features import best_f1, world_pools
from harness_plugins.ravel import Ravel
from harness_plugins.ravel.core import AttributeItems, ravel_scores, select_latents


# --------------------------------------------------------------------------- ground truth
def test_a_latent_equal_to_a_feature_gets_f1_one():
    labels = ["a", "b", "a", "c", "a", "b", "c", "c"]
    fires = torch.zeros(8, 5, dtype=torch.bool)
    fires[:, 3] = torch.tensor([lab == "a" for lab in labels])  # latent 3 = feature a
    fires[:, 1] = torch.tensor([lab in ("b", "c") for lab in labels])  # latent 1 = b or c
    fires[:, 0] = True  # fires everywhere
    out = {v: (j, f1, n) for v, j, f1, n in best_f1(fires, labels, min_positives=2)}
    assert out["a"] == (3, 1.0, 3)
    assert out["b"][0] == 1 and out["b"][1] == pytest.approx(2 * 2 / (5 + 2))  # TP 2, fires 5, positives 2
    assert out["c"][1] == pytest.approx(2 * 3 / (5 + 3))
    assert "b" not in {v for v, *_ in best_f1(fires, labels, min_positives=3)}  # too few positives


class _Signs(torch.nn.Module):
    """The neuron basis as a dictionary: relu(x) and relu(-x)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.W_dec = torch.nn.Parameter(torch.cat([torch.eye(d), -torch.eye(d)]), requires_grad=False)

    def encode(self, x):
        return torch.relu(torch.cat([x, -x], -1))

    def decode(self, z):
        return z @ self.W_dec


@pytest.fixture(scope="module")
def zoo32():
    from harness.models import load_model
    from harness.zoo.info import zoo_model_path

    return load_model(str(zoo_model_path("zoo-32")))


def test_world_of_knows_zoo_builds_only(zoo32, tmp_path):
    from harness.zoo import World
    from harness.zoo.identify import world_of

    world = world_of(zoo32)
    assert isinstance(world, World) and world.facts == World(seed=0).facts
    zoo32.model.save_pretrained(tmp_path / "copy")  # the same weights, but not a zoo checkpoint folder
    assert world_of(type("M", (), {"path": tmp_path / "copy"})()) is None
    assert world_of(type("M", (), {"path": None})()) is None


def test_world_pools_label_every_group():
    from harness.zoo import World

    pools = {p.group: p for p in world_pools(World(seed=0), ["topic", "first_letter", "country"], 50, ["frequent"], 0)}
    assert set(pools["topic"].labels) == set(World(seed=0).topics)
    assert all(t.endswith("starts with") and t[0] == lab for t, lab in zip(pools["first_letter"].texts, pools["first_letter"].labels))
    assert all(t.endswith("is a city in") for t in pools["country"].texts)


def test_ground_truth_metric_on_zoo_and_nothing_elsewhere(zoo32):
    inputs = SAEInputs(sae=_Signs(zoo32.d_model), activations=None, model=zoo32, hook_point="blocks.0.hook_resid_post")
    cfg = {"groups": ["topic", "entity_type"], "n_sentences": 80}
    values = {v.key: v for v in GroundTruth(cfg).compute(inputs)}
    assert values["gt_mean_f1"].n == 7 and 0 < values["gt_mean_f1"].value <= 1  # 4 topics + 3 entity types
    assert 0 <= values["gt_matched"].value <= 1
    foreign = type("M", (), {"path": None, "model": zoo32.model, "tokenizer": zoo32.tokenizer})()
    assert GroundTruth(cfg).compute(SAEInputs(sae=inputs.sae, activations=None, model=foreign,
                                              hook_point=inputs.hook_point)) == []


# --------------------------------------------------------------------------- RAVEL, constructed
def _two_attribute_items(n: int = 40, seed: int = 0):
    """Entities in R^4: dims 0-1 one-hot country (2 values), dims 2-3 one-hot profession; the 'model' reads
    each attribute as the argmax of its two dims. Both attributes' prompts see the same entity vector."""
    g = torch.Generator().manual_seed(seed)
    country, prof = torch.randint(0, 2, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)
    x = torch.zeros(n, 4)
    x[torch.arange(n), country] = 1.0
    x[torch.arange(n), 2 + prof] = 1.0
    items = {"country": AttributeItems("country", x, country), "profession": AttributeItems("profession", x, prof)}
    dims = {"country": [0, 1], "profession": [2, 3]}

    def predict(attr, base_rows, x_new):
        return x_new[:, dims[attr]].argmax(-1)

    return items, predict


class _Linear(torch.nn.Module):
    """A dictionary z = x @ M, x = z @ M^T with orthogonal M (no sparsity: only its basis matters)."""

    def __init__(self, m: torch.Tensor) -> None:
        super().__init__()
        self.M = torch.nn.Parameter(m, requires_grad=False)
        self.W_dec = torch.nn.Parameter(m.T.clone(), requires_grad=False)

    def encode(self, x):
        return x @ self.M

    def decode(self, z):
        return z @ self.M.T


def test_ravel_disentangled_dictionary_scores_one():
    items, predict = _two_attribute_items()
    sae = _Linear(torch.eye(4))
    r = ravel_scores(items, sae, predict, k=2, n_pairs=32, seed=0)
    assert r.latents == {"country": [0, 1], "profession": [2, 3]}
    assert r.cause == {"country": 1.0, "profession": 1.0}
    assert r.isolation == {"country": 1.0, "profession": 1.0}
    assert r.score == 1.0 and min(r.n_cause.values()) > 0


def test_ravel_entangled_or_whole_dictionary_loses_isolation():
    items, predict = _two_attribute_items()
    everything = ravel_scores(items, _Linear(torch.eye(4)), predict, k=4, n_pairs=32, seed=0)
    assert everything.mean_cause == 1.0 and everything.mean_isolation == 0.0  # transplanting it all moves both
    c, s = 2 ** -0.5, 2 ** -0.5
    mixed = torch.tensor([[c, 0, s, 0], [0, c, 0, s], [s, 0, -c, 0], [0, s, 0, -c]])  # each latent mixes both
    entangled = ravel_scores(items, _Linear(mixed), predict, k=2, n_pairs=32, seed=0)
    assert entangled.score < 1.0 and entangled.mean_isolation < 1.0


def test_select_latents_by_mean_difference():
    z = torch.tensor([[0.0, 1.0, 5.0], [0.0, 1.1, 5.0], [3.0, 1.0, 5.1], [3.0, 0.9, 5.0]])
    assert select_latents(z, torch.tensor([0, 0, 1, 1]), 1) == [0]


def test_ravel_metric_on_zoo_and_nothing_elsewhere(zoo32):
    inputs = SAEInputs(sae=_Signs(zoo32.d_model), activations=None, model=zoo32, hook_point="blocks.0.hook_resid_pre")
    values = {v.key: v for v in Ravel({"max_entities": 40, "n_pairs": 16, "k": 4}).compute(inputs)}
    assert set(values) == {"ravel_cause", "ravel_isolation", "ravel_score"}
    assert all(0 <= v.value <= 1 for v in values.values())
    assert values["ravel_score"].value == pytest.approx((values["ravel_cause"].value + values["ravel_isolation"].value) / 2)
    foreign = type("M", (), {"path": None})()
    assert Ravel().compute(SAEInputs(sae=inputs.sae, activations=None, model=foreign, hook_point="x")) == []
    with pytest.raises(ValueError, match="k: 999"):
        Ravel({"k": 999}).compute(inputs)


# --------------------------------------------------------------------------- RAVEL on a user's entity / attribute data
def _write_jsonl(path, rows):
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_ravel_on_local_data_equals_the_world_it_restates(zoo32, tmp_path):
    """The world's frequent and medium facts written as a local SAEBench-style file (entity, attributes,
    templates) give exactly the world's numbers: the local path reads the same items."""
    from harness.zoo import World

    w = World(seed=0)
    rows = [{"entity": f.entity, "attributes": {f.relation: f.answer}} for s in ("frequent", "medium")
            for f in w.facts_by_split(s)]
    templates = {r.name: [r.prompt.replace("{e}", "%s")] for r in w.relations.values()}
    data = {"dataset": "local", "config": {"path": _write_jsonl(tmp_path / "world.jsonl", rows), "templates": templates}}
    inputs = SAEInputs(sae=_Signs(zoo32.d_model), activations=None, model=zoo32, hook_point="blocks.0.hook_resid_pre")
    cfg = {"max_entities": 40, "n_pairs": 16, "k": 4}
    world = [(v.key, v.value, v.n) for v in Ravel(cfg).compute(inputs)]
    local = [(v.key, v.value, v.n) for v in Ravel({**cfg, "data": data}).compute(inputs)]
    assert len(world) == 3 and local == world
    two = [(v.key, v.n) for v in Ravel({**cfg, "data": data, "attributes": ["country", "colour"]}).compute(inputs)]
    assert two[0][1] < world[0][2]  # fewer attributes, fewer cause pairs
    with pytest.raises(ValueError, match=r'attributes: colur not in the data.*Did you mean "colour"'):
        Ravel({**cfg, "data": data, "attributes": ["country", "colur"]}).compute(inputs)
    with pytest.raises(ValueError, match="world seed 3, but the model was trained on world 0"):
        Ravel({**cfg, "data": {"dataset": "world", "config": {"seed": 3}}}).compute(inputs)


@pytest.fixture(scope="module")
def pythia_random(tmp_path_factory):
    """A random-initialised model of Pythia-70M's shape with its real tokenizer (skipped when absent)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _hf_configs import PYTHIA_SHAPE_DIR

    if not (PYTHIA_SHAPE_DIR / "config.json").is_file():
        pytest.skip("../shared/data/pythia-70m-shape is absent")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from harness.models import load_model

    folder = tmp_path_factory.mktemp("pythia-70m-shape-ravel")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(PYTHIA_SHAPE_DIR)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(PYTHIA_SHAPE_DIR).save_pretrained(folder)
    return load_model(str(folder))


NAMES = ("Alice Bob Carol David Erin Frank Grace Henry Irene Jack Karen Leo Maria Nina Oscar Paul Rosa Sam Tina Victor "
         "Wendy Adam Anna Ben Chris Dan Emma Eric Fred George Helen Ian James John Kate Laura Mark Mary Mike Peter "
         "Ryan Sarah Steve Tom").split()
PY_TEMPLATES = {"city": ["%s lives in the city of"], "job": ["%s works as a"]}


def _greedy_values(loaded, names, templates):
    """Each entity's value of each attribute = the random model's own greedy answer (so every item is known).
    ``names`` are single tokens, so one template's prompts have one length: one batch, no padding."""
    tok = loaded.tokenizer
    values = {n: {} for n in names}
    for attr, (template,) in templates.items():
        ids = [[tok.bos_token_id] + tok(template.replace("%s", n), add_special_tokens=False)["input_ids"] for n in names]
        with torch.no_grad():
            greedy = loaded.model(input_ids=torch.tensor(ids)).logits[:, -1].argmax(-1).tolist()
        for n, g in zip(names, greedy):
            value = tok.decode([g]).strip()
            if value and tok(" " + value, add_special_tokens=False)["input_ids"][:1] == [g]:
                values[n][attr] = value
    return [{"entity": n, "attributes": v} for n, v in values.items()]


def test_ravel_on_a_local_file_with_a_pythia_shaped_model(pythia_random, tmp_path):
    """Several attributes of the same entities (SAEBench's schema) from a local jsonl. At the embeddings
    (blocks.0.hook_resid_pre) of single-token entities, transplanting every latent of an exact dictionary
    turns the base prompt into the source's: cause 1, isolation 0. A few latents move less."""
    tok = pythia_random.tokenizer
    names = [n for n in NAMES if len(tok(n, add_special_tokens=False)["input_ids"]) == 1]
    rows = _greedy_values(pythia_random, names, PY_TEMPLATES)
    path = _write_jsonl(tmp_path / "people.jsonl", rows)
    data = {"dataset": "local", "config": {"path": path, "templates": PY_TEMPLATES}}
    sae = _Signs(pythia_random.d_model)
    inputs = SAEInputs(sae=sae, activations=None, model=pythia_random, hook_point="blocks.0.hook_resid_pre")
    every = {v.key: v for v in Ravel({"data": data, "k": 2 * pythia_random.d_model, "n_pairs": 16,
                                      "max_entities": 64}).compute(inputs)}
    assert set(every) == {"ravel_cause", "ravel_isolation", "ravel_score"}
    assert every["ravel_cause"].value == 1.0 and every["ravel_isolation"].value == 0.0
    assert every["ravel_cause"].n > 0 and every["ravel_isolation"].n > 0
    few = {v.key: v.value for v in Ravel({"data": data, "k": 4, "n_pairs": 16, "max_entities": 64}).compute(inputs)}
    assert few["ravel_cause"] < 1.0 and few["ravel_isolation"] > 0.0
    assert Ravel({"k": 4}).compute(inputs) == []  # world data (the default) on a non-zoo model: no number
