"""The shared SAE trainer: one loop for every dictionary learner.

:func:`train_sae` trains a learner on activations (an in-memory ``[n, d_in]`` tensor, an
:class:`~harness.models.ActivationBuffer`, or any iterable of ``[*, d_in]`` chunks) with
Adam, linear warm-up and linear/cosine decay, the unit-norm decoder constraint (parallel
gradient component removed, rows renormalised), gradient clipping, dead-latent tracking,
bf16 autocast (on by default on cuda), checkpoints with exact resume, and a tqdm bar
showing L0, explained variance and the dead fraction. Same seed, same data -> same SAE.

Checkpoints (``checkpoint_dir/step_00001000/``): ``model.safetensors`` (parameters and
buffers), ``optimizer.safetensors`` (Adam moments) and ``state.json`` (step, configs, log,
input scale). A run restarted with the same ``checkpoint_dir`` resumes from the latest one;
the result is identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.config import validate_config
from harness.errors import HarnessError
from harness.sae.config import SAETrainConfig


@dataclass
class TrainLog:
    """What a training run reports: one record per ``log_every`` steps plus totals."""

    records: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    input_scale: float | None = None
    resumed_from: int | None = None

    @property
    def final(self) -> dict[str, float]:
        return self.records[-1] if self.records else {}

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tokens_per_s": self.tokens_per_s}


# --------------------------------------------------------------------------- data
class _MemoryBatches:
    """Batches from an in-memory tensor: epoch e is a permutation seeded by (seed, e)."""

    def __init__(self, data: torch.Tensor, batch_size: int, seed: int) -> None:
        if data.ndim != 2:
            raise ValueError(f"In-memory activations must be [n, d_in], got shape {tuple(data.shape)}.")
        if data.shape[0] < batch_size:
            raise ValueError(f"batch_size={batch_size} exceeds the {data.shape[0]} activations given.")
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.per_epoch = data.shape[0] // batch_size
        self._epoch, self._perm = -1, None

    def batch(self, step: int) -> torch.Tensor:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.data.shape[0], generator=gen)
        rows = self._perm[j * self.batch_size : (j + 1) * self.batch_size].to(self.data.device)
        return self.data.index_select(0, rows)


class TrainingDiverged(HarnessError):
    """The training loss became NaN or infinite; the cell stops with this reason."""


class ActivationsExhausted(HarnessError, ValueError):
    """The activation source ended before the requested steps (too little text for the budget).

    ``found``: activations (tokens at the hook point) the source gave in all; ``needed``:
    what the requested steps take (``steps * batch_size``); ``step``: where it ran out."""

    def __init__(self, message: str, *, found: int, needed: int, step: int, steps: int, batch_size: int) -> None:
        super().__init__(message)
        self.found, self.needed, self.step, self.steps, self.batch_size = found, needed, step, steps, batch_size


def _rebatch(source: Iterable[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Exact ``[batch_size, d]`` batches from chunks of any length (a short tail is dropped)."""
    pending: list[torch.Tensor] = []
    have = 0
    for chunk in source:
        chunk = chunk.reshape(-1, chunk.shape[-1])
        if chunk.shape[0] == batch_size and not pending:
            yield chunk
            continue
        pending.append(chunk)
        have += chunk.shape[0]
        while have >= batch_size:
            cat = torch.cat(pending)
            yield cat[:batch_size]
            rest = cat[batch_size:]
            pending, have = ([rest] if rest.shape[0] else []), rest.shape[0]


