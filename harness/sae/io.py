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


def learner_for_cfg(cfg: dict[str, Any]) -> str:
    """The registered learner name that reads this cfg.json."""
    block = cfg.get("harness")
    if isinstance(block, dict) and block.get("learner"):
        return str(block["learner"])
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
