"""The shared capability helper (harness.evaluation.capability): lm-eval zero-shot deltas of a
method vs the model without it, on zoo-32 at small limits."""

from __future__ import annotations

import ast
import copy
import dataclasses

import pytest
import torch
from conftest import REPO

from harness.evaluation import NamedIntervention
from harness.evaluation.capability import capability_task_problems, score_capability

TASKS = ["zoo_agreement", "zoo_facts_frequent", "zoo_first_letter"]
HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def zoo32():
    from harness.models import load_model
    from harness.zoo import zoo_model_path

    return load_model(zoo_model_path("zoo-32", "main"), device="cpu", dtype="float32")


class PlusMinusIdentity(torch.nn.Module):
    """A dictionary [I, -I] with ReLU latents: decode(encode(x)) = relu(x) - relu(-x) = x exactly."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.cat([torch.eye(d), -torch.eye(d)]))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W.T)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W


class Negate(torch.nn.Module):
    """Reconstruction -x: easy to tell apart from the original activation."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return -f


def test_exact_sae_reconstruction_gives_zero_deltas(zoo32):
    from harness_plugins.sae_bench.capability import SAESplice

    sae = PlusMinusIdentity(zoo32.d_model)
    x = torch.randn(50, zoo32.d_model)
    assert torch.equal(sae.decode(sae.encode(x)), x)
    splice = SAESplice(sae, HOOK, zoo32.require_tokenizer().bos_token_id)
    res = score_capability(zoo32, TASKS, intervention=splice, limit=20)
    assert res.intervention_id == splice.id and res.intervention_id.startswith("sae-splice:")
    assert set(res.tasks) == set(TASKS)
    for t in TASKS:
        assert res.tasks[t].delta == 0.0
        assert res.tasks[t].acc == res.tasks[t].reference_acc
        assert res.tasks[t].n == 20
    assert res.mean_delta == 0.0


def test_zero_ablation_gives_a_large_negative_delta(zoo32):
    from harness.models import Replace, intervene

    zero = NamedIntervention(f"zero:{HOOK}", lambda: intervene(zoo32.model, {HOOK: Replace(0.0)}))
    res = score_capability(zoo32, TASKS, intervention=zero, limit=20)
    assert res.mean_delta < -20, res.tasks
    assert all(r.delta < 0 for r in res.tasks.values()), res.tasks
    for r in res.tasks.values():  # combined stderr of the two proportions, in pp
        assert r.delta_stderr == pytest.approx(100 * (r.acc_stderr**2 + r.reference_stderr**2) ** 0.5)
    assert res.mean_delta_stderr == pytest.approx(sum(r.delta_stderr**2 for r in res.tasks.values()) ** 0.5 / len(TASKS))


def test_splice_keeps_bos_and_replaces_the_rest(zoo32):
    from harness.models import capture
    from harness_plugins.sae_bench.capability import SAESplice

    bos = zoo32.require_tokenizer().bos_token_id
    assert bos is not None
    ids = torch.tensor([[bos, 5, 6, 7], [8, bos, 9, 10]])
    with torch.no_grad(), capture(zoo32.model, [HOOK]) as clean:
        zoo32.model(input_ids=ids)
    later = "blocks.1.hook_resid_pre"  # = blocks.0 resid_post after the splice
    with torch.no_grad(), SAESplice(Negate(), HOOK, bos).apply(zoo32), capture(zoo32.model, [later]) as spliced:
        zoo32.model(ids)  # positional input_ids, as lm-eval's HFLM calls the model
    a, b = clean[HOOK], spliced[later]
    is_bos = ids == bos
    assert torch.equal(b[is_bos], a[is_bos])
    assert torch.allclose(b[~is_bos], -a[~is_bos])


def test_reference_row_is_its_own_reference(zoo32):
    res = score_capability(zoo32, TASKS[:1], limit=10)
    (r,) = res.tasks.values()
    assert (r.delta, r.delta_stderr, res.mean_delta) == (0.0, 0.0, 0.0)
    assert res.model_id == res.reference_id == zoo32.fingerprint and 0 <= r.acc <= 1


