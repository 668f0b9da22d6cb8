"""Exact Hugging Face configs of real checkpoints, for random-initialised test models.

Only the architecture-defining fields are listed (as in each checkpoint's config.json);
the rest take transformers' defaults, which match those checkpoints. ``shrink`` lowers
``num_hidden_layers`` for speed where a test does not need the full depth.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

#: Pythia-70M's config.json (EleutherAI/pythia-70m).
PYTHIA_70M: dict[str, Any] = {
    "architectures": ["GPTNeoXForCausalLM"],
    "model_type": "gpt_neox",
    "bos_token_id": 0,
    "eos_token_id": 0,
    "hidden_act": "gelu",
    "hidden_size": 512,
    "initializer_range": 0.02,
    "intermediate_size": 2048,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 2048,
    "num_attention_heads": 8,
    "num_hidden_layers": 6,
    "rotary_emb_base": 10000,
    "rotary_pct": 0.25,
    "tie_word_embeddings": False,
    "use_cache": True,
    "use_parallel_residual": True,
    "vocab_size": 50304,
}

#: openai-community/gpt2's config.json (124M).
GPT2: dict[str, Any] = {
    "architectures": ["GPT2LMHeadModel"],
    "model_type": "gpt2",
    "activation_function": "gelu_new",
    "attn_pdrop": 0.1,
    "bos_token_id": 50256,
    "embd_pdrop": 0.1,
    "eos_token_id": 50256,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "n_ctx": 1024,
    "n_embd": 768,
    "n_head": 12,
    "n_layer": 12,
    "n_positions": 1024,
    "resid_pdrop": 0.1,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
    "vocab_size": 50257,
}

#: facebook/opt-125m's config.json.
OPT_125M: dict[str, Any] = {
    "architectures": ["OPTForCausalLM"],
    "model_type": "opt",
    "activation_dropout": 0.0,
    "activation_function": "relu",
    "attention_dropout": 0.0,
    "bos_token_id": 2,
    "do_layer_norm_before": True,
    "dropout": 0.1,
    "eos_token_id": 2,
    "ffn_dim": 3072,
    "hidden_size": 768,
    "init_std": 0.02,
    "layerdrop": 0.0,
    "max_position_embeddings": 2048,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "vocab_size": 50272,
    "word_embed_proj_dim": 768,
}

#: A small Llama-style config (RMSNorm, SwiGLU, RoPE, grouped-query attention 8 -> 2 heads).
LLAMA_SMALL: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "hidden_size": 128,
    "intermediate_size": 344,
    "max_position_embeddings": 512,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "num_hidden_layers": 3,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "vocab_size": 1000,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

CONFIGS: dict[str, dict[str, Any]] = {
    "pythia-70m": PYTHIA_70M,
    "gpt2": GPT2,
    "opt-125m": OPT_125M,
    "llama-small": LLAMA_SMALL,
}

#: Pythia-70M's real config.json + tokenizer (no weights), next to the repository.
PYTHIA_SHAPE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pythia-70m-shape"


def build(name: str, *, seed: int = 0, shrink: int | None = None, **overrides: Any) -> Any:
    """A random-initialised causal LM (eval mode) with ``CONFIGS[name]``.

    ``shrink=k`` keeps only ``k`` layers (same widths); ``overrides`` set other fields.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(CONFIGS[name])
    if shrink is not None:
        cfg["n_layer" if name == "gpt2" else "num_hidden_layers"] = shrink
    cfg.update(overrides)
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


@functools.cache
def shared(name: str, shrink: int | None = None) -> Any:
    """Like :func:`build` (seed 0) but built once per test session; do not modify it."""
    return build(name, shrink=shrink)


WORDS = "the a cat dog sat ran on under mat rug big small red blue and then".split()


def tiny_tokenizer() -> Any:
    """A word-level fast tokenizer (ids: <pad>=0, <bos>=1, <eos>=2, <unk>=3, words from 4)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
