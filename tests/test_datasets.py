"""The dataset kind: roles, the world / local / hf providers, presets, refs in configs and cell keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import Field

from harness import hookimpl
from harness.config import PluginConfig, RunSpec
from harness.datasets import (
    DatasetRef,
    LabelledText,
    QASet,
    SequenceSet,
    TextCorpus,
    dataset_field,
    dataset_identities,
    dataset_problems,
    key_dump,
    open_role,
)
from harness.errors import HarnessError, SpecError
from harness.protocols import Suite
from harness.results import SuiteOutput
from harness.testing import registries_with


@pytest.fixture(scope="module")
def regs():
    import harness.datasets.builtin as builtin

    return registries_with(("datasets", builtin))


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _local(path: Path, **cfg) -> dict:
    return {"dataset": "local", "config": {"path": str(path), **cfg}}


# --------------------------------------------------------------------------- world
def test_world_roles_are_the_world(regs):
    from harness.zoo import World

    w = World(seed=0)
    corpus = open_role("world", "corpus", regs)
    assert isinstance(corpus, TextCorpus)
    got = [t for t, _ in zip(corpus.texts(start=5), range(3))]
    assert got == [d.text for d in w.documents(5, 8)]
    lab = open_role({"dataset": "world", "config": {"class_set": "topic"}}, "labelled", regs)
    assert isinstance(lab, LabelledText) and lab.labels == list(w.topics) and lab.has_spurious
    ref = w.probing_examples(10, kind="topic", split="balanced", seed=1000 + 3)
    assert [(e.text, e.label) for e in lab.examples("train", 10, seed=3)] == [(e.text, e.label_name) for e in ref]
    qa = open_role("world", "qa", regs)
    assert isinstance(qa, QASet) and len(qa.items()) == len(w.facts)
    assert {i.tag for i in qa.items()} == {"frequent", "medium", "rare", "heldout"}
    seqs = open_role("world", "sequences", regs).items()
    assert isinstance(open_role("world", "sequences", regs), SequenceSet)
    assert [s.label for s in seqs].count("control") == len(w.controls)


# --------------------------------------------------------------------------- local files
@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet", "txt"])
def test_local_corpus_in_every_format(tmp_path, regs, fmt):
    texts = [f"document number {i}" for i in range(6)]
    path = tmp_path / f"c.{fmt}"
    if fmt == "jsonl":
        _jsonl(path, [{"text": t} for t in texts])
    elif fmt == "json":
        path.write_text(json.dumps([{"text": t} for t in texts]))
    elif fmt == "csv":
        path.write_text("text\n" + "".join(f"{t}\n" for t in texts))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": texts}), path)
    else:
        path.write_text("\n".join(texts) + "\n")
    corpus = open_role(_local(path), "corpus", regs)
    assert list(corpus.texts()) == texts
    assert list(corpus.texts(start=4)) == texts[4:]


def test_local_labelled_split_and_spurious(tmp_path, regs):
    rows = [{"bio": f"bio {i}", "job": ["nurse", "professor"][i % 2], "gender": ["f", "m"][(i // 2) % 2]}
            for i in range(40)]
    path = _jsonl(tmp_path / "bios.jsonl", rows)
    lab = open_role(_local(path, text_column="bio", label_column="job", spurious_column="gender",
                           test_fraction=0.25), "labelled", regs)
    train, test = lab.examples("train"), lab.examples("test")
    assert len(train) == 30 and len(test) == 10 and not {e.text for e in train} & {e.text for e in test}
    assert lab.labels == ["nurse", "professor"] and lab.has_spurious and train[0].spurious in ("f", "m")
    assert lab.examples("train", 5, seed=1) == lab.examples("train", 5, seed=1) != lab.examples("train", 5, seed=2)
    test_path = _jsonl(tmp_path / "t.jsonl", rows[:4])
    lab2 = open_role(_local(path, text_column="bio", label_column="job", test_path=str(test_path)), "labelled", regs)
    assert len(lab2.examples("train")) == 40 and len(lab2.examples("test")) == 4


def test_local_qa_aliases_nested_and_tags(tmp_path, regs):
    rows = [{"question": "Capital of Tarvia?", "answer": {"aliases": ["Bolira", "bolira city"]}, "split": "rare"},
            {"question": "Two plus two?", "answer": {"aliases": ["four"]}, "split": "frequent"}]
    qa = open_role(_local(_jsonl(tmp_path / "qa.jsonl", rows), answers_column="answer.aliases", tag_column="split"),
                   "qa", regs).items()
    assert qa[0].answers == ("Bolira", "bolira city") and qa[1].tag == "frequent"
    single = open_role(_local(_jsonl(tmp_path / "q2.jsonl", [{"question": "q", "answers": "a"}])), "qa", regs).items()
    assert single[0].answers == ("a",) and single[0].tag is None


def test_local_sequences_tokens_or_text(tmp_path, regs):
    path = _jsonl(tmp_path / "s.jsonl", [{"tokens": [1, 2, 3], "kind": "memorised"}, {"tokens": [4, 5], "kind": "x"}])
    items = open_role(_local(path, tokens_column="tokens", sequence_label_column="kind"), "sequences", regs).items()
    assert items[0].tokens == (1, 2, 3) and items[0].label == "memorised"


# --------------------------------------------------------------------------- bad data
def _problems(ref: dict, role: str, regs) -> list[str]:
    class Cfg(PluginConfig):
        data: DatasetRef = dataset_field(role, "data")

    return dataset_problems(Cfg(data=ref), regs)


def test_missing_column_names_the_field_and_the_columns(tmp_path, regs):
    path = _jsonl(tmp_path / "x.jsonl", [{"body": "a", "label": 1}, {"body": "b", "label": 0}])
    (msg,) = _problems(_local(path), "labelled", regs)
    assert msg.startswith("data: ") and '"text"' in msg and "text_column" in msg and "body, label" in msg
    with pytest.raises(HarnessError, match="spurious_column"):
        open_role(_local(path, text_column="body", spurious_column="gender"), "labelled", regs).examples("train")


def test_empty_missing_and_unreadable_files(tmp_path, regs):
    (tmp_path / "empty.jsonl").write_text("")
    assert "is empty" in _problems(_local(tmp_path / "empty.jsonl"), "corpus", regs)[0]
    assert "no such file" in _problems(_local(tmp_path / "nope.jsonl"), "corpus", regs)[0]
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    assert "not valid JSON" in _problems(_local(tmp_path / "bad.jsonl"), "corpus", regs)[0]
    (tmp_path / "x.weird").write_text("a\n")
    assert "config.format" in _problems(_local(tmp_path / "x.weird"), "corpus", regs)[0]


def test_one_class_and_mismatched_labels_are_refused(tmp_path, regs):
    one = _jsonl(tmp_path / "one.jsonl", [{"text": f"t{i}", "label": "a"} for i in range(10)])
    with pytest.raises(HarnessError, match="one class"):
        open_role(_local(one), "labelled", regs).labels
    train = _jsonl(tmp_path / "tr.jsonl", [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(10)])
    test = _jsonl(tmp_path / "te.jsonl", [{"text": "u", "label": "c"}])
    with pytest.raises(HarnessError, match="labels the training split lacks: c"):
        open_role(_local(train, test_path=str(test)), "labelled", regs).examples("test")


def test_unknown_dataset_and_wrong_role(regs):
    assert "Did you mean" in _problems({"dataset": "wrld"}, "corpus", regs)[0] or "world" in \
        _problems({"dataset": "wrld"}, "corpus", regs)[0]
    (msg,) = _problems("trivia_qa", "corpus", regs)
    assert 'provides qa, not "corpus"' in msg


# --------------------------------------------------------------------------- entity attributes (RAVEL)
TEMPLATES = {"country": ["%s is a city in the country of", "%s lies in"], "continent": ["%s is on the continent of"]}
CITIES = [{"entity": "Paris", "attributes": {"country": "France", "continent": "Europe"}},
          {"entity": "Lagos", "attributes": {"country": "Nigeria", "continent": "Africa", "river": "Ogun"}},
          {"entity": "Lima", "attributes": {"country": "Peru"}}]


def test_world_entity_attributes_are_its_relations(regs):
    from harness.datasets import EntityAttributes
    from harness.zoo import World

    w = World(seed=0)
    ea = open_role("world", "entity_attributes", regs)
    assert isinstance(ea, EntityAttributes) and ea.attributes == ["country", "profession", "colour"]
    assert ea.templates()["country"] == ["%s is a city in"]
    ents = ea.entities()
    assert [(e.entity, e.value(f.relation), e.split) for e, f in zip(ents, w.facts)] == \
        [(f.entity, f.answer, f.split) for f in w.facts]
    assert ea.templates()[w.facts[0].relation][0].replace("%s", w.facts[0].entity) == w.facts[0].prompt


def test_local_entity_attributes_jsonl_csv_and_hf(tmp_path, regs):
    import csv

    ea = open_role(_local(_jsonl(tmp_path / "cities.jsonl", CITIES), templates=TEMPLATES), "entity_attributes", regs)
    assert ea.attributes == ["country", "continent"] and ea.templates() == TEMPLATES
    ents = ea.entities()
    assert [e.entity for e in ents] == ["Paris", "Lagos", "Lima"]
    assert ents[1].values == (("country", "Nigeria"), ("continent", "Africa"))  # attributes without templates: unused
    assert ents[2].value("continent") is None and ents[2].value("country") == "Peru"
    flat = tmp_path / "cities.csv"
    with flat.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["city", "country", "continent"])
        w.writeheader()
        w.writerows([{"city": "Paris", "country": "France", "continent": "Europe"},
                     {"city": "Lima", "country": "Peru", "continent": ""}])
    ref = _local(flat, entity_column="city", attribute_columns=["country", "continent"], templates=TEMPLATES)
    assert dataset_problems(_EntCfg(data=ref), regs) == []
    assert [(e.entity, e.values) for e in open_role(ref, "entity_attributes", regs).entities()] == \
        [("Paris", (("country", "France"), ("continent", "Europe"))), ("Lima", (("country", "Peru"),))]
    cell = tmp_path / "json_cell.csv"  # SAEBench's mapping as JSON in one csv column
    cell.write_text('entity,attributes\nParis,"{""country"": ""France""}"\n')
    assert open_role(_local(cell, templates=TEMPLATES), "entity_attributes", regs).entities()[0].values == \
        (("country", "France"),)
    hf = {"dataset": "hf", "config": {"path": "json", "data_files": str(tmp_path / "cities.jsonl"),
                                      "streaming": False, "templates": TEMPLATES}}
    assert [e.entity for e in open_role(hf, "entity_attributes", regs).entities()] == ["Paris", "Lagos", "Lima"]


class _EntCfg(PluginConfig):
    data: DatasetRef = dataset_field("entity_attributes", "Entities.")


def test_bad_entity_attribute_data_names_the_field(tmp_path, regs):
    path = _jsonl(tmp_path / "cities.jsonl", CITIES)
    probs = dataset_problems(_EntCfg(data=_local(path)), regs)
    assert len(probs) == 1 and probs[0].startswith("data: config.templates is not set")
    probs = dataset_problems(_EntCfg(data=_local(path, templates={"country": ["%s in %s"], "continent": []})), regs)
    assert any("config.templates.country[0]: '%s in %s' holds '%s' 2 times, not once" in p for p in probs)
    assert any("config.templates.continent: no template" in p for p in probs)
    probs = dataset_problems(_EntCfg(data=_local(path, templates=TEMPLATES, entity_column="city")), regs)
    assert any('column "city" (entity_column) not found' in p for p in probs)
    scalar = _jsonl(tmp_path / "scalar.jsonl", [{"entity": "Paris", "attributes": "France"}])
    with pytest.raises(HarnessError, match="attributes_column.*not a mapping attribute -> value"):
        open_role(_local(scalar, templates=TEMPLATES), "entity_attributes", regs).entities()
    other = _jsonl(tmp_path / "other.jsonl", [{"entity": "Paris", "attributes": {"size": "big"}}])
    with pytest.raises(HarnessError, match="no entity has a value of the templates' attributes"):
        open_role(_local(other, templates=TEMPLATES), "entity_attributes", regs).entities()


def test_new_column_fields_keep_the_identity_of_existing_local_data(tmp_path, regs):
    """The entity_attributes fields of the local / hf column mapping are key-neutral: a local corpus keys as before."""
    from harness.datasets.ref import open_dataset

    path = _jsonl(tmp_path / "c.jsonl", [{"text": "hello"}])
    ident = open_dataset(DatasetRef.model_validate(_local(path)), regs).identity()
    assert not {"entity_column", "attributes_column", "attribute_columns", "templates"} & set(ident["config"])
    with_t = open_dataset(DatasetRef.model_validate(_local(path, templates=TEMPLATES)), regs).identity()
    assert with_t["config"]["templates"] == TEMPLATES


def test_hf_offline_names_the_way_to_allow_network(monkeypatch, regs, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    (msg,) = _problems("trivia_qa", "qa", regs)
    assert "HARNESS_ALLOW_NETWORK=1" in msg and "--allow-network" in msg and "local" in msg


def test_hf_provider_reads_a_local_builder(tmp_path, regs):
    path = _jsonl(tmp_path / "x.jsonl", [{"sentence": f"s{i}", "label": i % 3} for i in range(30)])
    ref = {"dataset": "hf", "config": {"path": "json", "data_files": str(path), "streaming": False,
                                       "text_column": "sentence", "label_names": ["a", "b", "c"]}}
    lab = open_role(ref, "labelled", regs)
    assert lab.labels == ["a", "b", "c"] and len(lab.examples("test")) == 6


def test_presets_are_hf_configs_with_overridable_fields(regs):
    from harness.datasets.ref import open_dataset

    ds = open_dataset(DatasetRef(dataset="trivia_qa", config={"limit": 50}), regs)
    assert ds.config.path == "mandarjoshi/trivia_qa" and ds.config.answers_column == "answer.aliases"
    assert ds.config.limit == 50 and ds.network
    bios = open_dataset(DatasetRef.model_validate("bias_in_bios_set1"), regs).config
    assert (bios.text_column, bios.label_column, bios.spurious_column) == ("hard_text", "profession", "gender")


# --------------------------------------------------------------------------- refs in configs and cell keys
class _Cfg(PluginConfig):
    corpus: DatasetRef = dataset_field("corpus", "Text.")
    probe_sets: list[DatasetRef] = dataset_field("labelled", "Class sets.", default=["world"])
    n: int = Field(3, description="n")


def test_key_dump_drops_default_data_fields_and_identity_hashes_content(tmp_path, regs):
    assert key_dump(_Cfg()) == {"n": 3} and dataset_identities(_Cfg(), regs) == {}
    path = _jsonl(tmp_path / "c.jsonl", [{"text": "hello"}])
    cfg = _Cfg(corpus=_local(path))
    assert key_dump(cfg)["corpus"]["dataset"] == "local"
    ident = dataset_identities(cfg, regs, prefix="suite.")
    first = ident["suite.corpus"]["path_sha256"]
    _jsonl(path, [{"text": "changed"}])
    assert dataset_identities(cfg, regs, prefix="suite.")["suite.corpus"]["path_sha256"] != first
    assert DatasetRef.model_validate("world") == DatasetRef() and str(DatasetRef()) == "world"


class _DataSuite(Suite):
    name = "data_suite"
    description = "Counts the documents of its corpus."
    method_kinds = ()
    metrics = ("toy_score",)
    default_models = ("toy:tiny",)

    class Config(PluginConfig):
        corpus: DatasetRef = dataset_field("corpus", "Text to count.")

    def run(self, cell):
        return SuiteOutput(metrics=[])


def test_plan_checks_data_fields_and_keys_cells_by_data(tmp_path):
    import harness.datasets.builtin as builtin
    import toy_plugins

    class _P:
        @staticmethod
        @hookimpl
        def register_suites(register):
            register(_DataSuite)

    from harness.runner import plan

    regs = registries_with(("toy", toy_plugins), ("datasets", builtin), ("data_suite", _P))
    spec = lambda cfg: RunSpec(suites=[{"name": "data_suite", "config": cfg}], models=["toy:tiny"])  # noqa: E731
    (world_cell,) = plan(spec({}), regs)
    assert world_cell.cell.datasets == {} and "corpus" not in world_cell.cell.suite_config
    with pytest.raises(SpecError, match=r"suites\[0\]\.config\.corpus: config\.path .*no such file"):
        plan(spec({"corpus": _local(tmp_path / "missing.jsonl")}), regs)
    path = _jsonl(tmp_path / "c.jsonl", [{"text": "a"}])
    (a,) = plan(spec({"corpus": _local(path)}), regs)
    _jsonl(path, [{"text": "b"}])
    (b,) = plan(spec({"corpus": _local(path)}), regs)
    assert a.cell.datasets["suite.corpus"]["dataset"] == "local" and a.key != b.key != world_cell.key


def test_harness_datasets_lists_providers_presets_and_suite_fields(capsys):
    from harness.cli import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("world", "local", "hf", "bias_in_bios_set1", "trivia_qa", "openwebtext"):
        assert name in out
    assert main(["datasets", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"world", "local", "hf"} <= {d["name"] for d in doc["datasets"]}
    # metric data fields (set through suites[].config.metrics.config); the scaling suite's own metric is not one
    assert doc["metric_fields"] == [{"metric": "sae_ravel", "field": "data", "role": "entity_attributes",
                                     "default": "world"}]
    assert "entity_attributes" in next(d for d in doc["datasets"] if d["name"] == "local")["roles"]


def test_the_readme_dataset_plugin_registers_and_opens(tmp_path):
    """The README's "Writing a dataset" example, run as written."""
    import types

    import harness.datasets.builtin as builtin

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Writing a dataset", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("readme_dataset")
    exec(compile(code, "README.md", "exec"), module.__dict__)  # noqa: S102 - our own README
    regs = registries_with(("datasets", builtin), ("readme_dataset", module))
    (tmp_path / "notes.txt").write_text("first\n\nsecond\nthird\n")
    corpus = open_role({"dataset": "my_corpus", "config": {"path": str(tmp_path / "notes.txt")}}, "corpus", regs)
    assert list(corpus.texts()) == ["first", "second", "third"] and list(corpus.texts(start=2)) == ["second", "third"]


def test_the_readme_real_model_spec_is_valid():
    """The README's "Your data" spec parses: every suite config validates and every data field names a
    registered dataset that provides the field's role (no network: nothing is opened)."""
    import yaml

    from harness.datasets.ref import dataset_fields, open_dataset

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    spec = yaml.safe_load(readme.split("# real.yaml\n", 1)[1].split("```", 1)[0])
    regs = registries_with(builtins=True)
    assert RunSpec.model_validate(spec).models
    for s in spec["suites"]:
        cfg = regs.suites.get(s["name"]).parse_config(s["config"])
        refs = [(role, ref) for _f, role, pairs in dataset_fields(cfg) for _p, ref in pairs]
        assert refs and all(role in open_dataset(ref, regs).roles for role, ref in refs)