def test_cache_scores_the_reference_once_and_a_modified_copy_gets_its_own_id(zoo32, tmp_path):
    """A fine-tuned copy that kept its base's LoadedModel.fingerprint (dataclasses.replace, as the
    mitigators do) is fingerprinted by its weights; the base comes from the cache the second time."""
    net = copy.deepcopy(zoo32.model)
    with torch.no_grad():
        net.gpt_neox.embed_in.weight.mul_(0.0)
    tuned = dataclasses.replace(zoo32, model=net)
    first = score_capability(tuned, TASKS[:2], reference=zoo32, limit=10, cache_dir=tmp_path)
    assert first.reference_id == zoo32.fingerprint
    assert first.model_id != first.reference_id and first.model_id.startswith("sha256:")
    assert not first.cached
    calls = [0]
    handle = zoo32.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        again = score_capability(zoo32, TASKS[:2], limit=10, cache_dir=tmp_path)  # the base row
    finally:
        handle.remove()
    assert calls[0] == 0 and again.cached
    assert {t: r.acc for t, r in again.tasks.items()} == {t: r.reference_acc for t, r in first.tasks.items()}
    assert first.tasks[TASKS[0]].delta == pytest.approx(100 * (first.tasks[TASKS[0]].acc - again.tasks[TASKS[0]].acc))


def test_task_problems_accept_local_folders_and_name_bad_ones(tmp_path):
    folder = tmp_path / "my_tasks" / "tiny"
    folder.mkdir(parents=True)
    (folder / "tiny.yaml").write_text(
        "task: my_tiny_task\ndataset_path: json\ndataset_kwargs:\n  data_files: {test: d.jsonl}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: 0\ndoc_to_choice: [a, b]\n"
        "metric_list: [{metric: acc}]\n"
    )
    paths = [str(tmp_path / "my_tasks")]
    assert capability_task_problems("capability_tasks", ["my_tiny_task", "zoo_sequence"], paths, "capability_include_paths") == []
    (p,) = capability_task_problems("capability_tasks", ["zoo_sequnce"], paths, "capability_include_paths")
    assert p.startswith("capability_tasks: no zoo task 'zoo_sequnce'") and "zoo_sequence" in p
    (p,) = capability_task_problems("capability_tasks", ["zoo_sequence"], [str(tmp_path / "nope")], "capability_include_paths")
    assert p.startswith("capability_include_paths: no folder")


def test_the_helper_is_the_only_place_that_scores_deltas_through_the_bridge():
    """Only the bridge itself, the capability helper and the absolute-accuracy suites (lm_eval,
    scaling) call evaluate_tasks; the suites that report capability deltas never do."""
    callers = set()
    for path in [*(REPO / "harness").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            func = getattr(node, "func", None)
            if isinstance(node, ast.Call) and "evaluate_tasks" in (getattr(func, "id", None), getattr(func, "attr", None)):
                callers.add(path.relative_to(REPO).as_posix())
    assert callers == {"harness/evaluation/capability.py", "plugins/lm_eval_suite/__init__.py", "plugins/scaling/run.py"}
    for absolute in ("plugins/lm_eval_suite/__init__.py", "plugins/scaling/run.py"):
        assert "delta" not in (REPO / absolute).read_text().split("def register_metrics")[0].lower()
    for suite in ("sae_bench", "unlearning_suite", "send_mitigators"):
        text = "".join(p.read_text() for p in (REPO / "plugins" / suite).rglob("*.py"))
        assert "evaluate_tasks" not in text and "score_capability(" in text, suite


def test_capability_config_fields_and_metrics_are_declared():
    from harness.testing import registries_with

    regs = registries_with(builtins=True)
    for name in ("sae", "unlearning", "hallucination"):
        suite = regs.suites.get(name)
        assert {"capability_tasks", "capability_limit", "capability_include_paths"} <= set(suite.Config.model_fields)
        assert {"capability_delta", "capability_acc"} <= set(suite.metrics)
    assert regs.metrics.get("capability_delta").unit == "pp"


def test_sae_id_covers_scalar_buffers_and_changes_with_the_weights():
    from harness_plugins.sae_bench.capability import sae_id

    sae = PlusMinusIdentity(4)
    sae.register_buffer("threshold", torch.tensor(0.5))  # 0-dim, as BatchTopK's inference threshold
    first = sae_id(sae)
    assert first == sae_id(copy.deepcopy(sae))
    sae.threshold.fill_(0.25)
    assert sae_id(sae) != first


def test_capability_metrics_columns(zoo32):
    from harness.evaluation.capability import capability_metrics
    from harness.testing import registries_with

    regs = registries_with(builtins=True)

    class Cell:
        def metric(self, name):
            return regs.metrics.get(name)()

    res = score_capability(zoo32, TASKS[:2], limit=10)
    values = {v.column: v for v in capability_metrics(Cell(), res)}
    assert set(values) == {f"capability_{m}[{k}]" for m in ("acc", "delta") for k in [*TASKS[:2], "mean"]}
    assert values["capability_acc[mean]"].value == pytest.approx(sum(r.acc for r in res.tasks.values()) / 2)
    assert values["capability_delta[mean]"].value == 0.0 and values[f"capability_acc[{TASKS[0]}]"].n == 10
