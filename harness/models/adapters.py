"""Architecture adapters: where each hook point lives in a Hugging Face model.

One row per family (``model_type``) names, relative to the model, the list of blocks and,
relative to a block, the attention module, the module whose output is the MLP output, and
the module whose *input* is the MLP's post-activation neurons. Hook points then map to a
:class:`Site` (a module plus what is read there):

=========================  ===========================================  ===========
hook point                 module                                        read
=========================  ===========================================  ===========
blocks.{i}.hook_resid_pre  block i                                       input
blocks.{i}.hook_resid_post block i                                       output
blocks.{i}.attn.hook_out   block i's attention                           output[0]
blocks.{i}.attn.hook_pattern block i's attention (attention function)   post-softmax
blocks.{i}.mlp.hook_out    block i's MLP (OPT: ``fc2``)                 output
blocks.{i}.mlp.hook_post   MLP down projection                           input
hook_final                 the LM head (``get_output_embeddings()``)    input
=========================  ===========================================  ===========

Families in the table: gpt_neox (Pythia), gpt2, opt, llama, mistral, qwen2, qwen3, gemma,
gemma2, phi3, olmo, olmo2, gptj. Any other model is detected by looking for the usual
names (``model.layers`` / ``self_attn`` / ``mlp`` / ``down_proj`` ...); a model where that
fails gets an error naming what was not found.

OPT runs its MLP on a flattened ``[batch*seq, d]`` view; the adapter marks those sites
``flat`` and hooks reshape them to ``[batch, seq, d]`` (see :mod:`harness.models.hookpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from harness.errors import HarnessError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["ADAPTERS", "AdapterError", "ArchAdapter", "Site", "get_adapter", "get_blocks", "site_for"]

SiteKind = Literal["input", "output", "pattern"]


@dataclass(frozen=True)
class ArchAdapter:
    """Dotted module paths for one architecture family."""

    blocks: str  #: relative to the CausalLM, e.g. ``"gpt_neox.layers"``
    attn: str  #: relative to a block
    mlp_out: str  #: relative to a block: module whose forward output is the MLP output
    mlp_down: str  #: relative to a block: module whose input is the post-activation neurons
    flat_mlp: bool = False  #: MLP runs on ``[batch*seq, d]`` (OPT)


@dataclass(frozen=True)
class Site:
    """Where a hook point is read/written: a module and which of its tensors."""

    module: nn.Module
    kind: SiteKind
    block: nn.Module | None = None  #: the enclosing block (records the batch shape for flat sites)
    flat: bool = False


_LLAMA = ArchAdapter("model.layers", "self_attn", "mlp", "mlp.down_proj")
ADAPTERS: dict[str, ArchAdapter] = {
    "gpt_neox": ArchAdapter("gpt_neox.layers", "attention", "mlp", "mlp.dense_4h_to_h"),
    "gpt2": ArchAdapter("transformer.h", "attn", "mlp", "mlp.c_proj"),
    "gptj": ArchAdapter("transformer.h", "attn", "mlp", "mlp.fc_out"),
    "opt": ArchAdapter("model.decoder.layers", "self_attn", "fc2", "fc2", flat_mlp=True),
    **{
        name: _LLAMA
        for name in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo", "olmo2")
    },
}

_BLOCK_PATHS = ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers", "transformer.layers")
_ATTN_NAMES = ("self_attn", "attention", "attn")
_MLP_NAMES = ("mlp", "feed_forward", "ffn")
_DOWN_NAMES = ("down_proj", "dense_4h_to_h", "c_proj", "fc_out", "fc2", "w2")


class AdapterError(HarnessError):
    """A model whose layout no adapter matches."""


def _get(root: nn.Module, path: str) -> nn.Module | None:
    module: nn.Module | None = root
    for part in path.split("."):
        module = getattr(module, part, None) if module is not None else None
    return module


def _detect(model: nn.Module) -> ArchAdapter:
    """Guess an adapter from the usual module names (for families not in :data:`ADAPTERS`)."""
    from torch import nn

    blocks_path = next((p for p in _BLOCK_PATHS if isinstance(_get(model, p), nn.ModuleList)), None)
    if blocks_path is None:
        raise AdapterError(
            f"No hook-point adapter for {type(model).__name__} (model_type "
            f"{getattr(model.config, 'model_type', '?')!r}): none of {', '.join(_BLOCK_PATHS)} is a ModuleList. "
            "Add a row to harness.models.adapters.ADAPTERS."
        )
    block = _get(model, blocks_path)[0]  # type: ignore[index]
    attn = next((n for n in _ATTN_NAMES if hasattr(block, n)), None)
    mlp = next((n for n in _MLP_NAMES if hasattr(block, n)), None)
    down_parent = _get(block, mlp) if mlp else block
    down = next((n for n in _DOWN_NAMES if hasattr(down_parent, n)), None)
    if attn is None or down is None:
        raise AdapterError(
            f"No hook-point adapter for {type(model).__name__}: its blocks ({blocks_path}) lack an attention module "
            f"({'/'.join(_ATTN_NAMES)}) or an MLP down projection ({'/'.join(_DOWN_NAMES)}). "
            "Add a row to harness.models.adapters.ADAPTERS."
        )
    if mlp is None:  # OPT-like: MLP linears live directly in the block
        return ArchAdapter(blocks_path, attn, down, down, flat_mlp=True)
    return ArchAdapter(blocks_path, attn, mlp, f"{mlp}.{down}")


def get_adapter(model: nn.Module) -> ArchAdapter:
    """The adapter for ``model`` (table row by ``config.model_type``, else detected)."""
    adapter = ADAPTERS.get(getattr(getattr(model, "config", None), "model_type", ""))
    if adapter is not None and _get(model, adapter.blocks) is not None:
        return adapter
    return _detect(model)


def get_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's list of transformer blocks."""
    return _get(model, get_adapter(model).blocks)  # type: ignore[return-value]


def site_for(model: nn.Module, layer: int | None, kind: str) -> Site:
    """The :class:`Site` of hook kind ``kind`` (``resid_pre``, ``attn_out``, ...) at ``layer``."""
    adapter = get_adapter(model)
    if kind == "final":
        head = model.get_output_embeddings()
        if head is None:
            raise AdapterError(f"{type(model).__name__} has no LM head (get_output_embeddings() is None).")
        return Site(head, "input")
    block = _get(model, adapter.blocks)[layer]  # type: ignore[index]
    if kind == "resid_pre":
        return Site(block, "input")
    if kind == "resid_post":
        return Site(block, "output")
    if kind == "attn_out":
        return Site(_get(block, adapter.attn), "output")  # type: ignore[arg-type]
    if kind == "pattern":
        return Site(_get(block, adapter.attn), "pattern")  # type: ignore[arg-type]
    if kind == "mlp_out":
        return Site(_get(block, adapter.mlp_out), "output", block, adapter.flat_mlp)  # type: ignore[arg-type]
    if kind == "mlp_post":
        return Site(_get(block, adapter.mlp_down), "input", block, adapter.flat_mlp)  # type: ignore[arg-type]
    raise ValueError(f"unknown hook kind {kind!r}")
