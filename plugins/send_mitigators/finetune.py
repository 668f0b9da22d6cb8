"""Shared fine-tuning loop and MLP-neuron utilities of the hallucination mitigators.

:func:`finetune` trains a deep COPY of a causal LM on texts (next-token loss, AdamW) and calls
``on_epoch(model, epoch)`` after every epoch (SeND uses it to track activations, drop neurons and, in its
paper protocol, to stop).
Neurons are a block's MLP hidden units: unit j = row j of the up-projection(s) (weight and bias;
``gate_proj`` too for gated MLPs) and column j of the down-projection, found through
:func:`harness.models.adapters.get_adapter`, so GPT-NeoX, GPT-2 (Conv1D), Llama-style and OPT work.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from harness.models.adapters import _get, get_adapter, get_blocks


def _out_dim(m: nn.Module) -> int | None:
    if isinstance(m, nn.Linear):
        return m.out_features
    if type(m).__name__ == "Conv1D":  # GPT-2: weight [in, out]
        return m.weight.shape[1]
    return None


def mlp_modules(model: nn.Module, layer: int) -> tuple[list[nn.Module], nn.Module]:
    """(up-projections, down-projection) of block ``layer``'s MLP."""
    adapter = get_adapter(model)
    block = get_blocks(model)[layer]
    down = _get(block, adapter.mlp_down)
    parent_path = adapter.mlp_down.rpartition(".")[0]
    parent = _get(block, parent_path) if parent_path else block
    n = down.weight.shape[0] if type(down).__name__ == "Conv1D" else down.in_features
    ups = [m for m in parent.children() if m is not down and _out_dim(m) == n]
    if not ups:
        raise ValueError(f"no MLP up-projection with {n} outputs found next to {adapter.mlp_down!r} in block {layer}.")
    return ups, down


def n_neurons(model: nn.Module, layer: int) -> int:
    ups, _ = mlp_modules(model, layer)
    return _out_dim(ups[0])


@torch.no_grad()
def zero_neurons(model: nn.Module, layer: int, idx: Sequence[int]) -> None:
    """Zero MLP units ``idx`` of block ``layer``: up rows (weight + bias) and down columns, in place."""
    idx = torch.as_tensor(list(idx), dtype=torch.long)
    ups, down = mlp_modules(model, layer)
    for up in ups:
        if isinstance(up, nn.Linear):
            up.weight[idx] = 0
        else:  # Conv1D
            up.weight[:, idx] = 0
        if getattr(up, "bias", None) is not None:
            up.bias[idx] = 0
    if isinstance(down, nn.Linear):
        down.weight[:, idx] = 0
    else:
        down.weight[idx] = 0


def batches(tokenizer, texts: Sequence[str], batch_size: int, generator: torch.Generator):
    order = torch.randperm(len(texts), generator=generator).tolist()
    for i in range(0, len(order), batch_size):
        chunk = [texts[j] for j in order[i : i + batch_size]]
        enc = tokenizer(chunk, return_tensors="pt", padding=True)
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        yield enc.input_ids, enc.attention_mask, labels


def finetune(
    model: nn.Module, tokenizer, texts: Sequence[str], *, epochs: int, lr: float, batch_size: int, seed: int,
    on_epoch: Callable[[nn.Module, int], bool | None] | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
) -> nn.Module:
    """Fine-tune a deep copy of ``model`` (the given model is never modified); return it in eval mode.
    ``on_epoch(model, epoch)`` runs before the first epoch (epoch 0) and after each; returning True after
    an epoch stops training there (a stopping rule)."""
    if not texts:
        raise ValueError("fine-tuning data is empty: pass a non-empty list of texts.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    m = copy.deepcopy(model)
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=lr)
    if on_epoch:
        on_epoch(m, 0)
    for epoch in range(1, epochs + 1):
        for ids, mask, labels in batches(tokenizer, texts, batch_size, gen):
            loss = m(input_ids=ids.to(m.device), attention_mask=mask.to(m.device), labels=labels.to(m.device)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step:
                after_step(m)
        if on_epoch and on_epoch(m, epoch):
            break
    m.eval()
    return m
