"""A byte-level BPE tokenizer trained on the world, saved in Hugging Face format.

Digits are split into single tokens (so addition is learnable digit by digit), ``<|endoftext|>``
(id 0) is bos/eos/unk and ``<|padding|>`` (id 1) is the pad token, as in Pythia.
``AutoTokenizer.from_pretrained(folder)`` returns a fast tokenizer.

Unlike Pythia's, encoding with special tokens (the default) prepends ``<|endoftext|>`` like a
BOS token: every training document follows one, so ``tokenizer(text)`` gives a model (and
lm-eval's HFLM) the context it was trained with. Pass ``add_special_tokens=False`` for raw ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

    from harness.zoo.world import World

EOS = "<|endoftext|>"
PAD = "<|padding|>"


def train_tokenizer(world: World, vocab_size: int = 1024, n_docs: int = 30_000) -> PreTrainedTokenizerFast:
    """Train BPE on the first ``n_docs`` documents plus every trained entity name and canary.

    Held-out entities are deliberately excluded. Deterministic for a given world.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def corpus():
        for d in world.documents(0, n_docs):
            yield d.text
        for f in world.facts:
            if f.split != "heldout":
                yield f.sentence

    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.post_processor = bos_post_processor()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=PAD,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )


def bos_post_processor() -> object:
    """The ``tokenizers`` post-processor that prepends ``<|endoftext|>`` (id 0)."""
    from tokenizers import processors

    return processors.TemplateProcessing(single=f"{EOS} $A", pair=f"{EOS} $A {EOS} $B", special_tokens=[(EOS, 0)])


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: str | Path) -> Path:
    """Write tokenizer.json + tokenizer_config.json + special_tokens_map.json to ``folder``."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    # Name the class every transformers release knows (v5 writes its internal "TokenizersBackend").
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg.pop("backend", None)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return folder


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerFast:
    """``AutoTokenizer.from_pretrained(folder)`` (fast)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))
