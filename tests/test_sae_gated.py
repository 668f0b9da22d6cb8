"""The gated learner against the paper's equations (Rajamanoharan et al. 2024, section 3):
encode, decode and each loss term on a fixed input worked by hand, then loss and gradients
against an independent transcription of the equations (W_mag materialised, a frozen decoder copy)."""

import math

import pytest

torch = pytest.importorskip("torch")

from harness.testing import registries_with  # noqa: E402

REGS = registries_with(builtins=True)
GATED = REGS["dictionary_learner"].get("gated")


def hand_case(**config):
    """d_in 2, d_sae 3. x = [2, 1], b_dec = [1, 0] -> x - b_dec = [1, 1], (x - b_dec) W_enc = [1, 1, -0.5].

    pi_gate = [1, 1, -0.5] + b_gate [-0.5, -1.5, 1] = [0.5, -0.5, 0.5]  -> gate [1, 0, 1]
    pi_mag  = [1, 1, -0.5] * exp(r_mag) [2, 1, 1] + b_mag [0, 0, -1] = [2, 1, -1.5] -> ReLU [2, 1, 0]
    f = [2, 0, 0]: latent 1 has magnitude but a closed gate, latent 2 an open gate but no magnitude.
    """
    cfg = {"d_sae": 3, "l1_coefficient": 0.1, "l1_warmup_fraction": 0.0, "unit_norm_decoder": False} | config
    sae = GATED.create(2, cfg, seed=0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]]))
        sae.b_gate.copy_(torch.tensor([-0.5, -1.5, 1.0]))
        sae.r_mag.copy_(torch.tensor([math.log(2.0), 0.0, 0.0]))
        sae.b_mag.copy_(torch.tensor([0.0, 0.0, -1.0]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.2, 1.6]]))  # row norms 1, 1, 2
        sae.b_dec.copy_(torch.tensor([1.0, 0.0]))
    return sae, torch.tensor([[2.0, 1.0]])


def test_encode_decode_by_hand():
    sae, x = hand_case()
    f = sae.encode(x)
    torch.testing.assert_close(f, torch.tensor([[2.0, 0.0, 0.0]]))
    torch.testing.assert_close(sae.decode(f), torch.tensor([[3.0, 0.0]]))  # 2 * W_dec[0] + b_dec
    assert sae.b_gate is sae.b_enc  # the gate path is SAEBase's encode_pre


def test_loss_terms_by_hand():
    # reconstruction: x - x_hat = [-1, 1] -> 2
    # sparsity: ReLU(pi_gate) = [0.5, 0, 0.5], weighted by ||W_dec_i|| = [1, 1, 2] -> 0.5 + 1.0 = 1.5
    # auxiliary: ReLU(pi_gate) W_dec + b_dec = [0.5 + 0.6 + 1, 0.8] = [2.1, 0.8]; x - that = [-0.1, 0.2] -> 0.05
    sae, x = hand_case()
    loss, logs = sae.train().loss(x, 0, 10)
    torch.testing.assert_close(logs["mse"], torch.tensor(2.0))
    torch.testing.assert_close(logs["l1"], torch.tensor(1.5))
    torch.testing.assert_close(logs["aux_recon"], torch.tensor(0.05))
    torch.testing.assert_close(loss, torch.tensor(2.0 + 0.1 * 1.5 + 0.05))
    assert float(logs["l0"]) == 1.0


def paper_loss(p: dict, x: torch.Tensor, lam: float, frozen: bool) -> torch.Tensor:
    """Eqs. of section 3 written out directly: W_mag = exp(r_mag) * W_gate, H(pi_gate) constant,
    x_hat_frozen with a gradient-free copy of (W_dec, b_dec) when ``frozen``."""
    xc = x - p["b_dec"]
    pi_gate = xc @ p["W_enc"] + p["b_gate"]
    W_mag = p["W_enc"] * torch.exp(p["r_mag"])[None, :]
    f = (pi_gate > 0).float().detach() * torch.relu(xc @ W_mag + p["b_mag"])
    x_hat = f @ p["W_dec"] + p["b_dec"]
    W_f, b_f = (p["W_dec"].detach().clone(), p["b_dec"].detach().clone()) if frozen else (p["W_dec"], p["b_dec"])
    aux_hat = torch.relu(pi_gate) @ W_f + b_f
    l_rec = (x - x_hat).pow(2).sum(-1).mean()
    l_sparse = lam * (torch.relu(pi_gate) * p["W_dec"].norm(dim=-1)).sum(-1).mean()
    return l_rec + l_sparse + (x - aux_hat).pow(2).sum(-1).mean()


@pytest.mark.parametrize("frozen", [True, False])
def test_loss_and_gradients_match_the_equations(frozen):
    g = torch.Generator().manual_seed(5)
    sae = GATED.create(6, {"d_sae": 24, "l1_coefficient": 0.3, "l1_warmup_fraction": 0.0,
                           "aux_frozen_decoder": frozen}, seed=1)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    x = torch.randn(32, 6, generator=g)
    loss, _ = sae.train().loss(x, 0, 10)
    loss.backward()
    ref = {n: getattr(sae, n).detach().clone().requires_grad_(True)
           for n in ("W_enc", "b_dec", "r_mag", "b_mag", "W_dec")}
    ref["b_gate"] = sae.b_gate.detach().clone().requires_grad_(True)
    expected = paper_loss(ref, x, 0.3, frozen)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    grads = {"W_enc": sae.W_enc.grad, "b_gate": sae.b_enc.grad, "r_mag": sae.r_mag.grad, "b_mag": sae.b_mag.grad,
             "W_dec": sae.W_dec.grad, "b_dec": sae.b_dec.grad}
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref[name].grad, msg=name)


def test_heaviside_gate_passes_no_gradient():
    # b_gate learns only from the sparsity and auxiliary terms: the latents themselves carry no
    # gradient to it, while the magnitude path (r_mag, b_mag) learns from them.
    sae, x = hand_case()
    sae.encode(x).sum().backward()
    assert sae.b_enc.grad is None or float(sae.b_enc.grad.abs().sum()) == 0.0
    assert float(sae.r_mag.grad.abs().sum()) > 0.0 and float(sae.b_mag.grad.abs().sum()) > 0.0


def test_saved_with_saelens_gated_names(tmp_path):
    from safetensors.torch import load_file

    sae, x = hand_case()
    sae.save(tmp_path)
    assert set(load_file(str(tmp_path / "sae_weights.safetensors"))) == {"W_enc", "b_gate", "r_mag", "b_mag",
                                                                         "W_dec", "b_dec"}
    import json

    assert json.loads((tmp_path / "cfg.json").read_text())["architecture"] == "gated"
    back = GATED.load(tmp_path)
    torch.testing.assert_close(back.encode(x), sae.encode(x), rtol=0, atol=0)
