"""Load a saved SAE folder (``cfg.json`` + ``sae_weights.safetensors``) of any learner.

Folders written by harness name their learner in ``cfg["harness"]["learner"]``. Folders
written by SAELens are mapped by ``architecture`` (or the older ``activation_fn_str``):
standard -> relu_l1, topk -> topk, jumprelu -> jumprelu, gated -> gated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

SAELENS_ARCHITECTURES = {"standard": "relu_l1", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated"}


def unsupported_saelens_options(cfg: dict[str, Any]) -> list[str]:
    """SAELens options of a cfg.json that harness's learners do not implement exactly.

    Loading such an SAE would give wrong latents or reconstructions without an error (e.g.
    TopK with ``rescale_acts_by_decoder_norm`` and decoder rows that are not unit norm, or
    ``normalize_activations="layer_norm"``), so they are refused instead.
    """
    problems = []
    norm = cfg.get("normalize_activations")
    if norm not in (None, "none"):
        problems.append(f'normalize_activations={norm!r} (harness applies no input normalisation; only "none")')
    for flag in ("rescale_acts_by_decoder_norm", "finetuning_scaling_factor"):
        if cfg.get(flag):
            problems.append(f"{flag}=true (not implemented by harness; only false)")
    reshape = cfg.get("reshape_activations")
    if reshape not in (None, "none"):
        problems.append(f'reshape_activations={reshape!r} (per-head hook_z SAEs are not supported; only "none")')
    if cfg.get("hook_head_index") is not None:
        problems.append(f"hook_head_index={cfg['hook_head_index']!r} (head-specific SAEs are not supported)")
    fn = cfg.get("activation_fn_str")
    arch = cfg.get("architecture")
    if fn not in (None, "relu", "topk") and arch in (None, "standard", "topk"):
        problems.append(f"activation_fn_str={fn!r} (only relu and topk)")
    return problems


def learner_for_cfg(cfg: dict[str, Any]) -> str:
    """The registered learner name that reads this cfg.json (SAELens options harness does not
    implement exactly are refused, naming each)."""
    block = cfg.get("harness")
    if isinstance(block, dict) and block.get("learner"):
        return str(block["learner"])
    if cfg.get("harness_learner"):  # tied_sae folders written before the harness block
        return str(cfg["harness_learner"])
    problems = unsupported_saelens_options(cfg)
    if problems:
        raise HarnessError(
            "This SAELens SAE uses options harness does not implement, so loading it would give wrong latents or "
            "reconstructions: " + "; ".join(problems) + ". Fold them into the weights (e.g. SAELens's "
            "fold_activation_norm_scaling_factor / fold_W_dec_norm) and save it again, or evaluate it with SAELens."
        )
    arch = cfg.get("architecture")
    if arch is None:
        arch = "topk" if cfg.get("activation_fn_str") == "topk" else "standard"
    if arch not in SAELENS_ARCHITECTURES:
        raise HarnessError(
            f"SAELens architecture {arch!r} has no harness learner (known: {', '.join(SAELENS_ARCHITECTURES)})."
        )
    return SAELENS_ARCHITECTURES[arch]


SAE_FORMATS = ("auto", "harness", "saelens", "sparsify", "dictionary_learning")
SPARSIFY_WEIGHTS = "sae.safetensors"
PICKLE_NAMES = ("ae.pt", "ae.pth")


def detect_format(directory: Path) -> str:
    """The format of an SAE folder, from its files (``harness`` covers SAELens folders too)."""
    if (directory / "cfg.json").is_file() and (directory / "sae_weights.safetensors").is_file():
        return "harness"
    if (directory / "cfg.json").is_file() and (directory / SPARSIFY_WEIGHTS).is_file():
        return "sparsify"
    if any((directory / n).is_file() for n in (*PICKLE_NAMES, "ae.safetensors")):
        return "dictionary_learning"
    if (directory / "cfg.json").is_file():
        return "harness"  # the loader names what is missing
    hooks = sorted(p.name for p in directory.iterdir() if (p / SPARSIFY_WEIGHTS).is_file()) if directory.is_dir() else []
    if hooks:
        raise HarnessError(
            f"{directory} is a sparsify run folder with one SAE per hook point ({', '.join(hooks)}). "
            f"Pass the folder of one hook point, e.g. {directory / hooks[0]}."
        )
    raise HarnessError(
        f"{directory} is not an SAE folder: expected cfg.json + sae_weights.safetensors (harness, SAELens), "
        f"cfg.json + {SPARSIFY_WEIGHTS} (sparsify) or ae.safetensors + config.json (dictionary_learning)."
    )


def load_sae(directory: str | Path, registries: Any = None, format: str = "auto") -> Any:  # noqa: A002
    """Load the SAE saved in ``directory``: harness and SAELens folders with the learner their
    cfg.json names, sparsify folders as ``topk``. ``format`` forces one of :data:`SAE_FORMATS`."""
    directory = Path(directory)
    if format not in SAE_FORMATS:
        raise HarnessError(f"Unknown SAE format {format!r}; choose one of {', '.join(SAE_FORMATS)}.")
    if not directory.is_dir():
        raise HarnessError(f"SAE folder {directory} does not exist (expected a folder holding cfg.json and the "
                           "weights, e.g. what `harness train-sae --output-dir` writes).")
    found = detect_format(directory)
    if format != "auto" and {format, found} != {"harness", "saelens"} and format != found:
        raise HarnessError(f"{directory} looks like a {found} folder, not {format}; use format: auto or {found}.")
    if registries is None:
        from harness.plugins import get_registries

        registries = get_registries()
    if found == "sparsify":
        return _load_sparsify(directory, registries)
    if found == "dictionary_learning":
        return _load_dictionary_learning(directory, registries)
    cfg_path = directory / "cfg.json"
    name = learner_for_cfg(json.loads(cfg_path.read_text()))
    return registries["dictionary_learner"].get(name).load(directory)


def _load_sparsify(directory: Path, registries: Any) -> Any:
    """A sparsify (eai-sparsify) TopK SAE as harness's ``topk``: W_enc = encoder.weight^T,
    b_enc = encoder.bias, W_dec, b_dec; sparsify subtracts b_dec before encoding."""
    from safetensors.torch import load_file

    cfg = json.loads((directory / "cfg.json").read_text())
    problems = []
    if cfg.get("activation", "topk") != "topk":
        problems.append(f"activation={cfg.get('activation')!r} (only topk)")
    for flag in ("skip_connection", "transcode"):
        if cfg.get(flag):
            problems.append(f"{flag}=true (harness's SAEs have no skip connection and are not transcoders)")
    if problems:
        raise HarnessError(f"{directory / 'cfg.json'} uses sparsify options harness does not implement, so loading "
                           f"it would be silently wrong: {'; '.join(problems)}.")
    tensors = load_file(str(directory / SPARSIFY_WEIGHTS))
    missing = [k for k in ("encoder.weight", "encoder.bias", "W_dec", "b_dec") if k not in tensors]
    if missing:
        raise HarnessError(f"{directory / SPARSIFY_WEIGHTS} lacks {missing}: not a sparsify SAE.")
    d_sae, d_in = tensors["encoder.weight"].shape
    learner = registries["dictionary_learner"].get("topk")
    config = learner.Config(d_sae=int(d_sae), k=int(cfg.get("k", 32)), apply_b_dec_to_input=True,
                            unit_norm_decoder=bool(cfg.get("normalize_decoder", True)))
    sae = learner.create(int(d_in), config, seed=0)
    sae.load_weights({"W_enc": tensors["encoder.weight"].t().contiguous(), "b_enc": tensors["encoder.bias"],
                      "W_dec": tensors["W_dec"], "b_dec": tensors["b_dec"]})
    sae.metadata = {"source_format": "sparsify", "source_path": str(directory)}
    return sae.eval()


#: dictionary_learning dict_class -> (harness learner, extra config from the checkpoint).
DICTIONARY_LEARNING_CLASSES = {
    "AutoEncoder": "relu_l1",
    "AutoEncoderTopK": "topk",
    "BatchTopKSAE": "batchtopk",
    "JumpReluAutoEncoder": "jumprelu",
}


def _load_dictionary_learning(directory: Path, registries: Any) -> Any:
    """A dictionary_learning (saprmarks) SAE from ``ae.safetensors`` (its ``state_dict`` saved with
    safetensors) and its ``config.json`` (``trainer.dict_class``). Its ``ae.pt`` is a pickle:
    refused, with the one-line conversion."""
    from safetensors.torch import load_file

    weights = directory / "ae.safetensors"
    if not weights.is_file():
        raise HarnessError(
            f"{directory} is a dictionary_learning checkpoint with only a pickle ({', '.join(PICKLE_NAMES)}): "
            "unpickling can run arbitrary code, so harness does not open it. Convert it where you trust the file: "
            "`from safetensors.torch import save_file; save_file(torch.load('ae.pt'), 'ae.safetensors')` next to "
            "its config.json, then load the folder again."
        )
    cfg_path = directory / "config.json"
    trainer = json.loads(cfg_path.read_text()).get("trainer", {}) if cfg_path.is_file() else {}
    dict_class = trainer.get("dict_class")
    if dict_class not in DICTIONARY_LEARNING_CLASSES:
        raise HarnessError(
            f"{directory}: dictionary_learning class {dict_class!r} (config.json trainer.dict_class) has no harness "
            f"learner; known: {', '.join(DICTIONARY_LEARNING_CLASSES)}."
            + ("" if cfg_path.is_file() else " The folder needs the config.json dictionary_learning wrote.")
        )
    t = load_file(str(weights))
    name = DICTIONARY_LEARNING_CLASSES[dict_class]
    if dict_class == "JumpReluAutoEncoder":
        d_in, d_sae = t["W_enc"].shape
        mapped = {k: t[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
        if bool((t["threshold"] < 0).any()):
            raise HarnessError(f"{weights}: negative JumpReLU thresholds; harness's jumprelu needs thresholds >= 0.")
        extra = {"apply_b_dec_to_input": bool(trainer.get("apply_b_dec_to_input", False))}
    else:
        d_sae, d_in = t["encoder.weight"].shape
        mapped = {"W_enc": t["encoder.weight"].t().contiguous(), "b_enc": t["encoder.bias"],
                  "W_dec": t["decoder.weight"].t().contiguous(), "b_dec": t["bias" if dict_class == "AutoEncoder" else "b_dec"]}
        extra = {"apply_b_dec_to_input": True}
        if dict_class != "AutoEncoder":
            extra["k"] = int(t["k"])
        if dict_class == "BatchTopKSAE":
            if float(t["threshold"]) < 0:
                raise HarnessError(f"{weights}: the BatchTopK inference threshold was never estimated (threshold < 0), "
                                   "so dictionary_learning's own encode keeps every positive latent; train it longer.")
            mapped["batchtopk_threshold"] = t["threshold"].reshape(1).float()
    learner = registries["dictionary_learner"].get(name)
    sae = learner.create(int(d_in), learner.Config(d_sae=int(d_sae), unit_norm_decoder=False, **extra), seed=0)
    sae.load_weights(mapped)
    sae.metadata = {"source_format": "dictionary_learning", "source_class": dict_class, "source_path": str(directory)}
    return sae.eval()
