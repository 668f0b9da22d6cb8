"""One cell of the ``sae`` suite: harvest, train (shared trainer), evaluate on held-out text."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from harness.metric_inputs import SAEInputs
from harness.metric_selection import extra_metric_names, keep
from harness.results import MetricValue, SuiteOutput

from .capability import capability_values
from .core import bootstrap_stderr, recovered_score
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


def train(spec_cls: Any, config: Any, acts: torch.Tensor, cfg: Any, seed: int, device: str) -> tuple[Any, Any]:
    from harness.sae import train_sae

    sae, log = train_sae(
        spec_cls, config, acts, tokens=cfg.budget("train_tokens") * cfg.budget("epochs"), batch_size=cfg.batch_size,
        seed=seed, device=device, progress=False, normalize_activations=cfg.normalize_activations,
    )  # fmt: skip
    sae.eval()
    return sae, log


def held_out_batches(loaded: Any, cfg: Any) -> list[Any]:
    """The held-out token batches every evaluation of a cell reads (the same for every SAE)."""
    return list(eval_batches(loaded, cfg.eval_start_doc, cfg.budget("eval_tokens"), cfg.context_length, cfg.model_batch_size))


def evaluate(loaded: Any, sae: Any, cfg: Any, batches: list[Any] | None = None) -> tuple[dict[str, Any], Any]:
    bos = loaded.require_tokenizer().bos_token_id
    batches = held_out_batches(loaded, cfg) if batches is None else batches
    return evaluate_sae(loaded, sae, cfg.hook_point, batches, bos_token_id=bos)


def sae_inputs(cell: Any, loaded: Any, sae: Any, cfg: Any, recon: dict[str, Any], batches: list[Any]) -> SAEInputs:
    """What an sae-scope metric receives in this suite: the trained learner, the held-out activations
    the reconstruction metrics used (``recon["activations"]``), the model, hook point and batches."""
    return SAEInputs(sae=sae, activations=recon["activations"], model=loaded, hook_point=cfg.hook_point,
                     token_batches=tuple(batches), seed=int(cell.seed), device=str(cell.device))


#: Metrics of the suite computed from :class:`SAEInputs` through ``cell.compute_metrics`` (the rest it reports).
COMPUTED = ("sae_alive_fraction", "sae_dense_fraction")


def load_pretrained(spec: Any, loaded: Any, cfg: Any, seed: int, device: str) -> Any:
    """The row's saved SAE (a learner with ``pretrained = True``, e.g. ``pretrained_sae``): created through
    the learner contract at the width of ``cfg.hook_point``, read off one harvested context."""
    width = int(harvest_tokens(loaded, cfg.hook_point, cfg.eval_start_doc, 1, cfg.context_length, 1).shape[-1])
    sae = spec.create(width, seed=seed)
    return sae.to(device).eval()


def sweep(spec: Any, acts: torch.Tensor, loaded: Any, cfg: Any, seed: int, device: str) -> dict[str, Any]:
    """Retrain the row's learner at every ``sweep_values`` of ``sweep_field`` (same activations, same
    budget) and record its L0 / explained variance / CE-loss recovered: the Pareto curve's points."""
    values = cfg.budget("sweep_values")
    fields = type(spec.config).model_fields
    if not values:
        return {}
    if cfg.sweep_field not in fields:
        return {"field": cfg.sweep_field, "skipped": f"learner {spec.name!r} has no config field {cfg.sweep_field!r}"}
    points = []
    for v in values:
        conf = type(spec.config).model_validate({**spec.config.model_dump(), cfg.sweep_field: v})
        sae, _ = train(spec.cls, conf, acts, cfg, seed, device)
        recon, splice = evaluate(loaded, sae, cfg)
        points.append({
            "value": getattr(conf, cfg.sweep_field), "l0": recon["l0"], "explained_variance": recon["explained_variance"],
            "ce_loss_recovered": recovered_score(splice.ce_clean, splice.ce_sae, splice.ce_zero),
        })  # fmt: skip
    return {"field": cfg.sweep_field, "points": points}


