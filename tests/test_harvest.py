"""Activation harvesting: token batching, stop-early, the shuffling buffer, the disk cache."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _hf_configs import PYTHIA_SHAPE_DIR, build, shared, tiny_tokenizer  # noqa: E402

from harness.models import (  # noqa: E402
    ActivationBuffer,
    cached_harvest,
    harvest,
    harvest_flat,
    harvest_flat_with_tokens,
    iter_token_batches,
    model_bos_id,
)

TEXTS = [
    "the cat sat on the mat",
    "a dog ran under the rug and then sat",
    "the big red cat",
    "a small blue dog ran on the big mat then the cat sat",
]


@pytest.fixture(scope="module")
def model():
    return build("llama-small")


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(3, 900, (12, 10), generator=torch.Generator().manual_seed(0))


def test_token_batches_pack_texts():
    tok = tiny_tokenizer()
    batches = list(iter_token_batches(TEXTS, tokenizer=tok, batch_size=3, context_length=8))
    rows = torch.cat([b.input_ids for b in batches])
    masks = torch.cat([b.attention_mask for b in batches])
    assert (rows[:, 0] == tok.bos_token_id).all()
    stream = [i for text in TEXTS for i in [*tok(text, add_special_tokens=False)["input_ids"], tok.eos_token_id]]
    packed = [i for row, m in zip(rows.tolist(), masks.tolist()) for i, keep in zip(row[1:], m[1:]) if keep]
    assert packed == stream
    assert masks[:-1].all() and not masks[-1].all()  # only the last row is padded
    assert (rows[-1][masks[-1] == 0] == tok.pad_token_id).all()


def test_token_batches_unpacked_rows_and_ready_batches(tokens):
    tok = tiny_tokenizer()
    (batch,) = iter_token_batches(TEXTS, tokenizer=tok, batch_size=8, context_length=6, pack=False)
    assert batch.input_ids.shape == (4, 6)
    assert batch.attention_mask[2].tolist() == [1, 1, 1, 1, 1, 0]  # "<bos> the big red cat" + pad
    from_rows = list(iter_token_batches([[5, 6, 7], [8, 9]], batch_size=2, context_length=4))
    assert from_rows[0].input_ids.tolist() == [[5, 6, 7], [8, 9, 0]]
    ready = list(iter_token_batches([tokens[:4], tokens[4:]], context_length=5))
    assert [b.input_ids.shape for b in ready] == [(4, 5), (8, 5)]
    assert [b.input_ids.shape[0] for b in iter_token_batches(tokens, batch_size=5)] == [5, 5, 2]
    with pytest.raises(ValueError, match="tokenizer"):
        list(iter_token_batches(TEXTS))


def test_stop_early_matches_full_forward_and_skips_later_layers(model, tokens):
    points = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_pattern", "blocks.1.mlp.hook_post"]
    full = list(harvest(model, points, tokens, batch_size=5, stop_early=False))
    calls = []
    handle = model.model.layers[2].register_forward_hook(lambda *a: calls.append(1))
    try:
        early = list(harvest(model, points, tokens, batch_size=5, stop_early=True))
    finally:
        handle.remove()
    assert calls == []  # block 2 never ran
    assert len(full) == len(early) == 3
    for a, b in zip(full, early):
        for p in points:
            assert torch.equal(a.acts[p], b.acts[p])


def test_harvest_flat_excludes_bos_and_pad(model):
    tok = tiny_tokenizer()
    chunks = list(harvest_flat(model, "resid_post.0", TEXTS, tokenizer=tok, batch_size=2, context_length=8))
    batches = list(iter_token_batches(TEXTS, tokenizer=tok, batch_size=2, context_length=8))
    n_kept = sum(int(((b.input_ids != tok.bos_token_id) & b.attention_mask.bool()).sum()) for b in batches)
    assert sum(c.shape[0] for c in chunks) == n_kept
    everything = harvest_flat(
        model, "resid_post.0", TEXTS, tokenizer=tok, context_length=8, exclude_bos=False, exclude_pad=False
    )
    assert sum(c.shape[0] for c in everything) == sum(b.input_ids.numel() for b in batches)


def test_harvest_flat_with_tokens_pairs_activations_with_kept_ids(model, tmp_path):
    tok = tiny_tokenizer()
    assert model_bos_id(model, tok) == tok.bos_token_id
    kw = dict(tokenizer=tok, batch_size=2, context_length=8)
    pairs = list(harvest_flat_with_tokens(model, "resid_post.0", TEXTS, **kw))
    flat = list(harvest_flat(model, "resid_post.0", TEXTS, **kw))
    batches = list(iter_token_batches(TEXTS, tokenizer=tok, batch_size=2, context_length=8))
    kept = [b.input_ids[(b.input_ids != tok.bos_token_id) & b.attention_mask.bool()] for b in batches]
    assert len(pairs) == len(flat) == len(kept)
    for (acts, ids), plain, want in zip(pairs, flat, kept):
        assert torch.equal(acts, plain) and torch.equal(ids, want) and acts.shape[0] == ids.shape[0]
    from safetensors.torch import load_file

    list(cached_harvest(model, "resid_post.0", TEXTS, cache_dir=tmp_path, shard_tokens=10**6, **kw))
    (entry,) = tmp_path.iterdir()
    shard = load_file(str(entry / "shard_00000.safetensors"))
    assert torch.equal(shard["tokens"], torch.cat(kept))
    torch.testing.assert_close(shard["activations"], torch.cat(flat))


def _stream(n: int = 100, d: int = 4, sizes=(7, 13, 30, 50)):
    rows = torch.arange(n * d, dtype=torch.float32).reshape(n, d)
    out, i, k = [], 0, 0
    while i < n:
        out.append(rows[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return rows, out


def test_buffer_shuffles_deterministically_and_covers_the_stream():
    rows, chunks = _stream()
    first = list(ActivationBuffer(chunks, buffer_size=32, batch_size=8, seed=1, drop_last=False))
    again = list(ActivationBuffer(chunks, buffer_size=32, batch_size=8, seed=1, drop_last=False))
    other = list(ActivationBuffer(chunks, buffer_size=32, batch_size=8, seed=2, drop_last=False))
    assert all(torch.equal(a, b) for a, b in zip(first, again)) and len(first) == len(again)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    got = torch.cat(first)
    assert got.shape == rows.shape
    assert torch.equal(got[got[:, 0].argsort()], rows)  # a permutation of the stream
    assert not torch.equal(got, rows)
    assert all(b.shape == (8, 4) for b in first[:-1]) and first[-1].shape == (4, 4)
    # chunking does not matter
    _, rechunked = _stream(sizes=(1, 99))
    same = list(ActivationBuffer(rechunked, buffer_size=32, batch_size=8, seed=1, drop_last=False))
    assert all(torch.equal(a, b) for a, b in zip(first, same))
    dropped = list(ActivationBuffer(chunks, buffer_size=32, batch_size=8, seed=1))
    assert len(dropped) == 12
    with pytest.raises(ValueError):
        ActivationBuffer(chunks, buffer_size=4, batch_size=8)


def test_buffer_from_model_and_cache(model, tokens, tmp_path):
    kwargs = dict(buffer_size=40, batch_size=10, seed=0, model_batch_size=5)
    plain = list(ActivationBuffer.from_model(model, "resid_post.1", tokens, **kwargs))
    cached = list(ActivationBuffer.from_model(model, "resid_post.1", tokens, cache_dir=str(tmp_path), **kwargs))
    entries = [p for p in tmp_path.iterdir()]
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    hit = list(ActivationBuffer.from_model(model, "resid_post.1", tokens, cache_dir=str(tmp_path), **kwargs))
    assert len(plain) == len(cached) == len(hit) == 12
    for a, b, c in zip(plain, cached, hit):
        torch.testing.assert_close(a, b)
        assert torch.equal(b, c)


def test_cache_keys_separate_models_layers_and_sources(model, tokens, tmp_path):
    def run(m, point, src, **kw):
        return torch.cat(list(cached_harvest(m, point, src, cache_dir=tmp_path, batch_size=6, shard_tokens=25, **kw)))

    a = run(model, "resid_post.0", tokens)
    assert len(list(tmp_path.iterdir())) == 1
    assert len(list(next(tmp_path.iterdir()).glob("shard_*.safetensors"))) == 2  # 2 batches of 60 >= 25 tokens
    b = run(model, "resid_post.1", tokens)
    other = build("llama-small", seed=1)
    c = run(other, "resid_post.0", tokens)
    d = run(model, "resid_post.0", tokens[:6])
    e = run(model, "resid_post.0", tokens, source_id="named-source")
    assert len(list(tmp_path.iterdir())) == 5
    assert not torch.allclose(a, b) and not torch.allclose(a, c)
    assert d.shape[0] == 60 and torch.equal(a, e)
    assert torch.equal(run(model, "blocks.0.hook_resid_post", tokens), a)  # alias -> same entry
    assert len(list(tmp_path.iterdir())) == 5


def test_cache_abandoned_stream_leaves_nothing(model, tokens, tmp_path):
    stream = cached_harvest(model, "resid_post.0", tokens, cache_dir=tmp_path, batch_size=4)
    next(stream)
    stream.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="source_id"):
        next(cached_harvest(model, "resid_post.0", iter([tokens]), cache_dir=tmp_path))


@pytest.mark.skipif(not PYTHIA_SHAPE_DIR.is_dir(), reason="../shared/data/pythia-70m-shape is absent")
def test_pythia_shape_with_real_tokenizer():
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(PYTHIA_SHAPE_DIR)
    tok = AutoTokenizer.from_pretrained(PYTHIA_SHAPE_DIR)
    model = shared("pythia-70m")  # built from the identical config dict
    assert {k: getattr(config, k) for k in ("hidden_size", "num_hidden_layers", "vocab_size")} == {
        k: getattr(model.config, k) for k in ("hidden_size", "num_hidden_layers", "vocab_size")
    }
    texts = ["The quick brown fox jumps over the lazy dog.", "Pythia is a suite of language models.", "1 + 1 = 2"]
    full = list(harvest(model, "blocks.3.hook_resid_post", texts, tokenizer=tok, context_length=16, stop_early=False))
    early = list(harvest(model, "blocks.3.hook_resid_post", texts, tokenizer=tok, context_length=16))
    point = "blocks.3.hook_resid_post"
    assert all(torch.equal(a.acts[point], b.acts[point]) for a, b in zip(full, early))
    assert full[0].input_ids[0, 0].item() == tok.bos_token_id == 0
