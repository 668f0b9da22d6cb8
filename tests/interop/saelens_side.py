"""The peers' side of tests/test_saelens_interop.py; runs in a Python environment with the real
``sae-lens``, ``eai-sparsify`` and ``dictionary-learning`` packages (and without harness), so
each side is only ever its own code.

    python saelens_side.py load ROOT     every ROOT/<name>/sae folder (written by harness): load with
                                         SAELens, encode/decode ROOT/x.safetensors into
                                         ROOT/<name>/saelens_out.safetensors, save again to ROOT/<name>/resaved
    python saelens_side.py make ROOT     SAELens SAEs of each architecture, random weights, saved to
                                         ROOT/<arch>/sae with their encode/decode of ROOT/x.safetensors;
                                         plus options harness must refuse (ROOT/refuse_<what>/sae);
                                         sparsify SparseCoders and dictionary_learning SAEs likewise
    python saelens_side.py train_loss ROOT  every ROOT/<name>/train.json (a SAELens training-SAE class and
                                         config, next to weights, input batch and dead-latent mask saved
                                         by harness): SAELens's training_forward_pass losses into
                                         ROOT/<name>/saelens_loss.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from sae_lens import (
    SAE,
    GatedSAE,
    GatedSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)


def _outputs(sae, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        f = sae.encode(x)
        return {"f": f.contiguous(), "x_hat": sae.decode(f).contiguous()}


def load(root: Path) -> None:
    x = load_file(str(root / "x.safetensors"))["x"]
    for folder in sorted(p for p in root.iterdir() if (p / "sae" / "cfg.json").is_file()):
        sae = SAE.load_from_disk(folder / "sae")
        save_file(_outputs(sae, x), str(folder / "saelens_out.safetensors"))
        sae.save_model(folder / "resaved")
        print(folder.name, type(sae).__name__)


def _randomise(sae, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if name.startswith("W") else 0.1))
        if hasattr(sae, "threshold"):
            sae.threshold.copy_(torch.rand(sae.threshold.shape, generator=gen) * 0.2 + 0.01)


def make(root: Path) -> None:
    x = load_file(str(root / "x.safetensors"))["x"]
    d_in, d_sae = x.shape[1], 4 * x.shape[1]
    gen = torch.Generator().manual_seed(0)
    saes = {
        "standard": StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae)),
        "standard_no_bdec": StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=False)),
        "topk": TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=6)),
        "jumprelu": JumpReLUSAE(JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae)),
        "gated": GatedSAE(GatedSAEConfig(d_in=d_in, d_sae=d_sae)),
        "refuse_decoder_norm_rescale": TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=6,
                                                             rescale_acts_by_decoder_norm=True)),
        "refuse_layer_norm": StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, normalize_activations="layer_norm")),
    }
    for name, sae in saes.items():
        _randomise(sae, gen)
        folder = root / name
        sae.save_model(folder / "sae")
        save_file(_outputs(sae, x), str(folder / "saelens_out.safetensors"))
        print(name, type(sae).__name__)
    make_sparsify(root, x, gen)
    make_dictionary_learning(root, x, gen)


def _dictionary_learning():
    """dictionary_learning's SAE classes. Its package __init__ imports nnsight (for activation
    buffers, not needed here), so the package is entered without running __init__."""
    import importlib.util
    import types

    if "dictionary_learning" not in sys.modules:
        spec = importlib.util.find_spec("dictionary_learning")
        pkg = types.ModuleType("dictionary_learning")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["dictionary_learning"] = pkg
    from dictionary_learning.dictionary import AutoEncoder, JumpReluAutoEncoder
    from dictionary_learning.trainers.batch_top_k import BatchTopKSAE
    from dictionary_learning.trainers.top_k import AutoEncoderTopK

    return AutoEncoder, AutoEncoderTopK, BatchTopKSAE, JumpReluAutoEncoder


def make_dictionary_learning(root: Path, x: torch.Tensor, gen: torch.Generator) -> None:
    import json

    AutoEncoder, AutoEncoderTopK, BatchTopKSAE, JumpReluAutoEncoder = _dictionary_learning()
    d_in, d_sae = x.shape[1], 4 * x.shape[1]
    aes = {
        "dl_autoencoder": (AutoEncoder(d_in, d_sae), {}),
        "dl_topk": (AutoEncoderTopK(d_in, d_sae, 6), {"k": 6}),
        "dl_batchtopk": (BatchTopKSAE(d_in, d_sae, 6), {"k": 6}),
        "dl_jumprelu": (JumpReluAutoEncoder(d_in, d_sae), {}),
    }
    for name, (ae, extra) in aes.items():
        with torch.no_grad():
            for pname, p in ae.named_parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.1 if "bias" in pname or "b_" in pname else 0.3))
            if hasattr(ae, "threshold"):
                ae.threshold.copy_(torch.rand(ae.threshold.shape, generator=gen) * 0.2 + 0.01)
        folder = root / name / "sae"
        folder.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in ae.state_dict().items()}, str(folder / "ae.safetensors"))
        trainer = {"dict_class": type(ae).__name__, "activation_dim": d_in, "dict_size": d_sae, **extra}
        (folder / "config.json").write_text(json.dumps({"trainer": trainer}))
        with torch.no_grad():
            f = ae.encode(x)
            out = {"f": f.contiguous(), "x_hat": ae.decode(f).contiguous()}
        save_file(out, str(root / name / "saelens_out.safetensors"))
        print(name, type(ae).__name__)
    pickled = root / "refuse_dl_pickle" / "sae"
    pickled.mkdir(parents=True)
    torch.save(aes["dl_topk"][0].state_dict(), pickled / "ae.pt")


def make_sparsify(root: Path, x: torch.Tensor, gen: torch.Generator) -> None:
    from sparsify import SparseCoder, SparseCoderConfig

    d_in = x.shape[1]
    coders = {
        "sparsify": SparseCoder(d_in, SparseCoderConfig(k=6, num_latents=4 * d_in)),
        "refuse_sparsify_skip": SparseCoder(d_in, SparseCoderConfig(k=6, num_latents=4 * d_in, skip_connection=True)),
    }
    for name, sc in coders.items():
        _randomise(sc, gen)
        folder = root / name
        sc.save_to_disk(folder / "sae")
        with torch.no_grad():
            enc = sc.encode(x)
            f = torch.zeros(x.shape[0], sc.num_latents).scatter_(-1, enc.top_indices, enc.top_acts)
            x_hat = sc.decode(enc.top_acts, enc.top_indices)
        save_file({"f": f.contiguous(), "x_hat": x_hat.contiguous()}, str(folder / "saelens_out.safetensors"))
        print(name, type(sc).__name__)


def train_loss(root: Path) -> None:
    """SAELens's training loss on harness's weights: the class named in train.json, built from its config,
    given the saved tensors (names in SAELens's layout) and run on the saved batch and dead mask."""
    import json

    import sae_lens
    from sae_lens.saes.sae import TrainStepInput

    for folder in sorted(p for p in root.iterdir() if (p / "train.json").is_file()):
        spec = json.loads((folder / "train.json").read_text())
        cfg = getattr(sae_lens, spec["config_class"])(**spec["config"])
        sae = getattr(sae_lens, spec["class"])(cfg)
        weights = load_file(str(folder / "weights.safetensors"))
        with torch.no_grad():
            for name, t in weights.items():
                getattr(sae, name).copy_(t)
        batch = load_file(str(folder / "batch.safetensors"))
        sae.train()
        out = sae.training_forward_pass(TrainStepInput(
            sae_in=batch["x"], coefficients=spec.get("coefficients", {}), dead_neuron_mask=batch["dead"],
            n_training_steps=0, is_logging_step=False))
        losses = {"loss": out.loss.detach().reshape(1)} | {k: v.detach().reshape(1) for k, v in out.losses.items()}
        save_file(losses, str(folder / "saelens_loss.safetensors"))
        print(folder.name, spec["class"], {k: float(v) for k, v in losses.items()})


if __name__ == "__main__":
    {"load": load, "make": make, "train_loss": train_loss}[sys.argv[1]](Path(sys.argv[2]))
