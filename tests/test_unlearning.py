"""Unlearning suite: the edits, hook removal, erasure on a constructed case, every method's fit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from harness.testing import registries_with  # noqa: E402
from harness.unlearning.data import UnlearningData, pooled_activations  # noqa: E402
from harness.unlearning.erasure import AffineEdit, HookEdits, probe_direction, reflect_edit  # noqa: E402
from harness.unlearning.probes import fit_logistic, predict  # noqa: E402
from harness_plugins.leace import leace_edit  # noqa: E402
from harness_plugins.unlearning_suite.data import k_extractable  # noqa: E402
from harness_plugins.unlearning_suite.probes import kfold_accuracy, loo_accuracy  # noqa: E402

REGS = registries_with(builtins=True)
METHODS = REGS.by_kind["unlearning_method"].names()


def separable(n: int = 200, d: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, d, generator=g)
    x[:, 0] += 3.0 * (2 * y - 1)  # linearly separable along e0 (margin ~6 sd)
    x[:, 1] += 0.5 * x[:, 0]  # correlated nuisance
    return x, y


def frozen_acc(theta, x, y) -> float:
    return float(((predict(theta, x)[0] > 0) == y.bool()).double().mean())


def test_rank_one_edit_moves_only_along_its_direction():
    x, y = separable()
    w = probe_direction(x, y, l2=1.0)
    edit = reflect_edit(x, y, w.unsqueeze(0), strength=2.0)
    delta = edit(x) - x
    residual = delta - (delta @ w).unsqueeze(1) * w  # component orthogonal to w
    assert residual.abs().max() < 1e-5
    assert delta.abs().max() > 1.0  # it did move
    # strength 2 reflects each projection across t: w.h' = 2t - w.h
    assert torch.allclose(edit(x) @ w, 2 * edit.t - x @ w, atol=1e-4)


def test_leace_erases_to_chance_and_pga_below_chance():
    x, y = separable()
    theta = fit_logistic(x, y)
    assert frozen_acc(theta, x, y) > 0.99
    erased = leace_edit(x, y)(x)
    gap = erased[y == 1].mean(0) - erased[y == 0].mean(0)
    assert gap.abs().max() < 1e-4  # equal class means = no linear probe beats a constant
    assert 0.35 <= frozen_acc(theta, erased, y) <= 0.65
    assert kfold_accuracy(erased, y, seed=0) < 0.65  # a re-fitted linear probe is near chance too
    w = probe_direction(x, y, l2=1.0)
    pga = reflect_edit(x, y, w.unsqueeze(0), strength=2.0)(x)
    assert frozen_acc(theta, pga, y) < 0.1  # the frozen probe is pushed below chance


def test_loo_accuracy_separable_and_shuffled():
    x, y = separable(n=60, d=8)
    assert loo_accuracy(x, y) > 0.95
    perm = y[torch.randperm(60, generator=torch.Generator().manual_seed(1))]
    assert loo_accuracy(x, perm) < 0.75


def test_gap_statistics_hand_computed():
    from harness_plugins.unlearning_suite.run import gap_statistics

    gap, se, p = gap_statistics(0.9, [0.4, 0.6, 0.5, 0.5])
    assert gap == pytest.approx(0.4)
    sd = (sum((v - 0.5) ** 2 for v in (0.4, 0.6, 0.5, 0.5)) / 3) ** 0.5
    assert se == pytest.approx(sd * (1 + 1 / 4) ** 0.5)
    assert p == pytest.approx(1 / 5)  # no permutation reaches 0.9: the floor 1 / (1 + S)
    assert gap_statistics(0.5, [0.4, 0.6, 0.5, 0.5])[2] == pytest.approx(4 / 5)  # 0.6, 0.5, 0.5 >= 0.5


def test_loo_profile_gap_on_separable_and_null_features(monkeypatch):
    import harness_plugins.unlearning_suite.run as run

    x, y = separable(n=40, d=8)
    fake = {"p0": x, "p1": torch.randn(40, 8, generator=torch.Generator().manual_seed(3))}
    monkeypatch.setattr(run, "pooled_activations", lambda model, tokens, points, *a, **k: torch.stack([fake[p] for p in points]))
    prof = run.loo_profile(None, None, y, ["p0", "p1"], "mean", 1.0, 19, 0, 1)
    assert [len(v) for v in prof["null"]] == [19, 19]
    gap, se, p = run.gap_statistics(prof["acc"][0], prof["null"][0])
    assert gap > 0.3 and p == pytest.approx(1 / 20) and se > 0
    gap, se, p = run.gap_statistics(prof["acc"][1], prof["null"][1])
    assert abs(gap) < 2.5 * se and p > 0.05  # pure noise: within the permutation spread


@pytest.fixture(scope="module")
def zoo32():
    from harness.models import load_model
    from harness.zoo import zoo_model_path

    torch.manual_seed(0)
    return load_model(zoo_model_path("zoo-32", "main"), device="cpu", dtype="float32")


def tiny_data(model):
    g = torch.Generator().manual_seed(0)
    vocab = model.model.config.vocab_size
    seqs = torch.randint(5, vocab, (8, 9), generator=g)
    forget = UnlearningData(tuple(tuple(s) for s in seqs.tolist()), (1, 0) * 4, prefix_len=4)
    retain = UnlearningData(tuple(tuple(s) for s in torch.randint(5, vocab, (4, 9), generator=g).tolist()), (0,) * 4, 4)
    return forget, retain


def no_hooks(module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in module.modules())


def test_hook_edits_are_removed_after_use(zoo32):
    ids = torch.randint(5, 100, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = zoo32.model(input_ids=ids).logits.clone()
    d = torch.nn.functional.normalize(torch.randn(1, zoo32.d_model), dim=-1)
    iv = HookEdits(id="t", edits={"blocks.0.hook_resid_post": [AffineEdit(U=5 * d, V=d, t=torch.zeros(1) + 3.0)]})
    with torch.no_grad(), iv.apply(zoo32):
        during = zoo32.model(input_ids=ids).logits.clone()
    with torch.no_grad():
        after = zoo32.model(input_ids=ids).logits
    assert not torch.allclose(before, during)
    assert torch.equal(before, after) and no_hooks(zoo32.model)


@pytest.mark.parametrize("name", METHODS)
def test_every_unlearning_method_fits_and_restores(zoo32, name):
    cls = REGS.by_kind["unlearning_method"].get(name)
    cfg = cls.Config.model_validate(cls.Config().model_dump(mode="json"))  # config round-trip
    assert cfg == cls.Config()
    small = {"steps": 2} if "steps" in cls.Config.model_fields else {}
    method = cls(small)
    forget, retain = tiny_data(zoo32)
    state = {k: v.clone() for k, v in zoo32.model.state_dict().items()}
    iv = method.fit(zoo32, forget, retain, seed=0)
    assert iv.id and iv.id == method.fit(zoo32, forget, retain, seed=0).id  # stable id
    points = [f"blocks.{i}.hook_resid_post" for i in range(zoo32.n_layers)]
    base = pooled_activations(zoo32, forget.tensor(), points)
    with iv.apply(zoo32):
        edited = pooled_activations(zoo32, forget.tensor(), points)
    assert not torch.allclose(base, edited)
    assert no_hooks(zoo32.model)
    assert all(torch.equal(state[k], v) for k, v in zoo32.model.state_dict().items())  # restored


def test_k_extractable_detects_a_memorised_sequence(zoo32):
    prompt = torch.randint(5, 100, (1, 5), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # the model's own greedy continuation is k-extractable by definition
        ids = prompt
        for _ in range(4):
            ids = torch.cat([ids, zoo32.model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    other = ids.clone()
    other[0, -1] = (other[0, -1] + 1) % zoo32.model.config.vocab_size
    assert k_extractable(zoo32, torch.cat([ids, other]), prefix_len=4) == [True, False]


def test_suffix_and_last_prefix_pooling_pick_the_right_positions(zoo32):
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(5, 100, (3, 9), generator=g)  # <eos>-slot + 4 prompt + 4 suffix tokens
    points = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    from harness.models import capture

    with torch.no_grad(), capture(zoo32.model, points) as store:
        zoo32.model(input_ids=tokens, use_cache=False)
    full = torch.stack([store[p].float() for p in points])
    suffix = pooled_activations(zoo32, tokens, points, "suffix_mean", prefix_len=4)
    last_prefix = pooled_activations(zoo32, tokens, points, "last_prefix", prefix_len=4)
    assert torch.allclose(suffix, full[:, :, 4:8].mean(2), atol=1e-6)  # positions predicting suffix tokens 5..8
    assert torch.allclose(last_prefix, full[:, :, 4], atol=1e-6)
    # causality pins the window: the last token never enters, the first suffix token does
    changed_last, changed_first = tokens.clone(), tokens.clone()
    changed_last[:, -1] += 1
    changed_first[:, 5] += 1
    assert torch.allclose(pooled_activations(zoo32, changed_last, points, "suffix_mean", prefix_len=4), suffix, atol=1e-6)
    assert torch.allclose(pooled_activations(zoo32, changed_first, points, "last_prefix", prefix_len=4), last_prefix, atol=1e-6)
    assert not torch.allclose(pooled_activations(zoo32, changed_first, points, "suffix_mean", prefix_len=4), suffix)
    with pytest.raises(ValueError, match="needs prefix_len"):
        pooled_activations(zoo32, tokens, points, "suffix_mean")


def test_probe_edit_subclasses_set_rank_and_rounds(zoo32):
    forget, retain = tiny_data(zoo32)
    registry = REGS.by_kind["unlearning_method"]
    ranks = {}
    for name, cfg in (("pga", {}), ("md_pga", {"k": 3}), ("pga_adversarial", {"rounds": 2})):
        iv = registry.get(name)(cfg).fit(zoo32, forget, retain, seed=0)
        edits = iv.edits["blocks.0.hook_resid_post"]
        ranks[name] = [tuple(e.U.shape) for e in edits]
    d = zoo32.d_model
    assert ranks == {"pga": [(1, d)], "md_pga": [(3, d)], "pga_adversarial": [(1, d), (1, d)]}


def test_heldout_probe_separable_case_is_near_one():
    from harness_plugins.unlearning_suite.probes import heldout_accuracy

    x, y = separable(n=80, d=8)
    acc, se = heldout_accuracy(x, y, seed=0)
    assert acc >= 0.97 and se <= 0.03


def test_heldout_probe_random_labels_is_chance_within_its_stderr():
    """No signal (labels independent of x, more dimensions than a fold can fit on): held-out accuracy
    is 0.5 within its stderr; an in-sample probe on the same data reads perfect separation."""
    from harness_plugins.unlearning_suite.probes import heldout_accuracy

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 160, generator=g)
    y = torch.arange(60) % 2
    y = y[torch.randperm(60, generator=g)]
    acc, se = heldout_accuracy(x, y, seed=0)
    assert se == pytest.approx((acc * (1 - acc) / 60) ** 0.5)
    assert abs(acc - 0.5) <= se
    assert frozen_acc(fit_logistic(x, y), x, y) == 1.0  # the in-sample read-out the held-out probe replaces
    # no systematic bias: over seeds of data and folds the mean sits at 0.5 (its stderr here is ~0.03)
    accs = []
    for s in range(8):
        gs = torch.Generator().manual_seed(100 + s)
        xs, ys = torch.randn(40, 20, generator=gs), (torch.arange(40) % 2)[torch.randperm(40, generator=gs)]
        accs.append(heldout_accuracy(xs, ys, seed=s)[0])
    assert abs(sum(accs) / len(accs) - 0.5) < 0.06


def test_stratified_masks_partition_and_keep_classes_balanced():
    from harness_plugins.unlearning_suite.probes import stratified_masks

    y = torch.tensor([1] * 6 + [0] * 9)
    masks = stratified_masks(y, 3, seed=1)
    held = ~masks
    assert torch.equal(held.sum(0), torch.ones(15, dtype=torch.long))  # each sequence held out exactly once
    assert [int(y[h].sum()) for h in held] == [2, 2, 2] and [int((1 - y)[h].sum()) for h in held] == [3, 3, 3]
    assert torch.equal(masks, stratified_masks(y, 3, seed=1))  # seeded
    with pytest.raises(ValueError, match="folds <= the smaller class"):
        stratified_masks(y, 7, seed=0)


def test_frozen_heldout_probe_scores_edited_activations():
    """Fitted on the un-edited activations, scored on edited ones: PGA's reflection sends held-out
    sequences below chance too, LEACE's erasure leaves them at chance."""
    from harness_plugins.unlearning_suite.probes import heldout_accuracy

    x, y = separable(n=80, d=8)
    w = probe_direction(x, y, l2=1.0)
    pga = reflect_edit(x, y, w.unsqueeze(0), strength=2.0)(x)
    assert heldout_accuracy(x, y, x_eval=pga)[0] < 0.1
    assert 0.3 <= heldout_accuracy(x, y, x_eval=leace_edit(x, y)(x))[0] <= 0.7


