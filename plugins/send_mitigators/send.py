"""SeND bookkeeping: tracked activations over checkpoints, neuron sensitivity, selection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from harness.models import capture


@torch.no_grad()
def second_to_last(model, tokenizer, texts: Sequence[str], point: str) -> np.ndarray:
    """Hook ``point``'s activation at each text's second-to-last token (SeND's tracked position): ``[n_texts, d]``."""
    was_training = model.training
    model.eval()
    rows = []
    with capture(model, point) as store:
        for t in texts:
            ids = tokenizer(t, return_tensors="pt").input_ids.to(model.device)
            model(ids)
            pos = max(ids.shape[1] - 2, 0)
            rows.append(store[point][0, pos].float().cpu().numpy())
    model.train(was_training)
    return np.stack(rows)


def track(model, tokenizer, texts: Sequence[str], layer: int) -> np.ndarray:
    """MLP post-activation of block ``layer`` at each text's second-to-last token: ``[n_texts, n_neurons]``."""
    return second_to_last(model, tokenizer, texts, f"blocks.{layer}.mlp.hook_post")


def sensitivity(checkpoints: Sequence[np.ndarray], variability: str = "checkpoints") -> np.ndarray:
    """score_j = NetChange_j x Var_j from activations ``[n_texts, n_neurons]`` at >= 2 checkpoints.

    NetChange_j: mean over texts of |h_j(last) - h_j(first)|. Var_j: "checkpoints" = mean over texts of
    the variance over checkpoints (paper); "examples" = variance over texts at the last checkpoint
    (authors' code)."""
    if len(checkpoints) < 2:
        raise ValueError("sensitivity needs activations at >= 2 checkpoints.")
    h = np.stack(checkpoints)  # [T, n, N]
    net = np.abs(h[-1] - h[0]).mean(axis=0)
    if variability == "checkpoints":
        var = h.var(axis=0).mean(axis=0)
    elif variability == "examples":
        var = h[-1].var(axis=0)
    else:
        raise ValueError(f"variability must be 'checkpoints' or 'examples'; got {variability!r}.")
    return net * var


def top_fraction(scores: np.ndarray, fraction: float) -> list[int]:
    """Indices of the top ``fraction`` of ``scores`` (at least one), highest first."""
    k = max(1, int(round(fraction * len(scores))))
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]
