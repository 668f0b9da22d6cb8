"""Open to plugin authors: a third party's learner and sae metric on the sae board (loaded through
its entry point), metric include / exclude, and existing SAEs evaluated through ``pretrained_sae``
(SAELens and sparsify folders) and ``harness eval-sae`` (a ``harness train-sae`` output)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import yaml

torch = pytest.importorskip("torch")

from conftest import make_distribution  # noqa: E402

from harness import plugins  # noqa: E402
from harness.cli import main  # noqa: E402

MODEL = "zoo:zoo-32"
HOOK = "blocks.0.hook_resid_post"
#: The smallest sae-suite budget: a few seconds a row on zoo-32 (no sweep, probing, absorption, SCR/TPP).
TINY = {"hook_point": HOOK, "train_tokens": 2048, "epochs": 1, "batch_size": 256, "eval_tokens": 512,
        "sweep_values": [], "probing": False, "absorption": False, "scr_tpp": False, "tsne": False, "bootstrap": 0}
TINY_SETS = [a for k, v in TINY.items() if k != "hook_point" for a in ("--set", f"{k}={json.dumps(v)}")]

THIRD_PARTY = textwrap.dedent(
    '''
    """A third party's package: a ReLU SAE and a computed sae-scope metric."""
    import torch

    from harness import hookimpl
    from harness.protocols import Metric
    from harness.sae.base import SAEBase
    from harness.sae.config import SAEConfig
    from harness.sae.plugin import LazySAE


    class TpReLU(LazySAE):
        name = "tp_relu"
        description = "A third party's ReLU SAE with an L1 penalty."
        Config = SAEConfig
        impl = ":TpReLUSAE"


    class TpReLUSAE(SAEBase, TpReLU):
        def encode(self, x):
            return torch.relu(self.encode_pre(x))

        def loss(self, x, step, total_steps):
            f = self.encode(x)
            mse = (self.decode(f) - x).pow(2).sum(-1).mean()
            return mse + 1e-3 * f.abs().sum(-1).mean(), {"mse": float(mse.detach())}


    class TopLatentMean(Metric):
        name = "tp_top_latent_mean"
        description = "Mean activation, over the held-out tokens, of the latent with the largest mean."
        higher_is_better = True
        scope = "sae"

        def compute(self, inputs):
            with torch.no_grad():
                f = inputs.sae.encode(inputs.activations)
            return self.value(float(f.mean(0).max()), n=int(f.shape[0]))


    @hookimpl
    def register_dictionary_learners(register):
        register(TpReLU)


    @hookimpl
    def register_metrics(register):
        register(TopLatentMean)
    '''
)


def _zoo_ok() -> bool:
    try:
        from harness.zoo import list_zoo_models
    except ImportError:
        return False
    return "zoo-32" in list_zoo_models()


pytestmark = pytest.mark.skipif(not _zoo_ok(), reason="no zoo-32 checkpoint")


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """Every installed plugin (entry points), re-discovered for this test and after it."""
    monkeypatch.delenv("HARNESS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)
    plugins.reset()
    yield tmp_path
    plugins.reset()


@pytest.fixture
def third_party(fresh, monkeypatch):
    """The package above, installed as distribution tp-openness with an entry point in group harness."""
    site = fresh / "site"
    site.mkdir()
    (site / "tp_openness.py").write_text(THIRD_PARTY)
    make_distribution(site, "tp-openness", {"tp_openness": "tp_openness"})
    monkeypatch.syspath_prepend(str(site))
    plugins.reset()
    yield fresh
    sys.modules.pop("tp_openness", None)


def _run(tmp, suite_config, methods, *extra):
    spec = tmp / "spec.yaml"
    spec.write_text(yaml.safe_dump({"suites": [{"name": "sae", "config": suite_config}], "methods": methods,
                                    "models": [MODEL], "seeds": [0]}))
    return main(["run", "--spec", str(spec), "--no-progress", "--device", "cpu", "--output-dir", str(tmp / "res"),
                 "--leaderboard-dir", str(tmp / "lb"), *extra])


def _board(tmp):
    return json.loads((tmp / "lb" / "sae.json").read_text())


def _records(tmp):
    from harness.store import Store

    return [r.model_dump(mode="json") for r in Store(tmp / "res").records("sae")]


def _rows(tmp):
    return {r["label"]: r for r in _board(tmp)["rows"]}


def test_third_party_learner_and_metric_on_the_sae_board(third_party, capsys):
    tmp = third_party
    methods = [{"name": "topk", "config": {"k": 4, "d_sae": 64}}, {"name": "tp_relu", "config": {"d_sae": 64}}]
    assert _run(tmp, TINY, methods) == 0
    out = capsys.readouterr().out
    rows = _rows(tmp)
    assert set(rows) == {"topk", "tp_relu"} and all(r["status"] == "ok" for r in rows.values())
    assert "tp_top_latent_mean" in {c["name"] for c in _board(tmp)["columns"]}
    assert "tp_top_latent_mean" in out  # the printed board has the column
    values = {label: r["values"]["tp_top_latent_mean"]["mean"] for label, r in rows.items()}
    assert values["topk"] != pytest.approx(values["tp_relu"], rel=1e-3), values
    # the built-in columns are all still there
    assert {"sae_ce_loss_recovered", "sae_l0", "sae_alive_fraction", "sae_dense_fraction[>1%]"} <= set(rows["topk"]["values"])

    # the same version reuses every cell; bumping the package's version recomputes its cells
    assert _run(tmp, TINY, methods) == 0 and "reused 2, failed 0" in capsys.readouterr().err
    import shutil

    shutil.rmtree(next((tmp / "site").glob("tp_openness-*.dist-info")))
    make_distribution(tmp / "site", "tp-openness", {"tp_openness": "tp_openness"}, version="0.2")
    plugins.reset()
    assert _run(tmp, TINY, methods) == 0 and "computed 2, reused 0, failed 0" in capsys.readouterr().err
    bumped = [r for r in _records(tmp) if r["cell"].get("plugins") == {"tp-openness": "0.2"}]
    assert {r["label"] for r in bumped} == {"topk", "tp_relu"}
    assert bumped[0]["provenance"]["plugins"]["suite"]["distribution"] == "harness-interp"

    # exclude drops the column (a new suite config: new cells, recomputed)
    excluded = {**TINY, "metrics": {"exclude": ["tp_top_latent_mean"]}}
    assert _run(tmp, excluded, methods[:1], "--leaderboard-dir", str(tmp / "lb2")) == 0
    recs = _records(tmp)
    cols = [{m["metric"] for m in r["output"]["metrics"]} for r in recs if r["cell"]["suite_config"].get("metrics")]
    assert cols and all("tp_top_latent_mean" not in c and "sae_l0" in c for c in cols)


def test_unknown_metric_names_are_refused_at_plan_time(third_party, capsys):
    tmp = third_party
    methods = [{"name": "topk", "config": {"k": 4, "d_sae": 64}}]
    assert _run(tmp, {**TINY, "metrics": {"include": ["tp_top_latent_mea"]}}, methods, "--dry-run") == 2
    err = capsys.readouterr().err
    assert "suites[0].config.metrics.include" in err and 'Did you mean "tp_top_latent_mean"' in err
    assert "sae_alive_fraction" in err  # the registered computed metrics of the scope are listed
    assert _run(tmp, {**TINY, "metrics": {"exclude": ["sae_l0"]}}, methods, "--dry-run") == 2
    assert "ReportedMetric" in capsys.readouterr().err  # reported by the suite: cannot be left out
    assert _run(tmp, {**TINY, "metrics": {"exclude": ["hallucination_rate"]}}, methods, "--dry-run") == 2
    assert 'has scope "generations", not "sae"' in capsys.readouterr().err
    assert not (tmp / "res").exists()


def test_extra_metric_flag_points_at_the_suite_selection(third_party, capsys):
    assert main(["run", "--suite", "sae", "--model", MODEL, "--extra-metric", "tp_top_latent_mean", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "only model-scope metrics" in err and "suites[].config.metrics" in err


def test_suite_configs_without_selection_keep_their_record_keys():
    """``metrics`` (and its ``config`` while empty) is left out of a suite config's key dump while unset: old
    record keys stay valid."""
    from harness.config import key_dump
    from harness.metric_selection import SelectsMetrics
    from harness.testing import registries_with

    regs = registries_with(builtins=True)
    for name in ("sae", "unlearning", "hallucination", "hallucination_detection"):
        cfg_cls = regs.suites.get(name).Config
        assert issubclass(cfg_cls, SelectsMetrics), name
        assert "metrics" not in key_dump(cfg_cls())
        assert key_dump(cfg_cls(metrics={"exclude": []}))["metrics"] == {"include": None, "exclude": []}
        with_config = key_dump(cfg_cls(metrics={"exclude": [], "config": {"m": {"a": 1}}}))
        assert with_config["metrics"]["config"] == {"m": {"a": 1}}


def _unit_rows(w: torch.Tensor) -> torch.Tensor:
    return w / w.norm(dim=-1, keepdim=True)


def _saelens_folder(path):
    """A topk SAE saved by harness, its harness block removed: the plain SAELens layout."""
    from harness.testing import registries_with

    sae = registries_with(builtins=True)["dictionary_learner"].get("topk").create(32, {"d_sae": 64, "k": 4}, seed=3)
    sae.save(path)
    cfg = json.loads((path / "cfg.json").read_text())
    cfg.pop("harness")
    cfg["hook_name"] = HOOK
    (path / "cfg.json").write_text(json.dumps(cfg))
    return path


def _sparsify_folder(path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(5)
    path.mkdir()
    (path / "cfg.json").write_text(json.dumps({"activation": "topk", "k": 6, "num_latents": 48, "d_in": 32,
                                               "normalize_decoder": True, "expansion_factor": 0}))
    save_file({"encoder.weight": torch.randn(48, 32, generator=g) / 32 ** 0.5, "encoder.bias": torch.zeros(48),
               "W_dec": _unit_rows(torch.randn(48, 32, generator=g)), "b_dec": torch.zeros(32)},
              str(path / "sae.safetensors"))
    return path


def test_saelens_and_sparsify_folders_get_rows_through_pretrained_sae(fresh):
    tmp = fresh
    lens, sparsify = _saelens_folder(tmp / "lens-sae"), _sparsify_folder(tmp / "sparsify-sae")
    methods = [{"name": "pretrained_sae", "config": {"path": str(lens)}, "label": "from-saelens"},
               {"name": "pretrained_sae", "config": {"path": str(sparsify), "format": "sparsify"}, "label": "from-sparsify"}]
    assert _run(tmp, TINY, methods) == 0
    rows = _rows(tmp)
    assert set(rows) == {"from-saelens", "from-sparsify"} and all(r["status"] == "ok" for r in rows.values())
    assert rows["from-saelens"]["values"]["sae_l0"]["mean"] <= 4 + 1e-6
    assert rows["from-sparsify"]["values"]["sae_l0"]["mean"] <= 6 + 1e-6
    recs = {r["label"]: r for r in _records(tmp)}
    for label, fmt, folder in (("from-saelens", "saelens", lens), ("from-sparsify", "sparsify", sparsify)):
        src = recs[label]["output"]["details"]["pretrained"]
        assert src["format"] == fmt and src["path"] == str(folder) and src["content_hash"].startswith("sha256:")
        assert recs[label]["cell"]["method_config"]["content_hash"] == src["content_hash"]  # part of the cell key
        assert recs[label]["output"]["details"]["timings_s"].get("train") is None  # loaded, not trained


def test_pretrained_sae_content_hash_changes_the_cell_key_and_pins(fresh):
    from harness.config import RunSpec
    from harness.errors import SpecError
    from harness.runner import plan
    from harness.testing import registries_with

    regs = registries_with(builtins=True)
    folder = _sparsify_folder(fresh / "s")

    def key(config):
        spec = RunSpec(suites=[{"name": "sae", "config": TINY}], models=[MODEL],
                       methods=[{"name": "pretrained_sae", "config": config}])
        return plan(spec, regs)[0].key

    before = key({"path": str(folder)})
    pinned = regs["dictionary_learner"].get("pretrained_sae").parse_config({"path": str(folder)}).content_hash
    cfg = json.loads((folder / "cfg.json").read_text())
    (folder / "cfg.json").write_text(json.dumps({**cfg, "k": 3}))
    assert key({"path": str(folder)}) != before
    with pytest.raises(SpecError, match="content_hash: .* not the pinned"):
        key({"path": str(folder), "content_hash": pinned})


def test_pretrained_sae_refusals_name_the_field(fresh, capsys):
    tmp = fresh
    lens, sparsify = _saelens_folder(tmp / "lens"), _sparsify_folder(tmp / "sp")
    (tmp / "empty").mkdir()
    cases = [
        ({}, "path: not set"),
        ({"path": str(tmp / "nope")}, "path: no folder"),
        ({"path": str(tmp / "empty")}, "is not an SAE folder"),
        ({"path": str(sparsify), "format": "saelens"}, "looks like a sparsify folder"),
    ]
    for config, needle in cases:
        assert _run(tmp, TINY, [{"name": "pretrained_sae", "config": config}], "--dry-run") == 2
        err = capsys.readouterr().err
        assert "methods[0].config.path" in err or "methods[0].config" in err, err
        assert needle in err, err
    # hook_name of cfg.json differs from the suite's hook point: refused with both named, unless allowed
    other = {**TINY, "hook_point": "blocks.1.hook_resid_post"}
    assert _run(tmp, other, [{"name": "pretrained_sae", "config": {"path": str(lens)}}], "--dry-run") == 2
    err = capsys.readouterr().err
    assert HOOK in err and "blocks.1.hook_resid_post" in err and "allow_hook_mismatch" in err
    allowed = {"path": str(lens), "allow_hook_mismatch": True}
    assert _run(tmp, other, [{"name": "pretrained_sae", "config": allowed}], "--dry-run") == 0
    # d_in differs from the width at the hook point (mlp_post of zoo-32 is 4 x 32 wide)
    mlp = {**TINY, "hook_point": "blocks.0.mlp.hook_post"}
    assert _run(tmp, mlp, [{"name": "pretrained_sae", "config": {"path": str(sparsify)}}], "--dry-run") == 2
    assert "reads d_in = 32" in capsys.readouterr().err
    # nothing to train
    assert main(["train-sae", MODEL, "--hook", HOOK, "--learner", "pretrained_sae", "--output-dir", "x"]) == 2
    assert "not trainable" in capsys.readouterr().err


def test_eval_sae_scores_a_train_sae_output(fresh, capsys):
    tmp = fresh
    out = tmp / "saes" / "zoo32-topk"
    assert main(["train-sae", MODEL, "--hook", HOOK, "--learner", "topk", "--set", "k=4", "--set", "d_sae=64",
                 "--tokens", "2048", "--batch-size", "256", "--no-progress", "--output-dir", str(out)]) == 0
    capsys.readouterr()
    argv = ["eval-sae", str(out), "--model", MODEL, "--hook", HOOK, *TINY_SETS, "--no-progress", "--device", "cpu",
            "--output-dir", str(tmp / "res"), "--leaderboard-dir", str(tmp / "lb")]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "zoo32-topk" in printed.out and "computed 1, reused 0, failed 0" in printed.err
    row = _rows(tmp)["zoo32-topk"]
    assert row["method"] == "pretrained_sae" and row["status"] == "ok"
    assert row["values"]["sae_l0"]["mean"] <= 4 + 1e-6 and 0 < row["values"]["sae_explained_variance"]["mean"] <= 1
    assert main(argv) == 0 and "computed 0, reused 1" in capsys.readouterr().err  # same store: reused
    assert main([*argv, "--label", "a", "--label", "b"]) == 2
    assert "2 labels for 1 paths" in capsys.readouterr().err


def test_eval_sae_labels_are_distinct():
    from harness.sae.eval_cli import row_labels

    assert row_labels(["a/sae", "b/sae", "c/other"], []) == ["sae", "sae-2", "other"]
    assert row_labels(["a", "b"], ["x", "y"]) == ["x", "y"]


def test_each_suite_adds_the_computed_metrics_of_its_scope():
    """Which extras each suite computes: a third party's metric of the scope, never a detector (scored through
    its AUROC), never a metric some suite declares as its own; include / exclude select by name."""
    from harness import hookimpl
    from harness.metric_selection import extra_metric_names
    from harness.protocols import Metric
    from harness.testing import registries_with

    def metric(name, scope, **attrs):
        return type(name, (Metric,), {"name": name, "scope": scope, "higher_is_better": True,
                                      "compute": lambda self, inputs: 0.0, "__module__": __name__, **attrs})

    extra = [metric("tp_gen", "generations"), metric("tp_detector", "generations", detector=True),
             metric("tp_edit", "intervention"), metric("tp_sae", "sae"), metric("tp_model", "model")]
    plugin = type("TP", (), {"register_metrics": staticmethod(hookimpl(lambda register: [register(m) for m in extra]))})
    regs = registries_with(("tp", plugin), builtins=True)
    got = {s: extra_metric_names(regs.suites.get(s).Config(), regs)
           for s in ("sae", "unlearning", "hallucination", "hallucination_detection")}
    builtin_sae = ["sae_autointerp", "sae_ground_truth"]  # built-in plugins no suite declares (added the same way)
    assert got == {"sae": [*builtin_sae, "tp_sae"], "unlearning": ["tp_edit"], "hallucination": ["tp_gen"],
                   "hallucination_detection": ["tp_gen"]}
    # an opt-in metric (sae_ravel) is computed only when metrics.include names it
    sae_cfg = regs.suites.get("sae").Config
    assert extra_metric_names(sae_cfg(metrics={"include": ["sae_ravel"]}), regs) == ["sae_ravel"]
    cfg = regs.suites.get("hallucination").Config
    assert extra_metric_names(cfg(metrics={"include": ["hallucination_auroc"]}), regs) == ["hallucination_auroc"]
    assert extra_metric_names(cfg(metrics={"exclude": ["tp_gen"]}), regs) == []
    assert extra_metric_names(cfg(metrics={"include": []}), regs) == []