def _cap_record(label, method, acc, delta, seed=0, model="zoo:zoo-160"):
    """A record of the unlearning suite with capability values only: {task: acc}, {task: (delta, stderr)}."""
    from harness.provenance import now_iso
    from harness.results import CellKey, MetricValue, Provenance, RunRecord, SuiteOutput

    cell = CellKey(suite="unlearning", suite_version="4", suite_config={}, method=method, method_kind="unlearning_method",
                   method_config={}, model=model, model_fingerprint="f", seed=seed, dtype="auto")
    prov = Provenance(harness_version="0", git_hash="abc", packages={}, device="cpu", python="3", platform="p",
                      started_at=now_iso(), finished_at=now_iso(), wall_time_s=0.1)
    mvs = [MetricValue(metric="capability_acc", key=t, value=a, stderr=0.0) for t, a in acc.items()]
    mvs += [MetricValue(metric="capability_delta", key=t, value=d, stderr=se) for t, (d, se) in delta.items()]
    return RunRecord(key=cell.key(), cell=cell, label=label, status="ok", output=SuiteOutput(metrics=mvs), provenance=prov)


def test_summary_flags_ceiling_tasks_and_gives_delta_intervals():
    from harness_plugins.unlearning_suite.summary import ceiling_tasks, rows_from_records, summarize

    recs = [
        _cap_record("base model", None, {"easy": 1.0, "hard": 0.6, "near": 1.0}, {"easy": (0, 0), "hard": (0, 0), "near": (0, 0)}),
        _cap_record("pga", "pga", {"easy": 0.995, "hard": 0.4, "near": 1.0}, {"easy": (-0.5, 0.5), "hard": (-20.0, 5.0), "near": (0.0, 0.0)}),
        _cap_record("other", "other", {"easy": 1.0, "hard": 0.59, "near": 0.98}, {"easy": (0, 0), "hard": (-1.0, 0.8), "near": (-2.0, 1.4)}),
    ]
    rows = rows_from_records(recs)
    assert [r.label for r in rows] == ["pga", "other", "base model"]  # PGA first, the reference last
    assert ceiling_tasks(rows, ["easy", "hard", "near"]) == ["easy"]  # "near" drops to 0.98 in one row
    md = summarize(recs)
    assert "`easy`" in md and "`near`" not in md and "carries no information" in md
    assert "| pga | -0.5 [-1.5, +0.5] | -20.0 [-29.8, -10.2] | +0.0 [+0.0, +0.0] |" in md
    assert "- pga: loss (interval below 0) on hard; interval inside ±2.8 pp on near" in md
    assert "- other: loss (interval below 0) on no task; interval inside ±2.8 pp on hard" in md  # hard: -2.6..+0.6, near: -4.7..+0.7
    # no row at ceiling anywhere: said so, not flagged
    plain = [_cap_record("base model", None, {"hard": 0.6}, {"hard": (0, 0)}),
             _cap_record("pga", "pga", {"hard": 0.5}, {"hard": (-10.0, 5.0)})]
    assert "No capability task is at ceiling" in summarize(plain) and "(ceiling)" not in summarize(plain)


