"""The matryoshka_batchtopk learner: its nested loss against a hand-computed case, its prefix
configuration, and that its prefixes really learn to reconstruct on their own."""

import pytest

torch = pytest.importorskip("torch")

from harness.sae import train_sae  # noqa: E402
from harness.testing import registries_with  # noqa: E402

REGS = registries_with(builtins=True)
MATRYOSHKA = REGS["dictionary_learner"].get("matryoshka_batchtopk")


def hand_case(**config):
    """d_in 2, d_sae 4, prefixes (1, 2, 4), k 2 on 2 tokens (4 latents kept in the batch).

    pre = x W_enc + b_enc = [[2, 1, 1.5, -0.5], [1, 3, 0.5, 1.5]]; the 4 largest ReLU values are
    3, 2, 1.5, 1.5, so f = [[2, 0, 1.5, 0], [0, 3, 0, 1.5]].
    """
    cfg = {"d_sae": 4, "k": 2, "matryoshka_widths": [1, 2, 4], "apply_b_dec_to_input": False} | config
    sae = MATRYOSHKA.create(2, cfg, seed=0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
        sae.b_enc.copy_(torch.tensor([0.0, 0.0, -0.5, -1.5]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]]))
        sae.b_dec.copy_(torch.tensor([0.5, -0.5]))
    return sae.train(), torch.tensor([[2.0, 1.0], [1.0, 3.0]])


# Level 1 (latent 0):    x_hat = [[2.5, -0.5], [0.5, -0.5]], squared errors 2.5 and 12.5 -> 7.5
# Level 2 (latents 0-1): x_hat = [[2.5, -0.5], [0.5, 2.5]],  squared errors 2.5 and 0.5  -> 1.5
# Level 3 (all):         x_hat = [[3.4, 0.7], [1.7, 1.6]],    squared errors 2.05 and 2.45 -> 2.25
LEVELS = (7.5, 1.5, 2.25)


def test_latents_are_one_batchtopk_selection():
    sae, x = hand_case()
    torch.testing.assert_close(sae.encode(x), torch.tensor([[2.0, 0.0, 1.5, 0.0], [0.0, 3.0, 0.0, 1.5]]))


@pytest.mark.parametrize("convention,expected", [("sum", sum(LEVELS)), ("mean", sum(LEVELS) / 3)])
def test_nested_loss_matches_hand_computation(convention, expected):
    sae, x = hand_case(prefix_loss=convention)
    loss, logs = sae.loss(x, 0, 10)
    torch.testing.assert_close(loss, torch.tensor(expected))
    torch.testing.assert_close(logs["mse_prefix_1"], torch.tensor(LEVELS[0]))
    torch.testing.assert_close(logs["mse_prefix_2"], torch.tensor(LEVELS[1]))
    torch.testing.assert_close(logs["mse"], torch.tensor(LEVELS[2]))  # the full dictionary's error


def test_auxk_saelens_form_on_dead_latents():
    # latents 2 and 3 dead; k_aux = d_in // 2 = 1, scale min(2 / 1, 1) = 1. The top dead pre-activation:
    # token 0 latent 2 (1.5), token 1 latent 3 (1.5); e_hat = 1.5 * W_dec[2] = [0.9, 1.2] vs residual
    # [-1.4, 0.3] -> 6.1; e_hat = 1.5 * W_dec[3] = [1.2, -0.9] vs residual [-0.7, 1.4] -> 8.9; mean 7.5.
    sae, x = hand_case(dead_tokens_threshold=1, auxk_alpha=0.5)
    sae.tokens_since_fired[2:] = 1
    loss, logs = sae.loss(x, 0, 10)
    torch.testing.assert_close(logs["auxk"], torch.tensor(7.5))
    torch.testing.assert_close(loss, torch.tensor(sum(LEVELS) + 0.5 * 7.5))


def test_gradient_of_inner_levels_reaches_only_their_prefix():
    # The level-1 loss depends on latent 0's decoder row only; the full loss on every selected row.
    sae, x = hand_case(auxk_alpha=0.0)
    _, vals, flat = sae.select(x)
    sae.prefix_reconstructions(vals, flat, 2)[0].pow(2).sum().backward()
    assert sae.W_dec.grad[0].abs().sum() > 0 and sae.W_dec.grad[1:].abs().sum() == 0