def run_cell(suite: Any, cell: Any) -> SuiteOutput:
    cfg = suite.config
    seed = int(cell.seed)
    spec = cell.method
    if spec is None:  # the suite declares include_baseline = False
        raise ValueError("the sae suite needs a dictionary learner for every row")
    timings: dict[str, float] = {}
    metrics: list[MetricValue] = []
    artifacts: dict[str, str] = {}
    device = str(cell.device)

    t0 = time.perf_counter()
    loaded = cell.load_model()
    loaded.model.eval()
    hook = cfg.hook_point
    torch.manual_seed(seed)
    pretrained = bool(getattr(spec.cls, "pretrained", False))  # e.g. pretrained_sae: loaded, never trained here
    if pretrained:
        sae, log, train_acts = load_pretrained(spec, loaded, cfg, seed, device), None, None
        timings["load"] = time.perf_counter() - t0
    else:
        train_acts = harvest_tokens(
            loaded, hook, cfg.train_start_doc, cfg.budget("train_tokens"), cfg.context_length, cfg.model_batch_size
        )
        timings["harvest"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        sae, log = train(spec.cls, spec.config, train_acts, cfg, seed, device)
        timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    batches = held_out_batches(loaded, cfg)
    recon, splice = evaluate(loaded, sae, cfg, batches)
    timings["evaluate"] = time.perf_counter() - t0
    n = recon["n_tokens"]
    density = recon["density"]
    per_context = {**(recon["per_context"] or {}), **splice.per_context}
    se = bootstrap_stderr(per_context, cfg.bootstrap, seed) if cfg.bootstrap else {}
    for name, key in (
        ("sae_l0", "l0"), ("sae_mse", "mse"), ("sae_explained_variance", "explained_variance"),
        ("sae_explained_variance_saebench", "explained_variance_saebench"), ("sae_cossim", "cossim"),
        ("sae_l2_ratio", "l2_ratio"),
    ):  # fmt: skip
        metrics.append(cell.metric(name).value(recon[key], n=n, stderr=se.get(key)))
    metrics.append(cell.metric("sae_ce_loss_recovered").report(
        splice.ce_clean, splice.ce_sae, splice.ce_zero, n=splice.n_predictions, stderr=se.get("ce_loss_recovered")
    ))  # fmt: skip
    metrics.append(cell.metric("sae_kl_score").report(
        splice.kl_sae, splice.kl_zero, n=splice.n_predictions, stderr=se.get("kl_score")
    ))  # fmt: skip
    computed = keep(cfg, COMPUTED) + extra_metric_names(cfg, cell.registries)  # a third party's sae metrics too
    metrics += cell.compute_metrics(sae_inputs(cell, loaded, sae, cfg, recon, batches), computed)
    del batches
    path, rel = cell.artifact_ref("feature_density.png")
    density_histogram(path, density, spec.name)
    artifacts["feature_density"] = rel

    t0 = time.perf_counter()
    capability_metrics, capability = capability_values(cell, loaded, sae, cfg)
    metrics += capability_metrics
    timings["capability"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if pretrained:
        sweep_details = {"field": cfg.sweep_field, "skipped": "a pretrained SAE is evaluated as saved, not retrained"}
    else:
        sweep_details = sweep(spec, train_acts, loaded, cfg, seed, device)
    del train_acts
    if sweep_details:
        timings["sweep"] = time.perf_counter() - t0

    probing: dict[str, Any] = {}
    pooled: dict[str, Any] = {}
    if cfg.probing:
        t0 = time.perf_counter()
        from harness.zoo import World

        world = World(seed=0)
        sp = cell.metric("sae_sparse_probing")
        for kind in cfg.probe_class_sets:
            tr = world.probing_examples(cfg.budget("probe_train_examples"), kind=kind, split="balanced", seed=1000 + seed)
            te = world.probing_examples(cfg.budget("probe_test_examples"), kind=kind, split="balanced", seed=2000 + seed)
            r_tr, f_tr = pooled_features(loaded, sae, hook, [e.text for e in tr])
            r_te, f_te = pooled_features(loaded, sae, hook, [e.text for e in te])
            y_tr = np.array([e.label for e in tr])
            y_te = np.array([e.label for e in te])
            pooled[kind] = (f_tr, y_tr, [e.label_name for e in tr])
            scores = {f"k{k}": probe(f_tr, y_tr, f_te, y_te, k=k, seed=seed) for k in cfg.probe_k}
            scores["residual"] = probe(r_tr, y_tr, r_te, y_te, k=None, seed=seed)
            for name, s in scores.items():
                metrics.append(sp.report(s, key=f"{kind}/{name}"))
            probing[kind] = {name: round(s.accuracy, 4) for name, s in scores.items()}
        timings["probing"] = time.perf_counter() - t0

    absorption: dict[str, Any] = {}
    if cfg.absorption:
        t0 = time.perf_counter()
        from .absorption import absorption_scores

        ar = absorption_scores(
            loaded, sae, hook, seed=seed, template=cfg.absorption_template, token_pos=cfg.absorption_token_pos,
            test_fraction=cfg.absorption_test_fraction, min_train_words=cfg.absorption_min_train_words,
            max_k=cfg.absorption_max_k, f1_jump_threshold=cfg.absorption_f1_jump_threshold,
        )  # fmt: skip
        for name in ("sae_absorption_fraction", "sae_absorption_full_rate", "sae_split_features"):
            metrics.append(cell.metric(name).report(ar))
        absorption = ar.details()
        timings["absorption"] = time.perf_counter() - t0

    scr_tpp: dict[str, Any] = {}
    if cfg.scr_tpp:
        t0 = time.perf_counter()
        from .scr_tpp import scr_tpp_scores

        r = scr_tpp_scores(
            loaded, sae, hook, seed=seed, n_values=cfg.scr_tpp_n,
            n_train=cfg.budget("scr_tpp_train_examples"), n_test=cfg.budget("scr_tpp_test_examples"),
        )  # fmt: skip
        for name, vals, errs, n_used in (
            ("sae_scr", r.scr, r.scr_stderr, r.scr_pairs), ("sae_tpp", r.tpp, r.tpp_stderr, r.tpp_classes)
        ):  # fmt: skip
            m = cell.metric(name)
            for k, v in vals.items():
                metrics.append(m.value(v, stderr=errs[k], n=n_used, key=f"top{k}"))
        scr_tpp = r.details
        timings["scr_tpp"] = time.perf_counter() - t0

    tsne: dict[str, Any] = {}
    if cfg.tsne and pooled:
        t0 = time.perf_counter()
        from .latent_map import decoder_map

        path, rel = cell.artifact_ref("decoder_tsne.png")
        tsne = decoder_map(path, sae, density, pooled, title=f"{spec.name} on {cell.model_ref.name}", seed=seed)
        artifacts["decoder_tsne"] = rel
        timings["tsne"] = time.perf_counter() - t0

    details = {
        "hook_point": hook,
        "preset": cfg.preset,
        "d_in": int(loaded.d_model),
        "d_sae": int(density.numel()),
        "train_tokens": None if pretrained else cfg.budget("train_tokens"),
        "eval_tokens": n,
        "eval_contexts": int(next(iter(per_context.values())).shape[0]) if per_context else None,
        "ce": {"clean": splice.ce_clean, "with_sae": splice.ce_sae, "zero_ablation": splice.ce_zero},
        "kl": {"with_sae": splice.kl_sae, "zero_ablation": splice.kl_zero},
        "train_final": {} if log is None else {
            k: round(float(v), 5) for k, v in log.final.items() if isinstance(v, (int, float))
        },
        "probing": probing,
        "sweep": sweep_details,
        "absorption": absorption,
        "scr_tpp": scr_tpp,
        "decoder_map": tsne,
        "capability": capability,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    if pretrained:  # where the SAE came from: format, folder, content hash of its weights
        details["pretrained"] = dict(getattr(sae, "pretrained_source", None) or {})
    return SuiteOutput(metrics=metrics, artifacts=artifacts, details=details)
