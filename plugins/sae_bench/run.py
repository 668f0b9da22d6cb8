"""One cell of the ``sae`` suite: harvest, train (shared trainer), evaluate on held-out text."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from harness.results import MetricValue, SuiteOutput

from .evaluate import evaluate_sae
from .probing import pooled_features, probe


def world_texts(start: int):
    """Texts of the embedded world's document stream from document ``start`` on."""
    from harness.zoo import World

    for doc in World(seed=0).documents(start=start):
        yield doc.text


def harvest_tokens(loaded: Any, hook_point: str, start_doc: int, n_tokens: int, ctx: int, batch_size: int) -> torch.Tensor:
    """[n_tokens, d] activations (BOS/EOS separators and padding excluded), float32 on CPU."""
    from harness.models import harvest_flat

    chunks, seen = [], 0
    with torch.no_grad():
        for chunk in harvest_flat(
            loaded, hook_point, world_texts(start_doc), batch_size=batch_size, context_length=ctx, out_dtype=torch.float32
        ):
            chunks.append(chunk.cpu())
            seen += chunk.shape[0]
            if seen >= n_tokens:
                break
    return torch.cat(chunks)[:n_tokens]


def eval_batches(loaded: Any, start_doc: int, n_tokens: int, ctx: int, batch_size: int):
    from harness.models import iter_token_batches

    seen = 0
    for batch in iter_token_batches(
        world_texts(start_doc), tokenizer=loaded.require_tokenizer(), batch_size=batch_size, context_length=ctx
    ):
        yield batch
        seen += int(batch.attention_mask.sum())
        if seen >= n_tokens:
            return


def density_histogram(path: Any, density: torch.Tensor, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = density.numpy()
    alive = d[d > 0]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if alive.size:
        ax.hist(np.log10(alive), bins=50, color="tab:blue")
    for t in (0.01, 0.1):
        ax.axvline(np.log10(t), color="tab:red", ls="--", lw=1)
    ax.set_xlabel("log10 feature density (fraction of tokens a latent fires on)")
    ax.set_ylabel("latents")
    ax.set_title(f"{label}: {int((d == 0).sum())} of {d.size} latents dead")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_cell(suite: Any, cell: Any) -> SuiteOutput:
    cfg = suite.config
    seed = int(cell.seed)
    spec = cell.method
    if spec is None:  # the suite declares include_baseline = False
        raise ValueError("the sae suite needs a dictionary learner for every row")
    timings: dict[str, float] = {}
    metrics: list[MetricValue] = []
    artifacts: dict[str, str] = {}

    t0 = time.perf_counter()
    loaded = cell.load_model()
    loaded.model.eval()
    hook = cfg.hook_point
    torch.manual_seed(seed)
    train_acts = harvest_tokens(loaded, hook, cfg.train_start_doc, cfg.train_tokens, cfg.context_length, cfg.model_batch_size)
    timings["harvest"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    from harness.sae import train_sae

    sae, log = train_sae(
        spec.cls, spec.config, train_acts, tokens=cfg.train_tokens * cfg.epochs, batch_size=cfg.batch_size,
        seed=seed, device=str(cell.device), progress=False, normalize_activations=cfg.normalize_activations,
    )  # fmt: skip
    sae.eval()
    del train_acts
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    bos = loaded.require_tokenizer().bos_token_id
    recon, splice = evaluate_sae(
        loaded, sae, hook, eval_batches(loaded, cfg.eval_start_doc, cfg.eval_tokens, cfg.context_length, cfg.model_batch_size),
        bos_token_id=bos,
    )  # fmt: skip
    timings["evaluate"] = time.perf_counter() - t0
    n = recon["n_tokens"]
    density = recon["density"]
    for name, key in (
        ("sae_l0", "l0"), ("sae_mse", "mse"), ("sae_explained_variance", "explained_variance"),
        ("sae_explained_variance_saebench", "explained_variance_saebench"), ("sae_cossim", "cossim"),
        ("sae_l2_ratio", "l2_ratio"),
    ):  # fmt: skip
        metrics.append(cell.metric(name).compute({"value": recon[key], "n": n}))
    metrics.append(
        cell.metric("sae_ce_loss_recovered").compute(
            {"clean": splice.ce_clean, "with_sae": splice.ce_sae, "ablated": splice.ce_zero, "n": splice.n_predictions}
        )
    )
    metrics.append(
        cell.metric("sae_kl_score").compute({"with_sae": splice.kl_sae, "ablated": splice.kl_zero, "n": splice.n_predictions})
    )
    metrics.append(cell.metric("sae_alive_fraction").compute({"density": density}))
    dense = cell.metric("sae_dense_fraction")
    for thr in (0.01, 0.1):
        metrics.append(dense.compute({"density": density, "threshold": thr}))
    path, rel = cell.artifact_ref("feature_density.png")
    density_histogram(path, density, spec.name)
    artifacts["feature_density"] = rel

    probing: dict[str, Any] = {}
    if cfg.probing:
        t0 = time.perf_counter()
        from harness.zoo import World

        world = World(seed=0)
        sp = cell.metric("sae_sparse_probing")
        for kind in cfg.probe_class_sets:
            tr = world.probing_examples(cfg.probe_train_examples, kind=kind, split="balanced", seed=1000 + seed)
            te = world.probing_examples(cfg.probe_test_examples, kind=kind, split="balanced", seed=2000 + seed)
            r_tr, f_tr = pooled_features(loaded, sae, hook, [e.text for e in tr])
            r_te, f_te = pooled_features(loaded, sae, hook, [e.text for e in te])
            y_tr = np.array([e.label for e in tr])
            y_te = np.array([e.label for e in te])
            scores = {f"k{k}": probe(f_tr, y_tr, f_te, y_te, k=k, seed=seed) for k in cfg.probe_k}
            scores["residual"] = probe(r_tr, y_tr, r_te, y_te, k=None, seed=seed)
            for name, s in scores.items():
                metrics.append(sp.compute({"score": s, "key": f"{kind}/{name}"}))
            probing[kind] = {name: round(s.accuracy, 4) for name, s in scores.items()}
        timings["probing"] = time.perf_counter() - t0

    details = {
        "hook_point": hook,
        "d_in": int(loaded.d_model),
        "d_sae": int(density.numel()),
        "train_tokens": cfg.train_tokens,
        "eval_tokens": n,
        "ce": {"clean": splice.ce_clean, "with_sae": splice.ce_sae, "zero_ablation": splice.ce_zero},
        "kl": {"with_sae": splice.kl_sae, "zero_ablation": splice.kl_zero},
        "train_final": {k: round(float(v), 5) for k, v in log.final.items() if isinstance(v, (int, float))},
        "probing": probing,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    return SuiteOutput(metrics=metrics, artifacts=artifacts, details=details)
