"""The dictionary-learner contract, checked on a probe batch when a learner is created.

A learner whose ``encode`` / ``decode`` return the wrong shape or dtype would otherwise
train to the end and fail deep inside evaluation with a raw torch error. The probe runs
without gradients, in eval mode, and with the global RNG state restored afterwards, so
it changes nothing about the training that follows.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError


class LearnerContractError(HarnessError):
    """A dictionary learner does not keep its contract (shapes, dtypes, attributes)."""


PROBE_ROWS = 4


def check_learner(learner: Any, d_in: int, name: str) -> None:
    """Raise :class:`LearnerContractError` unless ``learner`` maps [n, d_in] -> [n, d_sae] -> [n, d_in]."""
    import torch

    where = f'Dictionary learner "{name}"'
    params = list(learner.parameters()) if isinstance(learner, torch.nn.Module) else []
    if not params:
        raise LearnerContractError(f"{where}: create() must return a torch.nn.Module with parameters "
                                   f"(got {type(learner).__name__}).")
    d_sae = getattr(learner, "d_sae", None)
    if not isinstance(d_sae, int) or d_sae < 1:
        raise LearnerContractError(f"{where}: the learner needs an integer attribute d_sae >= 1 (got {d_sae!r}).")
    for attr, shape in (("W_enc", (d_in, d_sae)), ("W_dec", (d_sae, d_in))):
        w = getattr(learner, attr, None)
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != shape:
            got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            raise LearnerContractError(f"{where}: {attr} must be a tensor of shape {shape} (SAELens layout); "
                                       f"got {got}.")
    device, dtype = params[0].device, params[0].dtype
    was_training = learner.training
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            learner.eval()
            x = torch.randn(PROBE_ROWS, d_in, generator=torch.Generator().manual_seed(0)).to(device, dtype)
            f = learner.encode(x)
            _expect(where, "encode", f, (PROBE_ROWS, d_sae), f"x of shape [{PROBE_ROWS}, {d_in}]")
            x_hat = learner.decode(f)
            _expect(where, "decode", x_hat, (PROBE_ROWS, d_in), f"latents of shape [{PROBE_ROWS}, {d_sae}]")
    except LearnerContractError:
        raise
    except Exception as e:  # noqa: BLE001 - a crash on the probe batch is a contract failure, named
        raise LearnerContractError(f"{where} fails on a probe batch of shape [{PROBE_ROWS}, {d_in}]: "
                                   f"{type(e).__name__}: {e}") from e
    finally:
        learner.train(was_training)


def _expect(where: str, fn: str, out: Any, shape: tuple[int, int], given: str) -> None:
    import torch

    if not isinstance(out, torch.Tensor):
        raise LearnerContractError(f"{where}: {fn}({given}) must return a tensor, got {type(out).__name__}.")
    if tuple(out.shape) != shape:
        raise LearnerContractError(f"{where}: {fn}({given}) returned shape {list(out.shape)}; expected "
                                   f"{list(shape)}.")
    if not out.dtype.is_floating_point:
        raise LearnerContractError(f"{where}: {fn}({given}) returned dtype {out.dtype}; expected a floating dtype.")
