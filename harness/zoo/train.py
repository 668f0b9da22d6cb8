"""Train one GPTNeoX model of the zoo on a fixed token stream (deterministic, resumable).

Every size sees the identical token order: the stream is the world's documents, each
preceded by ``<|endoftext|>``, packed into ``ctx + 1``-token rows; step ``s`` uses rows
``[s * batch, (s + 1) * batch)``. Intermediate checkpoints are written as Pythia-style
revisions ``step{N}`` and the final one as ``main``, in float16 safetensors with
``dtype: float32`` in config.json so ``from_pretrained`` upcasts on load.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class ModelSize:
    """Shape and learning rate of one zoo model."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    lr: float

    def config(self, vocab_size: int, ctx: int) -> Any:
        """The ``transformers.GPTNeoXConfig`` (Pythia conventions: rotary 0.25, parallel residual)."""
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(
            vocab_size=vocab_size,
            hidden_size=self.d_model,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            intermediate_size=4 * self.d_model,
            max_position_embeddings=max(256, ctx),
            rotary_pct=0.25,
            use_parallel_residual=True,
            tie_word_embeddings=False,
            hidden_dropout=0.0,
            attention_dropout=0.0,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=1,
        )


#: The default suite, smallest first.
SIZES: dict[str, ModelSize] = {
    s.name: s
    for s in (
        ModelSize("zoo-32", 32, 2, 2, 3e-3),
        ModelSize("zoo-64", 64, 2, 4, 3e-3),
        ModelSize("zoo-96", 96, 3, 3, 2.5e-3),
        ModelSize("zoo-160", 160, 3, 5, 2e-3),
    )
}
#: A seconds-long suite for tests.
TINY_SIZES: dict[str, ModelSize] = {
    s.name: s for s in (ModelSize("tiny-16", 16, 1, 2, 3e-3), ModelSize("tiny-32", 32, 1, 2, 3e-3))
}


@dataclass(frozen=True)
class ZooTrainConfig:
    """Optimisation settings shared by all sizes of one build."""

    ctx: int = 128
    batch: int = 32
    seed: int = 0
    warmup_steps: int = 100
    min_lr_frac: float = 0.1
    weight_decay: float = 0.01
    revisions: tuple[float, ...] = (0.125, 0.5)
    state_every: int = 100


def pack_rows(tokens: np.ndarray, ctx: int) -> np.ndarray:
    """Reshape a flat stream into overlapping-by-one rows of ``ctx + 1`` tokens."""
    import numpy as np

    n = (len(tokens) - 1) // ctx
    idx = np.arange(ctx + 1)[None, :] + ctx * np.arange(n)[:, None]
    return tokens[idx]


def lr_at(step: int, total: int, cfg: ZooTrainConfig, peak: float) -> float:
    """Linear warm-up then cosine decay to ``min_lr_frac * peak``."""
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return peak * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def revision_steps(total: int, cfg: ZooTrainConfig) -> list[int]:
    """Steps (1-based counts of optimizer steps taken) saved as ``step{N}`` revisions."""
    return sorted({max(1, int(total * f)) for f in cfg.revisions if int(total * f) < total})


def save_revision(model: torch.nn.Module, tokenizer: Any, folder: Path, meta: dict[str, Any]) -> None:
    """Write a float16 safetensors checkpoint + tokenizer + ``zoo_meta.json`` into ``folder``."""
    import copy

    from harness.zoo.tokenizer import save_tokenizer

    tmp = folder.with_name(folder.name + ".tmp")
    half = copy.deepcopy(model).half()
    half.save_pretrained(str(tmp), safe_serialization=True)
    cfg = json.loads((tmp / "config.json").read_text())
    cfg["dtype"] = cfg["torch_dtype"] = "float32"  # weights are fp16 on disk; load as fp32
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    gen = tmp / "generation_config.json"
    if gen.exists():
        gen.unlink()
    save_tokenizer(tokenizer, tmp)
    (tmp / "zoo_meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)


def train_model(
    size: ModelSize,
    rows: np.ndarray,
    tokenizer: Any,
    out_dir: Path,
    state_dir: Path,
    cfg: ZooTrainConfig,
    progress: bool = True,
    resume: bool = True,
) -> dict[str, Any]:
    """Train ``size`` on ``rows`` (``[n, ctx + 1]`` int array); returns a summary dict.

    Writes ``out_dir/<name>/{step*,main}``; training state (fp32 weights + optimizer) lives in
    ``state_dir/<name>.pt`` every ``cfg.state_every`` steps and is deleted when done.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import GPTNeoXForCausalLM

    total = len(rows) // cfg.batch
    if total < 1:
        raise ValueError(f"{size.name}: {len(rows)} rows is less than one batch of {cfg.batch}")
    model_dir = out_dir / size.name
    state_path = state_dir / f"{size.name}.pt"
    torch.manual_seed(cfg.seed)
    model = GPTNeoXForCausalLM(size.config(len(tokenizer), cfg.ctx))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=size.lr, betas=(0.9, 0.95), eps=1e-8,
    )
    start, wall_before, losses = 0, 0.0, []
    if resume and state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        start, wall_before, losses = st["step"], st["wall"], st["losses"]
    saves = revision_steps(total, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    model.train()
    t0 = time.time()
    bar = tqdm(total=total, initial=start, desc=size.name, disable=not progress, unit="step")
    for step in range(start, total):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, cfg, size.lr)
        batch = torch.from_numpy(rows[step * cfg.batch : (step + 1) * cfg.batch].astype("int64"))
        logits = model(input_ids=batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(round(loss.item(), 4))
        done = step + 1
        bar.update(1)
        if done % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / 20:.3f}")
        meta = {"model": size.name, "step": done, "tokens_seen": done * cfg.batch * cfg.ctx, "params": n_params}
        if done in saves:
            save_revision(model, tokenizer, model_dir / f"step{done}", meta | {"revision": f"step{done}"})
        if done % cfg.state_every == 0 and done < total:
            state_dir.mkdir(parents=True, exist_ok=True)
            wall = wall_before + time.time() - t0
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": done, "wall": wall, "losses": losses}, state_path)
    bar.close()
    wall = wall_before + time.time() - t0
    summary = {
        "model": size.name,
        "shape": asdict(size),
        "params": n_params,
        "steps": total,
        "tokens_seen": total * cfg.batch * cfg.ctx,
        "revisions": [f"step{s}" for s in saves] + ["main"],
        "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
        "loss_curve": losses[:: max(1, len(losses) // 50)],
        "train_wall_s": round(wall, 1),
    }
    save_revision(model, tokenizer, model_dir / "main", {"model": size.name, "step": total, "tokens_seen": summary["tokens_seen"], "params": n_params, "revision": "main"})
    if state_path.exists():
        state_path.unlink()
    return summary