def test_sparse_and_dense_prefix_decoders_agree():
    """The embedding_bag path (one bag per group and token) equals the dense per-group products,
    values and gradients."""
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    out = {}
    for kernel in ("sparse", "dense"):
        sae = MATRYOSHKA.create(16, {"d_sae": 128, "k": 5, "kernel": kernel, "matryoshka_widths": [8, 40]}, seed=4)
        loss, logs = sae.train().loss(x, 0, 10)
        loss.backward()
        out[kernel] = (loss.detach(), sae.W_dec.grad.clone(), sae.W_enc.grad.clone(), sae.b_dec.grad.clone())
    for a, b in zip(out["sparse"], out["dense"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_prefixes_from_fractions_and_widths():
    cfg = MATRYOSHKA.Config(prefix_fractions=[0.125, 0.5])
    assert cfg.resolve_widths(64) == (8, 32, 64)  # d_sae appended as the last level
    assert MATRYOSHKA.Config(matryoshka_widths=[8, 24]).resolve_widths(64) == (8, 24, 64)
    assert MATRYOSHKA.create(16, {"expansion_factor": 4}).widths == (4, 8, 16, 32, 64)  # default fractions


@pytest.mark.parametrize("bad,match", [({"matryoshka_widths": [8, 8]}, "strictly increasing"),
                                       ({"matryoshka_widths": []}, "non-empty"),
                                       ({"prefix_fractions": [0.5, 1.5]}, r"in \(0, 1\]"),
                                       ({"d_sae": 32, "matryoshka_widths": [8, 64]}, "exceeds d_sae")])
def test_bad_prefixes_are_refused_naming_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        MATRYOSHKA.Config(**bad)


def test_plan_time_check_names_prefixes_that_do_not_fit():
    from harness.validation import ModelShape

    shape = ModelShape(name="zoo:zoo-64", d_model=16, n_layers=2, n_heads=2, vocab_size=64).at("blocks.1.hook_resid_post")
    problems = MATRYOSHKA.check(MATRYOSHKA.Config(matryoshka_widths=[8, 256]), shape)  # d_sae = 8 x 16
    assert any(p.startswith("matryoshka_widths") and "256 exceeds d_sae = 128" in p and "zoo:zoo-64" in p
               for p in problems), problems
    collapse = MATRYOSHKA.check(MATRYOSHKA.Config(expansion_factor=1, prefix_fractions=[0.01, 0.02, 1.0]), shape)
    assert any("not strictly increasing" in p for p in collapse), collapse
    assert MATRYOSHKA.check(MATRYOSHKA.Config(), shape) == []
    with pytest.raises(ValueError, match="exceeds d_sae = 64"):
        MATRYOSHKA.create(16, {"expansion_factor": 4, "matryoshka_widths": [8, 128]})


def test_inner_prefix_learns_to_reconstruct_alone():
    """After training, the first eighth of the dictionary alone reconstructs better than the same
    latents of a plain BatchTopK SAE (prefix_fractions=[1]: the same run without inner levels, which
    would give exactly the same SAE if the inner losses had no effect)."""
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(48, 16, generator=g)
    freq = torch.cat([torch.full((8,), 0.3), torch.full((40,), 0.02)])  # 8 frequent features, 40 rare ones
    x = (torch.rand(4096, 48, generator=g) * (torch.rand(4096, 48, generator=g) < freq)) @ basis

    def prefix_mse(fractions):
        sae, _ = train_sae(MATRYOSHKA, {"expansion_factor": 4, "k": 4, "lr": 3e-3, "prefix_fractions": fractions},
                           x, steps=60, batch_size=256, progress=False, warmup_steps=5, seed=0)
        sae.train()  # BatchTopK selection, as in training
        with torch.no_grad():
            f = sae.encode(x[:1024])
            recon = f[:, :8] @ sae.W_dec[:8] + sae.b_dec
            return float((x[:1024] - recon).pow(2).sum(-1).mean())

    nested, flat = prefix_mse([0.125, 1.0]), prefix_mse([1.0])
    assert nested < 0.85 * flat, (nested, flat)  # measured: 4.9 vs 6.5
