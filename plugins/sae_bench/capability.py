"""Capability cost of an SAE: lm-eval zero-shot accuracy with its reconstruction spliced in.

:class:`SAESplice` is an :class:`~harness.protocols.Intervention`: while applied, the hook
point's activations are replaced by the SAE's reconstruction, with the CE pass's rule
(:func:`.evaluate.evaluate_sae`): BOS positions keep their original activation (the SAE never
saw them in training), every other position is ``decode(encode(x))``
(:func:`.evaluate.sae_reconstruct`). lm-eval right-pads its batches, and a causal model's
padded tail never reaches the scored positions, so padding needs no mask here.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

from harness.results import MetricValue


def sae_id(sae: Any) -> str:
    """sha256 of the SAE's class and state dict (names, shapes, dtypes, bytes): 16 hex digits."""
    import torch

    h = hashlib.sha256(type(sae).__name__.encode())
    for name, t in sorted(sae.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-dim buffers too
    return h.hexdigest()[:16]


class SAESplice:
    """Replace ``hook_point``'s activations by ``sae``'s reconstruction (BOS kept), as an intervention."""

    def __init__(self, sae: Any, hook_point: str, bos_token_id: int | None) -> None:
        self.sae, self.hook_point, self.bos_token_id = sae, hook_point, bos_token_id
        self.id = f"sae-splice:{hook_point}:bos={bos_token_id}:{sae_id(sae)}"

    @contextlib.contextmanager
    def apply(self, model: Any) -> Iterator[None]:
        import torch

        from harness.models import intervene
        from harness.models.hookpoints import _unwrap

        from .evaluate import sae_reconstruct

        module = _unwrap(model)
        seen: dict[str, torch.Tensor] = {}

        def record_ids(mod: Any, args: tuple, kwargs: dict) -> None:
            seen["ids"] = kwargs["input_ids"] if kwargs.get("input_ids") is not None else args[0]

        def splice(a: torch.Tensor) -> torch.Tensor:
            ids = seen["ids"].to(a.device)
            keep = torch.ones(a.shape[:2], dtype=torch.bool, device=a.device)
            if self.bos_token_id is not None:
                keep &= ids != self.bos_token_id
            out = a.clone()
            with torch.no_grad():
                out[keep] = sae_reconstruct(self.sae, a[keep])[1].to(a.dtype)
            return out

        handle = module.register_forward_pre_hook(record_ids, with_kwargs=True)
        try:
            with intervene(module, {self.hook_point: splice}):
                yield
        finally:
            handle.remove()


def capability_values(cell: Any, loaded: Any, sae: Any, cfg: Any) -> tuple[list[MetricValue], dict[str, Any]]:
    """``capability_acc`` / ``capability_delta`` of the model with ``sae`` spliced at ``cfg.hook_point``,
    against the same model without it (cached per model for every row and seed)."""
    from harness.evaluation.capability import capability_metrics, cell_cache_dir, score_capability

    if not cfg.capability_tasks:
        return [], {}
    splice = SAESplice(sae, cfg.hook_point, loaded.require_tokenizer().bos_token_id)
    result = score_capability(
        loaded, cfg.capability_tasks, intervention=splice, limit=cfg.capability_limit,
        include_paths=cfg.capability_include_paths, cache_dir=cell_cache_dir(cell),
    )  # fmt: skip
    return capability_metrics(cell, result), result.details()
