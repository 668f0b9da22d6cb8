"""hallucination_detectors (EigenScore, EES, baselines, AUROC) and send_mitigators (SeND + controls)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness_plugins.hallucination_detectors import scores  # noqa: E402
from harness_plugins.send_mitigators import finetune as ft  # noqa: E402
from harness_plugins.send_mitigators import send  # noqa: E402


def test_eigenscore_equals_direct_logdet_on_fixed_matrix():
    z = np.array([[1.0, 2.0, 0.0, -1.0], [0.5, -1.0, 2.0, 1.0], [3.0, 0.0, 1.0, 1.0]])
    d = z.shape[1]
    j = np.eye(d) - np.ones((d, d)) / d  # centring matrix
    cov = z @ j @ z.T / (d - 1)
    direct = math.log(np.linalg.det(cov + 1e-3 * np.eye(3))) / 3
    assert scores.eigenscore(z) == pytest.approx(direct, abs=1e-12)
    assert scores.eigenscore(np.full((5, 8), 3.0)) == pytest.approx(math.log(1e-3), abs=1e-9)


def test_chebyshev_coefficients_use_cos_m_arccos():
    lo = 0.05
    c = scores.chebyshev_log_coefficients(lo, 60)
    t = np.linspace(-1, 1, 41)
    approx = np.polynomial.chebyshev.chebval(t, c)  # T_m(t) = cos(m arccos t)
    assert np.abs(approx - np.log(lo + (1 - lo) * (t + 1) / 2)).max() < 1e-4


def test_ees_close_to_exact_on_random_embeddings():
    rng = np.random.default_rng(0)
    for k, d in [(10, 64), (32, 512)]:
        z = rng.standard_normal((k, d))
        exact = scores.eigenscore(z)
        est = np.mean([scores.efficient_eigenscore(z, seed=s) for s in range(5)])
        assert abs(est - exact) < 0.05, (k, d, est, exact)


@pytest.fixture(scope="module")
def zoo():
    from harness.models import load_model
    from harness.zoo import zoo_model_path

    return load_model(zoo_model_path("zoo-32", "main"), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def samples(zoo):
    from harness.zoo import World

    from harness_plugins.hallucination_detectors.sampling import sample_facts

    w = World(seed=0)
    facts = w.facts_by_split("frequent")[:6] + w.facts_by_split("heldout")[:6]
    return sample_facts(zoo, facts, k=8, temperature=1.0, max_new_tokens=4, pooling="last", seed=0)


def test_ees_tracks_exact_on_zoo_embeddings(samples):
    exact = np.array([scores.eigenscore(q.embeddings) for q in samples])
    # Real answers are nearly collinear: K-1 eigenvalues sit at alpha, the log's singular end, so the
    # Chebyshev truncation dominates; the error falls with M (documented tolerance: README).
    err = {}
    for m in (20, 80):
        est = np.array([scores.efficient_eigenscore(q.embeddings, n_moments=m) for q in samples])
        err[m] = np.abs(est - exact).mean()
        assert np.corrcoef(est, exact)[0, 1] > 0.9
    assert err[80] < 0.45 and err[80] < err[20]


def test_samples_are_judged_against_the_truth(samples):
    from harness.evaluation.generation import normalise_answer

    for q in samples:
        assert q.hallucinated == (normalise_answer(q.greedy) != normalise_answer(q.truth))
        assert len(q.texts) == 8 and q.embeddings.shape[0] == 8
        assert all(lp and all(v <= 0 for v in lp) for lp in q.token_logprobs)


def test_auroc_and_baselines_hand_cases():
    from harness.stats import auroc

    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert scores.predictive_entropy([[-1.0, -3.0], [-2.0]]) == pytest.approx(2.0)
    assert scores.perplexity([[-math.log(2)], [-math.log(4)]]) == pytest.approx(3.0)
    assert scores.lexical_similarity(["a b", "a b", "c"]) == pytest.approx(-1 / 3)


def test_detectors_found_in_registry():
    from harness.testing import registries_with

    reg = registries_with(builtins=True)["metric"]
    names = [n for n in reg.names() if getattr(reg.get(n), "detector", False)]
    for n in ("hd_eigenscore", "hd_efficient_eigenscore", "hd_perplexity", "hd_predictive_entropy", "hd_lexical_similarity"):
        assert n in names


def test_zero_neurons_exact_and_send_leaves_input_untouched(zoo):
    from harness_plugins.send_mitigators import SensitiveNeuronDropout

    net = ft.copy.deepcopy(zoo.model)
    ups, down = ft.mlp_modules(net, 1)
    before_up, before_down = ups[0].weight.clone(), down.weight.clone()
    ft.zero_neurons(net, 1, [2, 5])
    assert (ups[0].weight[[2, 5]] == 0).all() and (ups[0].bias[[2, 5]] == 0).all()
    assert (down.weight[:, [2, 5]] == 0).all()
    keep = [i for i in range(before_up.shape[0]) if i not in (2, 5)]
    assert torch.equal(ups[0].weight[keep], before_up[keep]) and torch.equal(down.weight[:, keep], before_down[:, keep])

    original = {k: v.clone() for k, v in zoo.model.state_dict().items()}
    texts = ["Lonulbo is a city in Rukmoia.", "Kadan Fusser works as a sailor."] * 4
    m = SensitiveNeuronDropout({"epochs": 3, "every_epochs": 2, "drop_fraction": 0.1, "n_track": 4})
    out = m.apply(zoo, texts, seed=0)
    assert all(torch.equal(v, zoo.model.state_dict()[k]) for k, v in original.items())
    hist = out.model.mitigation_history
    (epoch, dropped), = hist["dropped"]
    assert epoch == 2 and len(dropped) == round(0.1 * ft.n_neurons(out.model, hist["layer"]))
    ups, down = ft.mlp_modules(out.model, hist["layer"])
    assert (ups[0].weight[dropped] == 0).all() and (down.weight[:, dropped] == 0).all()
    rest = [i for i in range(ups[0].weight.shape[0]) if i not in dropped]
    assert (ups[0].weight[rest].abs().sum(1) > 0).all()


def test_sensitivity_score_is_netchange_times_var():
    a = np.array([[0.0, 1.0], [0.0, 1.0]])
    b = np.array([[2.0, 1.0], [4.0, 1.0]])
    s = send.sensitivity([a, b], "checkpoints")
    assert s[1] == 0 and s[0] == pytest.approx(3.0 * np.mean([1.0, 4.0]))
    assert send.sensitivity([a, b], "examples")[0] == pytest.approx(3.0 * 1.0)
    assert send.top_fraction(np.array([0.1, 3.0, 2.0, 0.0]), 0.5) == [1, 2]


def _mitigator_names():
    from harness.testing import registries_with

    return registries_with(builtins=True)["hallucination_mitigator"].names()


@pytest.mark.parametrize("name", _mitigator_names())
def test_every_mitigator_tiny_apply(name, zoo):
    from harness.testing import registries_with

    cls = registries_with(builtins=True)["hallucination_mitigator"].get(name)
    m = cls(cls.Config().model_dump() | {"epochs": 2} if "epochs" in cls.Config.model_fields else None)
    before = {k: v.clone() for k, v in zoo.model.state_dict().items()}
    out = m.apply(zoo, ["Lonulbo is a city in Rukmoia."] * 8, seed=0)
    assert out.model is not zoo.model
    assert all(torch.equal(v, zoo.model.state_dict()[k]) for k, v in before.items())
    changed = [k for k, v in out.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{name} did not change the model"


def test_merged_sampling_batches_equal_chunk_by_chunk(zoo):
    """Chunks merged into one forward batch (each with its replayed generator) give exactly the answers,
    log-probs and embeddings of sampling chunk after chunk (max_rows=1: one chunk per batch)."""
    from harness.zoo import World

    from harness_plugins.hallucination_detectors.sampling import sample_facts

    w = World(seed=0)
    facts = w.facts_by_split("rare")[:20] + w.facts_by_split("heldout")[:20]
    kw = dict(k=4, temperature=1.0, max_new_tokens=4, pooling="last", seed=1, batch_questions=4)
    one, merged = sample_facts(zoo, facts, max_rows=1, **kw), sample_facts(zoo, facts, **kw)
    for a, b in zip(one, merged, strict=True):
        assert (a.greedy, a.texts, a.token_logprobs) == (b.greedy, b.texts, b.token_logprobs)
        assert np.array_equal(a.embeddings, b.embeddings)
    other = sample_facts(zoo, facts, **(kw | {"seed": 2}))
    assert any(a.texts != b.texts for a, b in zip(merged, other))  # the seed still matters


def test_send_paper_protocol_stopping_rule():
    from harness_plugins.send_mitigators import ees_converged

    assert not ees_converged([1.0], 0.01, 1)  # before any epoch
    assert not ees_converged([1.0, 0.5], 0.01, 1)  # changed by 50%
    assert ees_converged([1.0, 0.5, 0.499], 0.01, 1)
    assert not ees_converged([1.0, 0.5, 0.499], 0.01, 3)  # min_epochs not reached
    assert not ees_converged([1.0, 1.0, 1.0], 0.0, 1)  # tolerance 0: never early
    assert ees_converged([-2.0, -2.01], 0.01, 1)  # relative to |previous|


def test_send_paper_protocol_splits_measures_and_stops(zoo):
    from harness.errors import HarnessError
    from harness_plugins.send_mitigators import SensitiveNeuronDropout, split_protocol_texts

    texts = [f"Person {i} lives in the city of Lonulbo number {i}." for i in range(20)]
    m = SensitiveNeuronDropout({"epochs": 4, "every_epochs": 2, "drop_fraction": 0.1,
                                "paper_protocol": {"tolerance": 0.0}})
    hist = m.apply(zoo, texts, seed=0).model.mitigation_history["protocol"]
    assert hist["texts"] == {"train": 16, "tracking": 2, "heldout": 2}
    assert len(hist["heldout_ees"]) == 5 and hist["epochs_trained"] == 4 and not hist["stopped_early"]
    assert len(set(hist["heldout_ees"])) > 1  # training moves the held-out embeddings
    # a tolerance every change meets stops at min_epochs
    m = SensitiveNeuronDropout({"epochs": 4, "every_epochs": 2, "paper_protocol": {"tolerance": 1e9, "min_epochs": 1}})
    hist = m.apply(zoo, texts, seed=0).model.mitigation_history["protocol"]
    assert hist["epochs_trained"] == 1 and hist["stopped_early"]
    # the default (no protocol) keeps its config dump, so cell keys of existing specs stay
    assert "paper_protocol" not in __import__("harness.config", fromlist=["key_dump"]).key_dump(
        SensitiveNeuronDropout.Config())
    with pytest.raises(HarnessError, match="paper_protocol.*Fix"):
        split_protocol_texts(texts[:8], SensitiveNeuronDropout.Config(paper_protocol={}).paper_protocol)
