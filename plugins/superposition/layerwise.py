"""Layer-wise profile: F and psi at residual / attention-out / MLP-out of every layer of an LM.

Training activations (``train_tokens``) are harvested once for all hook points; a fresh
learner is trained per point; F is then counted by streaming a second, disjoint stretch of
text (``count_tokens``) through the model and each learner (nothing of it is kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from harness.errors import HarnessError
from harness_plugins.effective_features.counter import EffectiveFeatureCounter, EffectiveFeatures

from .fitting import fit_learner, make_learner

KIND_SUFFIX = {"resid_post": "hook_resid_post", "attn_out": "attn.hook_out", "mlp_out": "mlp.hook_out"}


@dataclass
class LayerProfile:
    points: list[str]
    kinds: dict[str, str]
    layers: dict[str, int]
    results: dict[str, EffectiveFeatures] = field(default_factory=dict)
    train_logs: dict[str, dict[str, float]] = field(default_factory=dict)
    n_train_tokens: int = 0
    n_count_tokens: int = 0
    #: First document of the count stretch (after the training documents).
    count_start: int = 0


#: Where the count stretch starts in the world's stream (far after the training documents).
WORLD_COUNT_START = 1_000_000


class _Counted:
    """Texts of a corpus from ``start`` on, counting the documents handed out (``taken``)."""

    def __init__(self, corpus: Any, start: int) -> None:
        self.corpus, self.start, self.taken = corpus, start, 0

    def __iter__(self):
        for text in self.corpus.texts(self.start):
            self.taken += 1
            yield text


def _collect(loaded: Any, points: list[str], n_tokens: int, texts: Any, ctx: int, batch_size: int):
    """Yield {point: [n_kept, d]} per model batch until ``n_tokens`` kept tokens were seen."""
    from harness.models import harvest

    tok = loaded.require_tokenizer()
    bos = tok.bos_token_id
    seen = 0
    with torch.no_grad():
        for acts in harvest(loaded, points, texts, batch_size=batch_size, context_length=ctx):
            keep = acts.keep_mask(bos_token_id=bos)
            out = {p: acts.flat(p, keep).float() for p in points}
            take = min(n_tokens - seen, next(iter(out.values())).shape[0])
            yield {p: v[:take] for p, v in out.items()}
            seen += take
            if seen >= n_tokens:
                return


def layer_profile(
    loaded: Any,
    method: Any,
    *,
    kinds: list[str],
    train_tokens: int,
    count_tokens: int,
    epochs: int,
    batch_size: int,
    lr: float | None,
    normalize: bool,
    checkpoints: list[int],
    seed: int,
    context_length: int = 128,
    progress: Any = None,
    corpus: Any = None,
    count_start: int | None = None,
) -> LayerProfile:
    """Train one learner per hook point on ``train_tokens`` of ``corpus`` (a ``TextCorpus``;
    None = the world) from its first document, then count F on ``count_tokens`` more from
    document ``count_start`` (None: the world's :data:`WORLD_COUNT_START` for the world, else
    right after the documents the training harvest read, so the two stretches never overlap)."""
    if corpus is None:
        from harness.datasets import open_role

        corpus = open_role("world", "corpus")
    n_layers = loaded.n_layers
    points = [f"blocks.{i}.{KIND_SUFFIX[k]}" for i in range(n_layers) for k in kinds]
    prof = LayerProfile(
        points, {f"blocks.{i}.{KIND_SUFFIX[k]}": k for i in range(n_layers) for k in kinds},
        {f"blocks.{i}.{KIND_SUFFIX[k]}": i for i in range(n_layers) for k in kinds},
    )  # fmt: skip
    chunks: dict[str, list[torch.Tensor]] = {p: [] for p in points}
    train_texts = _Counted(corpus, 0)
    for part in _collect(loaded, points, train_tokens, train_texts, context_length, 8):
        for p, v in part.items():
            chunks[p].append(v)
    if not chunks[points[0]]:
        raise HarnessError("superposition layer-wise profile: the corpus gave no tokens to train on. Fix: give a "
                           "corpus with text, or layerwise: false.")
    train = {p: torch.cat(v) for p, v in chunks.items()}
    del chunks
    prof.n_train_tokens = next(iter(train.values())).shape[0]
    # Per-point scale so that E||x||^2 = d (SAELens-style norm scaling); F is computed on the
    # same scaled inputs. Off = raw activations (the authors' code).
    scale = {p: (x.shape[1] / x.pow(2).sum(1).mean().clamp_min(1e-12)).sqrt() if normalize else torch.tensor(1.0) for p, x in train.items()}
    learners = {}
    it = progress(points, desc="layer-wise SAEs") if progress else points
    for j, p in enumerate(it):
        x = train[p] * scale[p]
        learner = make_learner(method, x.shape[1], seed=seed + 1000 + j)
        prof.train_logs[p] = fit_learner(learner, x, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed + j)
        learners[p] = learner
    del train
    counters = {p: EffectiveFeatureCounter(loaded.d_model, checkpoints) for p in points}
    # The count stretch never overlaps the training documents.
    if count_start is None:
        count_start = WORLD_COUNT_START if hasattr(corpus, "world") else train_texts.taken
    counted = 0
    with torch.no_grad():
        for part in _collect(loaded, points, count_tokens, _Counted(corpus, count_start), context_length, 8):
            for p, v in part.items():
                for chunk in (v * scale[p]).split(128):  # fine-grained convergence trace
                    counters[p].update(learners[p].encode(chunk))
            counted += next(iter(part.values())).shape[0]
    if not counted:
        raise HarnessError(f"superposition layer-wise profile: the corpus has no text left to count F on after the "
                           f"{train_texts.taken} documents the learners trained on (from document {count_start}). "
                           "Fix: a larger corpus, or a smaller layer_train_tokens.")
    prof.results = {p: c.result() for p, c in counters.items()}
    prof.n_count_tokens, prof.count_start = counted, count_start
    return prof
