"""Load a saved SAE folder (``cfg.json`` + ``sae_weights.safetensors``) of any learner.

Folders written by harness name their learner in ``cfg["harness"]["learner"]``. Folders
written by SAELens are mapped by ``architecture`` (or the older ``activation_fn_str``):
standard -> relu_l1, topk -> topk, jumprelu -> jumprelu.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

SAELENS_ARCHITECTURES = {"standard": "relu_l1", "topk": "topk", "jumprelu": "jumprelu"}


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
        raise HarnessError(f"SAE folder {directory} does not exist.")
    found = detect_format(directory)
    if format != "auto" and {format, found} != {"harness", "saelens"} and format != found:
        raise HarnessError(f"{directory} looks like a {found} folder, not {format}; use format: auto or {found}.")
    if registries is None:
        from harness.plugins import get_registries

        registries = get_registries()
    if found == "sparsify":
        return _load_sparsify(directory, registries)
    if found == "dictionary_learning":
        return _load_dictionary_learning(directory)
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


def _load_dictionary_learning(directory: Path) -> Any:
    pickles = [n for n in PICKLE_NAMES if (directory / n).is_file()]
    raise HarnessError(
        f"{directory} is a dictionary_learning checkpoint ({', '.join(pickles) or 'ae.safetensors'}). Its ae.pt is a "
        "pickle, and unpickling can run arbitrary code, so harness does not open it; and no dictionary_learning "
        "loader is verified against that package here. Convert it where you trust the file: load it with "
        "dictionary_learning, then save an SAELens folder (cfg.json + sae_weights.safetensors with W_enc [d_in, "
        "d_sae], b_enc, W_dec [d_sae, d_in], b_dec) and load that."
    )
