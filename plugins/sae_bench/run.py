"""One cell of the ``sae`` suite: harvest, train (shared trainer), evaluate on held-out text."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from harness.datasets import is_world
from harness.errors import HarnessError
from harness.metric_inputs import SAEInputs
from harness.memo import memo, model_key
from harness.metric_selection import extra_metric_names, keep
from harness.results import MetricValue, SuiteOutput

from .capability import capability_values
from .core import bootstrap_stderr, recovered_score
from .evaluate import evaluate_sae
from .probing import pooled_features, probe


def corpus_texts(corpus: Any, start: int, stop: int | None = None) -> Iterator[str]:
    """Documents ``start`` .. ``stop`` (exclusive; None = to the end) of a :class:`~harness.datasets.TextCorpus`
    (None = the embedded world's document stream)."""
    if corpus is None:
        from harness.zoo import World

        texts: Iterator[str] = (doc.text for doc in World(seed=0).documents(start=start))
    else:
        texts = corpus.texts(start)
    return texts if stop is None else itertools.islice(texts, max(0, stop - start))


def text_ranges(cfg: Any) -> tuple[tuple[int, int | None], tuple[int, int | None]]:
    """(start, stop) documents of the training and the held-out text: two disjoint ranges of one stream,
    each running up to the other's start when that comes later (on the world both are far apart)."""
    tr, ev = cfg.train_start_doc, cfg.eval_start_doc
    return (tr, ev if ev > tr else None), (ev, tr if tr > ev else None)


def _range_name(start: int, stop: int | None) -> str:
    return f"documents {start}..{stop - 1}" if stop is not None else f"documents from {start} on"


def harvest_tokens(loaded: Any, hook_point: str, start_doc: int, n_tokens: int, ctx: int, batch_size: int, *,
                   corpus: Any = None, stop_doc: int | None = None) -> torch.Tensor:
    """[n_tokens, d] activations (BOS/EOS separators and padding excluded), float32 on CPU, from documents
    ``start_doc`` .. ``stop_doc`` of ``corpus`` (None = the world); too few tokens there is an error."""
    from harness.models import harvest_flat

    chunks, seen = [], 0
    with torch.no_grad():
        for chunk in harvest_flat(
            loaded, hook_point, corpus_texts(corpus, start_doc, stop_doc), batch_size=batch_size, context_length=ctx,
            out_dtype=torch.float32,
        ):  # fmt: skip
            chunks.append(chunk.cpu())
            seen += chunk.shape[0]
            if seen >= n_tokens:
                break
    if seen < n_tokens:
        raise HarnessError(
            f"corpus: {_range_name(start_doc, stop_doc)} hold {seen} tokens, {n_tokens} are needed (train_tokens). "
            "Fix: lower train_tokens, or give more training text (more documents, or a larger eval_start_doc)."
        )
    return torch.cat(chunks)[:n_tokens]


def eval_batches(loaded: Any, start_doc: int, n_tokens: int, ctx: int, batch_size: int, *, corpus: Any = None,
                 stop_doc: int | None = None):
    """Token batches of documents ``start_doc`` .. ``stop_doc`` of ``corpus`` (None = the world) until
    ``n_tokens`` tokens; fewer there is an error naming eval_tokens."""
    from harness.models import iter_token_batches

    seen = 0
    for batch in iter_token_batches(
        corpus_texts(corpus, start_doc, stop_doc), tokenizer=loaded.require_tokenizer(), batch_size=batch_size,
        context_length=ctx,
    ):  # fmt: skip
        yield batch
        seen += int(batch.attention_mask.sum())
        if seen >= n_tokens:
            return
    raise HarnessError(
        f"corpus: the held-out {_range_name(start_doc, stop_doc)} hold {seen} tokens, {n_tokens} are needed "
        "(eval_tokens). Fix: lower eval_tokens, or set eval_start_doc so that enough documents follow it."
    )


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


def held_out_batches(loaded: Any, cfg: Any, corpus: Any = None) -> list[Any]:
    """The held-out token batches every evaluation of a cell reads (the same for every SAE); ``corpus`` is
    ``cfg.corpus`` opened (None: ``cfg.corpus`` must be the world)."""
    if corpus is None and not is_world(cfg.corpus):
        raise ValueError("held_out_batches: pass the opened corpus (cell.data(cfg.corpus, 'corpus'))")
    _, (start, stop) = text_ranges(cfg)
    return list(eval_batches(loaded, start, cfg.budget("eval_tokens"), cfg.context_length, cfg.model_batch_size,
                             corpus=corpus, stop_doc=stop))


def data_key(cfg: Any) -> str:
    """The corpus field as a memo key (its reference, not its text: the memo lives in one run)."""
    ref = cfg.corpus
    return ref.model_dump_json() if hasattr(ref, "model_dump_json") else repr(ref)


def shared_train_acts(loaded: Any, cfg: Any, corpus: Any) -> torch.Tensor:
    """:func:`harvest_tokens` of the cell's training range, once per (model, hook point, corpus, budget) in
    this process (every row and seed trains on the same activations; trainers do not modify them)."""
    (start, stop), _ = text_ranges(cfg)
    n, ctx, bs = cfg.budget("train_tokens"), cfg.context_length, cfg.model_batch_size
    key = ("sae.train_acts", model_key(loaded), cfg.hook_point, data_key(cfg), start, stop, n, ctx, bs)
    return memo().get(key, lambda: harvest_tokens(loaded, cfg.hook_point, start, n, ctx, bs, corpus=corpus,
                                                  stop_doc=stop))


def shared_reference(loaded: Any, cfg: Any, corpus: Any) -> tuple[list[Any], Any]:
    """The held-out batches and their :func:`~.evaluate.clean_reference`, once per (model, hook point, corpus,
    budget) in this process: every SAE of every row and seed (and each sweep retraining) is scored against it."""
    from .evaluate import clean_reference

    _, (start, stop) = text_ranges(cfg)
    key = ("sae.reference", model_key(loaded), cfg.hook_point, data_key(cfg), start, stop, cfg.budget("eval_tokens"),
           cfg.context_length, cfg.model_batch_size)

    def build() -> tuple[list[Any], Any]:
        batches = held_out_batches(loaded, cfg, corpus)
        bos = loaded.require_tokenizer().bos_token_id
        return batches, clean_reference(loaded, cfg.hook_point, batches, bos_token_id=bos)

    return memo().get(key, build)


def evaluate(loaded: Any, sae: Any, cfg: Any, batches: list[Any] | None = None, corpus: Any = None,
             reference: Any = None) -> tuple[dict[str, Any], Any]:
    """Reconstruction and CE / KL of ``sae`` on the held-out batches: ``batches`` None = the shared ones with
    their shared clean reference; given batches are scored against ``reference`` (None: built for them)."""
    if batches is None:
        batches, reference = shared_reference(loaded, cfg, corpus)
    bos = loaded.require_tokenizer().bos_token_id
    return evaluate_sae(loaded, sae, cfg.hook_point, batches, bos_token_id=bos, reference=reference)


def sae_inputs(cell: Any, loaded: Any, sae: Any, cfg: Any, recon: dict[str, Any], batches: list[Any]) -> SAEInputs:
    """What an sae-scope metric receives in this suite: the trained learner, the held-out activations
    the reconstruction metrics used (``recon["activations"]``), the model, hook point and batches."""
    return SAEInputs(sae=sae, activations=recon["activations"], model=loaded, hook_point=cfg.hook_point,
                     token_batches=tuple(batches), seed=int(cell.seed), device=str(cell.device))


#: Metrics of the suite computed from :class:`SAEInputs` through ``cell.compute_metrics`` (the rest it reports).
COMPUTED = ("sae_alive_fraction", "sae_dense_fraction")


def load_pretrained(spec: Any, loaded: Any, cfg: Any, seed: int, device: str, corpus: Any = None) -> Any:
    """The row's saved SAE (a learner with ``pretrained = True``, e.g. ``pretrained_sae``): created through
    the learner contract at the width of ``cfg.hook_point``, read off one harvested context."""
    _, (start, stop) = text_ranges(cfg)
    width = int(harvest_tokens(loaded, cfg.hook_point, start, 1, cfg.context_length, 1, corpus=corpus,
                               stop_doc=stop).shape[-1])
    sae = spec.create(width, seed=seed)
    return sae.to(device).eval()


def sweep(spec: Any, acts: torch.Tensor, loaded: Any, cfg: Any, seed: int, device: str, corpus: Any = None
          ) -> dict[str, Any]:
    """Retrain the row's learner at every ``sweep_values`` of ``sweep_field`` (same activations, same
    budget) and record its L0 / explained variance / CE-loss recovered: the Pareto curve's points."""
    field, values = cfg.sweep_field, cfg.budget("sweep_values")
    fields = type(spec.config).model_fields
    penalty = getattr(spec.cls, "sparsity_field", None)
    if field not in fields and penalty in fields:  # e.g. gated: retrain at multiples of its l1 coefficient
        field, base = penalty, float(getattr(spec.config, penalty))
        values = [base * f for f in cfg.budget("penalty_factors")]
    if not values:
        return {}
    if field not in fields:
        return {"field": field, "skipped": f"learner {spec.name!r} has no config field {field!r} and declares no "
                                           "sparsity_field"}
    points = []
    for v in values:
        conf = type(spec.config).model_validate({**spec.config.model_dump(), field: v})
        sae, _ = train(spec.cls, conf, acts, cfg, seed, device)
        recon, splice = evaluate(loaded, sae, cfg, corpus=corpus)
        points.append({
            "value": getattr(conf, field), "l0": recon["l0"], "explained_variance": recon["explained_variance"],
            "ce_loss_recovered": recovered_score(splice.ce_clean, splice.ce_sae, splice.ce_zero),
        })  # fmt: skip
    return {"field": field, "points": points}


def matched_values(cell: Any, cfg: Any, recon: dict[str, Any], splice: Any, sweep_details: dict[str, Any]
                   ) -> tuple[list[MetricValue], list[str]]:
    """CE-loss recovered and explained variance at ``cfg.matched_l0`` on the cell's curve (its own point and
    the swept ones, :mod:`.matched`); a level outside the curve gives no values and a note saying why."""
    from .matched import at_l0, coverage_note, curve

    own = {"ce_loss_recovered": recovered_score(splice.ce_clean, splice.ce_sae, splice.ce_zero),
           "explained_variance": float(recon["explained_variance"])}
    points = curve(recon["l0"], own, sweep_details.get("points", []))
    out = []
    for name, score in (("sae_ce_loss_recovered_at_l0", "ce_loss_recovered"),
                        ("sae_explained_variance_at_l0", "explained_variance")):
        v = at_l0(points, score, cfg.matched_l0)
        if v is not None:
            out.append(cell.metric(name).value(v, n=len(points)))
    return out, ([] if out else [coverage_note(points, cfg.matched_l0)])


def open_data(cell: Any, cfg: Any) -> dict[str, Any]:
    """The cell's data by role: ``corpus`` (TextCorpus), ``probe_sets`` (LabelledText, names unique; [] without
    probing) and ``scr_tpp_set`` (LabelledText with a spurious label; None without SCR / TPP)."""
    probe_sets = [cell.data(ref, "labelled") for ref in cfg.probe_refs()] if cfg.probing else []
    names = [p.name for p in probe_sets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise HarnessError(
            f"probe_sets: two sets are named {', '.join(twice)}, so their board keys '<name>/k<k>' would collide. "
            "Fix: list each set once (a local file's name is its file name without the suffix: rename one file)."
        )
    scr_set = cell.data(cfg.scr_tpp_set, "labelled") if cfg.scr_tpp else None
    if scr_set is not None and not scr_set.has_spurious:
        raise HarnessError(
            f"scr_tpp_set: {cfg.scr_tpp_set} has no spurious label, which SCR and TPP pair with the class label. "
            "Fix: set spurious_column in its config (e.g. gender for bias_in_bios), use a set that has one "
            "(the world's topic set), or turn off scr_tpp."
        )
    return {"corpus": cell.data(cfg.corpus, "corpus"), "probe_sets": probe_sets, "scr_tpp_set": scr_set}


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

    data = open_data(cell, cfg)  # before any work: a bad data set fails the cell at once
    memo_before = memo().stats()
    corpus = data["corpus"]
    t0 = time.perf_counter()
    loaded = cell.load_model()
    loaded.model.eval()
    hook = cfg.hook_point
    torch.manual_seed(seed)
    pretrained = bool(getattr(spec.cls, "pretrained", False))  # e.g. pretrained_sae: loaded, never trained here
    if pretrained:
        sae, log, train_acts = load_pretrained(spec, loaded, cfg, seed, device, corpus), None, None
        timings["load"] = time.perf_counter() - t0
    else:
        train_acts = shared_train_acts(loaded, cfg, corpus)
        timings["harvest"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        sae, log = train(spec.cls, spec.config, train_acts, cfg, seed, device)
        timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    batches, reference = shared_reference(loaded, cfg, corpus)  # also the metrics' token_batches below
    recon, splice = evaluate(loaded, sae, cfg, batches, reference=reference)
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
        sweep_details = sweep(spec, train_acts, loaded, cfg, seed, device, corpus)
    del train_acts
    if sweep_details:
        timings["sweep"] = time.perf_counter() - t0
    matched, notes = matched_values(cell, cfg, recon, splice, sweep_details)
    metrics += matched

    probing: dict[str, Any] = {}
    pooled: dict[str, Any] = {}
    if cfg.probing:
        t0 = time.perf_counter()
        sp = cell.metric("sae_sparse_probing")
        for labelled in data["probe_sets"]:
            kind = labelled.name
            tr = labelled.examples("train", cfg.budget("probe_train_examples"), seed=seed)
            te = labelled.examples("test", cfg.budget("probe_test_examples"), seed=seed)
            r_tr, f_tr = pooled_features(loaded, sae, hook, [e.text for e in tr])
            r_te, f_te = pooled_features(loaded, sae, hook, [e.text for e in te])
            index = {label: i for i, label in enumerate(labelled.labels)}  # the world's order = its label ids
            y_tr = np.array([index[e.label] for e in tr])
            y_te = np.array([index[e.label] for e in te])
            pooled[kind] = (f_tr, y_tr, [e.label for e in tr])
            scores = {f"k{k}": probe(f_tr, y_tr, f_te, y_te, k=k, seed=seed) for k in cfg.probe_k}
            scores["residual"] = probe(r_tr, y_tr, r_te, y_te, k=None, seed=seed)
            for name, s in scores.items():
                metrics.append(sp.report(s, key=f"{kind}/{name}"))
            probing[kind] = {name: round(s.accuracy, 4) for name, s in scores.items()}
        timings["probing"] = time.perf_counter() - t0

    absorption: dict[str, Any] = {}
    if cfg.absorption:
        t0 = time.perf_counter()
        from .absorption import absorption_scores, vocabulary_words

        if is_world(cfg.corpus):  # the world's spelling words, which the zoo models learned to spell
            pairs, vocabulary = list(corpus.world.first_letter_words), None
        else:  # SAEBench: the single-token alphabetic words of the model's own vocabulary
            pairs = vocabulary_words(loaded.require_tokenizer(), max_words=cfg.budget("absorption_vocab_words"), seed=seed)
            vocabulary = {"source": "tokenizer", "words": len(pairs)}
        ar = absorption_scores(
            loaded, sae, hook, seed=seed, template=cfg.absorption_template, token_pos=cfg.absorption_token_pos,
            test_fraction=cfg.absorption_test_fraction, min_train_words=cfg.absorption_min_train_words,
            max_k=cfg.absorption_max_k, f1_jump_threshold=cfg.absorption_f1_jump_threshold, pairs=pairs,
        )  # fmt: skip
        for name in ("sae_absorption_fraction", "sae_absorption_full_rate", "sae_split_features"):
            metrics.append(cell.metric(name).report(ar))
        absorption = ar.details() if vocabulary is None else {**ar.details(), "vocabulary": vocabulary}
        timings["absorption"] = time.perf_counter() - t0

    scr_tpp: dict[str, Any] = {}
    if cfg.scr_tpp:
        t0 = time.perf_counter()
        from .scr_tpp import scr_tpp_scores

        r = scr_tpp_scores(
            loaded, sae, hook, data=data["scr_tpp_set"], seed=seed, n_values=cfg.scr_tpp_n,
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
        # model-side work this cell reused from earlier cells in its process (harness.memo), or computed
        "shared": {k: memo().stats()[k] - memo_before[k] for k in ("hits", "misses")},
    }
    if pretrained:  # where the SAE came from: format, folder, content hash of its weights
        details["pretrained"] = dict(getattr(sae, "pretrained_source", None) or {})
    return SuiteOutput(metrics=metrics, artifacts=artifacts, details=details, notes=notes)
