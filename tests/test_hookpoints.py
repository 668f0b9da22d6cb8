"""Hook points on random-initialised Pythia-70M, GPT-2, OPT-125M and Llama-style models.

Pythia-70M uses its exact config; GPT-2 and OPT-125M keep their exact widths and
vocabularies but only 2 of their 12 layers (random init of the full models takes ~15 s on
2 cores); the Llama config is small by design (with grouped-query attention).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _hf_configs import build, shared  # noqa: E402

from harness.models import (  # noqa: E402
    Add,
    ProjectOut,
    Replace,
    UnknownHookPointError,
    capture,
    intervene,
    list_hook_points,
    resolve_hook_point,
    run_with_cache,
)

ARCHS = {"pythia-70m": None, "gpt2": 2, "opt-125m": 2, "llama-small": None}


@pytest.fixture(scope="module", params=list(ARCHS))
def arch(request):
    name = request.param
    return name, shared(name) if name == "pythia-70m" else build(name, shrink=ARCHS[name])


@pytest.fixture(scope="module")
def llama():
    return build("llama-small")


def _ids(seed: int = 0, shape=(2, 9)) -> torch.Tensor:
    return torch.randint(3, 900, shape, generator=torch.Generator().manual_seed(seed))


def _hook_counts(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _harness_leftovers(model) -> list[str]:
    return [n for n, m in model.named_modules() for k in vars(m) if k.startswith("_harness")]


def test_points_match_hidden_states_and_decompose(arch):
    name, model = arch
    n = model.config.num_hidden_layers
    points = list_hook_points(model)
    assert len(points) == 6 * n + 1
    x = _ids()
    with torch.no_grad():
        plain = model(x).logits
    out, acts = run_with_cache(model, points, x, output_hidden_states=True)
    hs = out.hidden_states
    torch.testing.assert_close(out.logits, plain, atol=1e-4, rtol=1e-4)  # reading changes nothing
    torch.testing.assert_close(acts["blocks.0.hook_resid_pre"], hs[0])
    for i in range(n):
        pre, post = acts[f"blocks.{i}.hook_resid_pre"], acts[f"blocks.{i}.hook_resid_post"]
        if i < n - 1:  # transformers replaces hidden_states[-1] by the normed final states
            torch.testing.assert_close(post, hs[i + 1])
            torch.testing.assert_close(acts[f"blocks.{i + 1}.hook_resid_pre"], post)
        attn, mlp = acts[f"blocks.{i}.attn.hook_out"], acts[f"blocks.{i}.mlp.hook_out"]
        torch.testing.assert_close(pre + attn + mlp, post, atol=1e-4, rtol=1e-4)
        assert acts[f"blocks.{i}.mlp.hook_post"].shape[:2] == x.shape
        pattern = acts[f"blocks.{i}.attn.hook_pattern"]
        assert pattern.shape == (2, model.config.num_attention_heads, 9, 9)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(pattern.shape[:-1]))
        assert pattern.triu(1).abs().max() == 0  # causal
    torch.testing.assert_close(acts["hook_final"], hs[-1])
    assert _harness_leftovers(model) == []
    assert model.config._attn_implementation == "sdpa"


def test_mlp_post_is_down_projection_input(arch):
    name, model = arch
    x = _ids(1)
    _, acts = run_with_cache(model, ["mlp_post.0", "mlp_out.0"], x)
    # zeroing the neurons leaves only the down projection's bias
    with torch.no_grad(), intervene(model, {"mlp_post.0": Replace(0.0)}), capture(model, "mlp_out.0") as got:
        model(x)
    bias_only = got["mlp_out.0"]
    assert torch.allclose(bias_only, bias_only[:1, :1].expand_as(bias_only), atol=1e-6)
    assert not torch.allclose(acts["mlp_out.0"], bias_only)


def test_replace_resid_transplants_the_run(arch):
    name, model = arch
    a, b = _ids(2), _ids(3)
    out_b, acts_b = run_with_cache(model, "blocks.0.hook_resid_post", b)
    with torch.no_grad(), intervene(model, {"blocks.0.hook_resid_post": Replace(acts_b["blocks.0.hook_resid_post"])}):
        patched = model(a).logits
    torch.testing.assert_close(patched, out_b.logits, atol=1e-4, rtol=1e-4)


def test_add_at_final_shifts_logits_by_unembedding(llama):
    x = _ids(4)
    v = torch.randn(llama.config.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = llama(x).logits
        with intervene(llama, {"hook_final": Add(v, scale=2.0)}):
            steered = llama(x).logits
    expected = base + 2.0 * (llama.get_output_embeddings().weight @ v)
    torch.testing.assert_close(steered, expected, atol=1e-4, rtol=1e-4)


def test_add_and_replace_positions(llama):
    x = _ids(5)
    v = torch.ones(llama.config.hidden_size)
    _, base = run_with_cache(llama, "resid_pre.1", x)
    with torch.no_grad(), intervene(llama, {"resid_post.0": Add(v, positions=[2, 4])}):
        _, got = run_with_cache(llama, "resid_pre.1", x)
    diff = got["resid_pre.1"] - base["resid_pre.1"]
    torch.testing.assert_close(diff[:, [2, 4]], v.expand(2, 2, -1))
    assert diff[:, [0, 1, 3, 5, 6, 7, 8]].abs().max() == 0


def test_project_out_removes_directions(arch):
    name, model = arch
    d = model.config.hidden_size
    dirs = torch.randn(3, d, generator=torch.Generator().manual_seed(1))
    x = _ids(6)
    _, base = run_with_cache(model, "blocks.0.hook_resid_post", x)
    with intervene(model, {"blocks.0.hook_resid_post": ProjectOut(dirs)}):
        _, got = run_with_cache(model, ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre"], x)
    edited = got["blocks.0.hook_resid_post"]
    torch.testing.assert_close(got["blocks.1.hook_resid_pre"], edited)  # the edit propagates
    assert (edited @ dirs.T).abs().max() < 1e-3 * edited.abs().max()
    q, _ = torch.linalg.qr(dirs.T)
    orig = base["blocks.0.hook_resid_post"]
    torch.testing.assert_close(edited, orig - (orig @ q) @ q.T, atol=1e-4, rtol=1e-4)


def test_hooks_removed_after_exit_and_exception(arch):
    name, model = arch
    before = _hook_counts(model)
    impl = model.config._attn_implementation
    edits = {p: (lambda t: t) for p in list_hook_points(model)}
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(model, edits), capture(model, list_hook_points(model)):
            assert _hook_counts(model) > before
            assert model.config._attn_implementation == "harness_pattern"
            raise RuntimeError("boom")
    assert _hook_counts(model) == before
    assert model.config._attn_implementation == impl
    assert _harness_leftovers(model) == []

    def failing(t):
        raise ValueError("hook failed")

    with pytest.raises(ValueError, match="hook failed"):
        with intervene(model, {"blocks.0.attn.hook_pattern": failing}):
            model(_ids())
    assert _hook_counts(model) == before
    assert model.config._attn_implementation == impl
    assert _harness_leftovers(model) == []


def test_attention_swap_reproduces_other_model(llama):
    """Swap every layer's pattern with model B (same weights except q/k): A behaves as B."""
    import copy

    other = copy.deepcopy(llama)
    torch.manual_seed(7)
    for block in other.model.layers:
        torch.nn.init.normal_(block.self_attn.q_proj.weight, std=0.2)
        torch.nn.init.normal_(block.self_attn.k_proj.weight, std=0.2)
    x = _ids(8)
    n = llama.config.num_hidden_layers
    pattern_points = [f"blocks.{i}.attn.hook_pattern" for i in range(n)]
    out_b, pats_b = run_with_cache(other, pattern_points, x)
    out_a, pats_a = run_with_cache(llama, pattern_points, x)
    assert not torch.allclose(out_a.logits, out_b.logits, atol=1e-3)
    with torch.no_grad(), intervene(llama, {p: Replace(pats_b[p]) for p in pattern_points}):
        swapped = llama(x).logits
    torch.testing.assert_close(swapped, out_b.logits, atol=1e-4, rtol=1e-4)

    # a subset of heads at one layer: those heads take B's pattern, the rest keep A's
    point = "blocks.0.attn.hook_pattern"
    with torch.no_grad(), intervene(llama, {point: Replace(pats_b[point], heads=[0, 3])}):
        _, got = run_with_cache(llama, point, x)
    torch.testing.assert_close(got[point][:, [0, 3]], pats_b[point][:, [0, 3]])
    torch.testing.assert_close(got[point][:, [1, 2, 4, 5, 6, 7]], pats_a[point][:, [1, 2, 4, 5, 6, 7]])