def test_summary_pools_seeds_with_between_seed_error():
    from harness_plugins.unlearning_suite.summary import rows_from_records

    recs = [_cap_record("pga", "pga", {"t": 0.5}, {"t": (d, 1.0)}, seed=s) for s, d in enumerate((-2.0, -4.0))]
    (row,) = rows_from_records(recs)
    mean, se = row.get("capability_delta", "t")
    assert mean == pytest.approx(-3.0)
    # within: sqrt(1 + 1) / 2 (squared 0.5); between seeds: sd 2 ** 0.5 / sqrt(2) = 1
    assert se == pytest.approx((0.5 + 1.0) ** 0.5)


def test_frozen_probe_cross_fits_probe_and_edit(monkeypatch):
    """Each sequence is scored by a probe and an edit fitted without it (the method is fitted once per
    fold); a reflection fitted on the other folds still sends held-out sequences below chance here,
    where the signal is one shared direction."""
    import contextlib

    import harness_plugins.unlearning_suite.run as run
    from harness_plugins.unlearning_suite.probes import stratified_masks

    x, y = separable(n=40, d=8)
    active: list = []

    def pooled(model, tokens, points, pooling, edits=None, prefix_len=None):
        feats = x[tokens[:, 0]]  # sequence j is (j, j, j)
        return torch.stack([active[-1](feats) if active else feats for _ in points])

    monkeypatch.setattr(run, "pooled_activations", pooled)
    forget = UnlearningData(tuple((j, j, j) for j in range(40)), tuple(y.tolist()), prefix_len=1)
    fits: list[set] = []

    class Reflect:  # PGA on the fold's training sequences, recorded
        def fit(self, model, part, retain, *, seed):
            idx = [s[0] for s in part.sequences]
            fits.append(set(idx))
            xi, yi = x[idx], torch.tensor(part.labels)
            edit = reflect_edit(xi, yi, probe_direction(xi, yi, l2=1.0).unsqueeze(0), strength=2.0)

            class Iv:
                @contextlib.contextmanager
                def apply(self, model):
                    active.append(edit)
                    yield
                    active.pop()

            return Iv()

    masks = stratified_masks(y, 5, seed=0)
    probes = [fit_logistic(x, y, masks), fit_logistic(x, y, masks)]
    base = run.frozen_hits(None, None, forget, forget, probes, masks, ["a", "b"], "mean", 0)
    assert base.shape == (2, 40) and base.double().mean() > 0.95  # held-out probes on a separable case
    edited = run.frozen_hits(None, Reflect(), forget, forget, probes, masks, ["a", "b"], "mean", 0)
    assert len(fits) == 5 and not active
    for train, fit in zip(masks, fits):
        assert fit == set(train.nonzero().flatten().tolist())  # the edit never saw the sequences it is scored on
    assert edited.double().mean() < 0.1