class _StreamBatches:
    def __init__(self, source: Iterable[torch.Tensor], batch_size: int, start: int, steps: int) -> None:
        self.batch_size, self.steps, self.found = batch_size, steps, 0
        self.it = _rebatch(self._counted(source), batch_size)
        for step in range(start):  # resume: skip what the interrupted run consumed
            self.batch(step)

    def _counted(self, source: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        for chunk in source:
            self.found += chunk.reshape(-1, chunk.shape[-1]).shape[0]
            yield chunk

    def batch(self, step: int) -> torch.Tensor:
        try:
            return next(self.it)
        except StopIteration:
            needed = self.steps * self.batch_size
            raise ActivationsExhausted(
                f"The activation source ran out at step {step} of {self.steps}: it gave {self.found} activations "
                f"(tokens), and {self.steps} steps x batch {self.batch_size} need {needed}. Fix: give more text, or "
                f"fewer tokens or steps (harness train-sae: a longer --text-file, or --tokens {self.found} or less).",
                found=self.found, needed=needed, step=step, steps=self.steps, batch_size=self.batch_size,
            ) from None


def activations_from_model(
    model: Any,
    hook_point: str,
    token_source: Any,
    *,
    batch_size: int = 4096,
    buffer_size: int | None = None,
    seed: int = 0,
    context_length: int = 128,
    model_batch_size: int = 32,
    **harvest_kwargs: Any,
) -> Any:
    """A shuffling :class:`~harness.models.ActivationBuffer` over ``model`` at ``hook_point``
    (BOS and padding excluded), ready to pass to :func:`train_sae`."""
    from harness.models.buffer import ActivationBuffer

    return ActivationBuffer(
        _Harvest(model, hook_point, token_source, context_length, model_batch_size, harvest_kwargs),
        buffer_size=buffer_size or 8 * batch_size, batch_size=batch_size, seed=seed,
    )


class _Harvest:
    """Re-iterable harvest_flat (model batch size and activation batch size are different knobs)."""

    def __init__(self, model: Any, point: str, source: Any, ctx: int, model_bs: int, kw: dict[str, Any]) -> None:
        self.args = (model, point, source)
        self.kw = dict(kw, context_length=ctx, batch_size=model_bs, out_dtype=torch.float32)
        #: activations (tokens at the hook point) harvested by the latest iteration
        self.rows = 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        from harness.models.harvest import harvest_flat

        it = harvest_flat(*self.args, **self.kw)
        self.rows = 0
        while True:  # no_grad only around the model call: a suspended generator would leak it
            with torch.no_grad():
                chunk = next(it, None)
            if chunk is None:
                return
            self.rows += chunk.shape[0]
            yield chunk


# --------------------------------------------------------------------------- schedule
def lr_factor(step: int, steps: int, cfg: SAETrainConfig) -> float:
    warm = cfg.warmup_steps if cfg.warmup_steps is not None else min(1000, int(0.05 * steps))
    f = 1.0
    if warm > 0 and step < warm:
        f = (step + 1) / warm
    start = int(cfg.decay_start * steps)
    if cfg.decay != "none" and step >= start and steps > start:
        t = (step - start) / (steps - start)
        f *= (1 - t) if cfg.decay == "linear" else 0.5 * (1 + math.cos(math.pi * t))
    return f


# --------------------------------------------------------------------------- checkpoints
def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors = {f"{pid}.{key}": t.detach().cpu().contiguous() for pid, st in sd["state"].items()
               for key, t in st.items() if isinstance(t, torch.Tensor)}
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = t
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _latest_checkpoint(directory: Path) -> Path | None:
    done = sorted(p for p in directory.glob("step_*") if (p / "state.json").is_file())
    return done[-1] if done else None


def _save_checkpoint(directory: Path, step: int, sae: Any, opt: Any, state: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    final = directory / f"step_{step:08d}"
    tmp = directory / f".tmp_step_{step:08d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in sae.state_dict().items()}, str(tmp / "model.safetensors"))
    tensors, meta = _optimizer_tensors(opt)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps(state | {"optimizer": meta}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


# --------------------------------------------------------------------------- training
def _make_optimizer(params: list[torch.nn.Parameter], lr: float, betas: tuple[float, float]) -> Any:
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - devices without a fused Adam
        return torch.optim.Adam(params, lr=lr, betas=betas)


def optional_hook(sae: Any, name: str, *args: Any) -> Any:
    """Call the learner's optional training hook ``name`` (``init_from_data``, ``normalize_decoder``,
    ``remove_parallel_gradient``, ``after_step``, ``firing_stats``) when it defines one; None otherwise. A
    third-party learner that implements only the DictionaryLearner contract trains without them."""
    fn = getattr(sae, name, None)
    return fn(*args) if callable(fn) else None


def learner_lr(sae: Any) -> float:
    """The learner's learning rate: its config's ``lr``, else its ``default_lr()``."""
    lr = getattr(getattr(sae, "config", None), "lr", None)
    if lr:
        return float(lr)
    if callable(getattr(sae, "default_lr", None)):
        return float(sae.default_lr())
    raise TypeError(f"learner {getattr(sae, 'name', type(sae).__name__)!r} has no learning rate. Fix: give its config "
                    "an `lr` field (set it), or define default_lr().")


class TrainStep:
    """One optimiser step of the shared loop (also used by benchmarks/sae_training.py):
    loss under autocast, backward, parallel-gradient removal, clipping, scheduled Adam step,
    decoder renormalisation, the learner's ``after_step``."""

    def __init__(self, sae: Any, cfg: SAETrainConfig, total_steps: int, device: torch.device) -> None:
        self.sae, self.cfg, self.total_steps = sae, cfg, total_steps
        self.params = [p for p in sae.parameters() if p.requires_grad]
        self.lr = learner_lr(sae)
        self.optimizer = _make_optimizer(self.params, self.lr, cfg.adam_betas)
        use_amp = cfg.autocast == "bf16" or (cfg.autocast == "auto" and device.type == "cuda")
        self.amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_amp else nullcontext

    def __call__(self, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        sae, cfg, opt = self.sae, self.cfg, self.optimizer
        with self.amp():
            loss, logs = sae.loss(x, step, self.total_steps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        optional_hook(sae, "remove_parallel_gradient")
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip, foreach=True)
        f = lr_factor(step, self.total_steps, cfg)
        for group in opt.param_groups:
            group["lr"] = self.lr * f
        opt.step()
        optional_hook(sae, "normalize_decoder")
        optional_hook(sae, "after_step", step, self.total_steps)
        return loss, logs


def _resolve_learner(learner: Any, d_in: int, config: Any, seed: int) -> Any:
    if isinstance(learner, torch.nn.Module):
        return learner
    if isinstance(learner, str):
        from harness.plugins import get_registries

        learner = get_registries()["dictionary_learner"].get(learner)
    from harness.protocols import LearnerSpec

    return LearnerSpec(learner, learner.parse_config(config)).create(d_in, seed=seed)  # contract-checked


def train_sae(
    learner: Any,
    config: Any = None,
    activations: Any = None,
    *,
    train: SAETrainConfig | Mapping[str, Any] | None = None,
    d_in: int | None = None,
    checkpoint_dir: str | Path | None = None,
    metadata: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> tuple[Any, TrainLog]:
    """Train a dictionary learner; returns ``(sae, log)``.

    ``learner``: a registered learner class (or its name, or an already built SAE to keep
    training); ``config``: its Config (or a dict). ``activations``: ``[n, d_in]`` tensor,
    an :class:`~harness.models.ActivationBuffer` (see :func:`activations_from_model`) or any
    iterable of ``[*, d_in]`` chunks. ``train`` and keyword ``overrides`` (steps, tokens,
    batch_size, seed, device, autocast, ...) form the :class:`SAETrainConfig`.
    """
    from harness.models.loading import resolve_device

    data = dict(train.model_dump() if isinstance(train, SAETrainConfig) else (train or {}))
    data.update({k: v for k, v in overrides.items() if v is not None})
    cfg = validate_config(SAETrainConfig, data, where="train_sae options")
    if cfg.steps is None and cfg.tokens is None and not isinstance(activations, torch.Tensor):
        raise ValueError("train_sae needs steps= or tokens= (or an in-memory tensor, trained for one epoch).")
    steps = cfg.steps or (math.ceil(cfg.tokens / cfg.batch_size) if cfg.tokens else activations.shape[0] // cfg.batch_size)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    resume = _latest_checkpoint(ckpt_dir) if ckpt_dir is not None and ckpt_dir.is_dir() else None
    if isinstance(activations, torch.Tensor):
        d = activations.shape[-1]
    elif d_in is not None:
        d = d_in
    else:
        d = None
    start, log, scale = 0, TrainLog(), None
    state: dict[str, Any] = {}
    if resume is not None:
        state = json.loads((resume / "state.json").read_text())
        start, scale, d = int(state["step"]), state.get("input_scale"), int(state["d_in"])
        log = TrainLog(records=state["records"], resumed_from=start, input_scale=scale)

    if isinstance(activations, torch.Tensor):
        batches: Any = _MemoryBatches(activations, cfg.batch_size, cfg.seed)
    else:
        batches = _StreamBatches(activations, cfg.batch_size, start, steps)
    first = batches.batch(start) if d is None or resume is None else None
    if d is None:
        d = first.shape[-1]
    sae = _resolve_learner(learner, d, config, cfg.seed).to(device)
    if metadata:
        sae.metadata.update(metadata)
    step_fn = TrainStep(sae, cfg, steps, device)
    opt, lr = step_fn.optimizer, step_fn.lr

    if resume is not None:
        from safetensors.torch import load_file

        sae.load_state_dict(load_file(str(resume / "model.safetensors"), device=str(device)))
        _load_optimizer(opt, load_file(str(resume / "optimizer.safetensors"), device=str(device)), state["optimizer"])
    else:
        x0 = first.to(device).float()
        if cfg.normalize_activations == "expected_average_only_in":
            scale = float(math.sqrt(d) / x0.norm(dim=-1).mean())
            x0 = x0 * scale
        log.input_scale = scale
        optional_hook(sae, "init_from_data", x0)
        optional_hook(sae, "normalize_decoder")

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, disable=not cfg.progress, unit="step", desc=f"train {sae.name}")
    acc: dict[str, torch.Tensor] = {}
    acc_n = 0
    sae.train()
    t0 = time.perf_counter()
    for step in range(start, steps):
        if first is not None and step == start:
            x, first = first, None
        else:
            x = batches.batch(step)
        x = x.to(device, non_blocking=True).float()
        if scale is not None:
            x = x * scale
        loss, logs = step_fn(x, step)
        logs["loss"] = loss.detach()
        for k, v in logs.items():
            acc[k] = acc[k] + v if k in acc else torch.as_tensor(v, dtype=torch.float32, device=device).clone()
        acc_n += 1
        bar.update(1)
        last = step + 1 == steps
        if (step + 1) % cfg.log_every == 0 or last:
            rec = {k: float(v) / acc_n for k, v in acc.items() if k not in ("sse", "sst")}
            if "sse" in acc:
                rec["explained_variance"] = 1.0 - float(acc["sse"]) / max(float(acc["sst"]), 1e-30)
            if not math.isfinite(rec["loss"]):  # checked at log points only: no GPU sync per step
                raise TrainingDiverged(
                    f"Training {sae.name} diverged: the loss is {rec['loss']} at step {step + 1} of {steps} "
                    f"(lr {lr:g}). Lower the lr, keep grad_clip on, or normalise the activations."
                )
            rec |= {"step": step + 1, "lr": lr * lr_factor(step, steps, cfg)} | (optional_hook(sae, "firing_stats") or {})
            log.records.append(rec)
            acc, acc_n = {}, 0
            bar.set_postfix(l0=f"{rec.get('l0', float('nan')):.1f}", ev=f"{rec.get('explained_variance', float('nan')):.3f}",
                            dead=f"{rec.get('dead_fraction', float('nan')):.3f}", refresh=False)
        if ckpt_dir is not None and ((cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0) or last):
            _save_checkpoint(ckpt_dir, step + 1, sae, opt, {
                "step": step + 1, "d_in": d, "input_scale": scale, "records": log.records,
                "train": cfg.model_dump(mode="json"), "learner": sae.name,
                "config": sae.config.model_dump(mode="json"),
            })
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    log.wall_s = time.perf_counter() - t0
    log.steps, log.tokens = steps - start, (steps - start) * cfg.batch_size
    sae.eval()
    if scale is not None:
        if not hasattr(sae, "fold_input_scale"):
            raise TypeError(f"normalize_activations needs {sae.name}.fold_input_scale(scale) to fold the input scale "
                            "into its weights. Fix: train it with normalize_activations='none', or define the method.")
        sae.fold_input_scale(scale)
    return sae, log
