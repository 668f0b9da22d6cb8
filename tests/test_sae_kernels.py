"""Sparse TopK kernels: SDDMM decoder backward, chunked encoder forward, in-place gradient projection."""

import pytest

torch = pytest.importorskip("torch")

from harness.sae.base import SAEBase  # noqa: E402
from harness.sae.kernels import sampled_dot, topk_encode  # noqa: E402
from harness.testing import registries_with  # noqa: E402

TopK = registries_with(builtins=True)["dictionary_learner"].get("topk")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_sampled_dot_matches_gather(dtype):
    g = _gen()
    a = torch.randn(37, 24, generator=g).to(dtype)
    table = torch.randn(50, 24, generator=g).to(dtype)
    idx = torch.randint(0, 50, (37, 7), generator=g)  # unsorted, with repeats within a row
    idx[0] = 3
    ref = (table[idx].double() @ a.double().unsqueeze(-1)).squeeze(-1)
    out = sampled_dot(a, table, idx)
    assert out.shape == (37, 7) and out.dtype == dtype
    tol = 5e-2 if dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(out.double(), ref, atol=tol * 5, rtol=tol)


def test_chunked_topk_encode_matches_dense_topk():
    g = _gen(1)
    x, W = torch.randn(1030, 32, generator=g), torch.randn(32, 200, generator=g)
    b, bd = torch.randn(200, generator=g) * 0.1, torch.randn(32, generator=g) * 0.1
    vals, idx, _, _ = topk_encode(x, W, b, bd, 9, chunk=256)  # 4 full chunks + a 6-row tail
    pre = (x - bd) @ W + b
    rv, ri = pre.topk(9, dim=-1)
    assert torch.equal(idx.sort(-1).values, ri.sort(-1).values)
    torch.testing.assert_close(vals.sort(-1).values, rv.relu().sort(-1).values, atol=1e-5, rtol=1e-5)


def test_topk_gradient_projection_equals_base_formula():
    sae = TopK.create(16, {"expansion_factor": 4, "k": 4}, seed=0)
    g = torch.randn(64, 16, generator=_gen(2))
    sae.W_dec.grad = g.clone()
    sae.remove_parallel_gradient()
    ref = sae.W_dec.detach().clone()
    sae.W_dec.grad, fast = g.clone(), sae.W_dec.grad
    SAEBase.remove_parallel_gradient(sae)
    torch.testing.assert_close(fast, sae.W_dec.grad, atol=1e-6, rtol=1e-5)
    assert (fast * ref).sum(-1).abs().max() < 1e-5


def test_shared_csr_pattern_is_rebuilt_when_indices_change():
    from harness.sae.kernels import _sparse_t_mm

    g = _gen(3)
    dense = torch.randn(6, 5, generator=g)
    idx = torch.randint(0, 10, (6, 3), generator=g)
    v = torch.randn(18, generator=g)

    def ref(i):
        S = torch.zeros(6, 10).index_put_((torch.arange(6).repeat_interleave(3), i.reshape(-1)), v, accumulate=True)
        return S.t() @ dense

    torch.testing.assert_close(_sparse_t_mm(idx, v, 10, dense), ref(idx))
    torch.testing.assert_close(_sparse_t_mm(idx, v, 10, dense), ref(idx))  # cached pattern
    idx[0, 0] = (idx[0, 0] + 1) % 10  # in-place change: version bump, pattern rebuilt
    torch.testing.assert_close(_sparse_t_mm(idx, v, 10, dense), ref(idx))
    other = idx.clone()
    other[1] = 9
    torch.testing.assert_close(_sparse_t_mm(other, v, 10, dense), ref(other))


def test_record_firing_resets_only_latents_with_an_active_entry():
    sae = TopK.create(4, {"d_sae": 6, "k": 2}, seed=0)
    sae.tokens_since_fired.fill_(7)
    idx = torch.tensor([[0, 3], [3, 5], [1, 0]])
    active = torch.tensor([[True, False], [True, False], [False, False]])  # 0 and 3 fire; 5 and 1 are zeros
    sae.record_firing(idx, active, 3)
    assert sae.tokens_since_fired.tolist() == [0, 10, 10, 0, 10, 10]
    sae.update_firing(torch.tensor([2, 4]), 1)  # latent indices instead of a mask
    assert sae.tokens_since_fired.tolist() == [1, 11, 0, 1, 0, 11]