def test_eager_model_patterns_and_restore():
    model = build("llama-small", attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    x = _ids(9)
    out, acts = run_with_cache(model, "pattern.1", x, output_attentions=True)
    torch.testing.assert_close(acts["pattern.1"], out.attentions[1])
    assert model.config._attn_implementation == "eager"


def test_padding_masks_patterns(llama):
    x = _ids(10)
    mask = torch.ones_like(x)
    mask[0, -3:] = 0  # right padding in row 0
    _, acts = run_with_cache(llama, "pattern.0", x, attention_mask=mask)
    pattern = acts["pattern.0"]
    assert pattern[0, :, :6, 6:].abs().max() == 0  # real queries never attend to padding
    torch.testing.assert_close(pattern[:, :, :6].sum(-1), torch.ones(2, 8, 6))


def test_names_aliases_and_errors(llama):
    assert resolve_hook_point(llama, "resid_post.1").name == "blocks.1.hook_resid_post"
    assert resolve_hook_point(llama, "blocks.-1.mlp.hook_out").name == "blocks.2.mlp.hook_out"
    assert resolve_hook_point(llama, "final").name == "hook_final"
    with pytest.raises(UnknownHookPointError, match=r'Did you mean "blocks.1.hook_resid_post"') as err:
        resolve_hook_point(llama, "blocks.1.hook_resid_pos")
    assert "hook_final" in str(err.value) and "blocks.{i}.attn.hook_pattern" in str(err.value)
    with pytest.raises(UnknownHookPointError, match="out of range"):
        resolve_hook_point(llama, "blocks.7.hook_resid_post")
    with pytest.raises(UnknownHookPointError):
        capture(llama, ["nonsense"]).__enter__()
    assert _harness_leftovers(llama) == []
