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


def load_sae(directory: str | Path, registries: Any = None) -> Any:
    """Load the SAE saved in ``directory`` with the learner its cfg.json names."""
    directory = Path(directory)
    cfg_path = directory / "cfg.json"
    if not cfg_path.is_file():
        raise HarnessError(f"{directory} is not an SAE folder: it has no cfg.json.")
    name = learner_for_cfg(json.loads(cfg_path.read_text()))
    if registries is None:
        from harness.plugins import get_registries

        registries = get_registries()
    return registries["dictionary_learner"].get(name).load(directory)
