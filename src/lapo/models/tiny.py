"""Tiny models built on the spot: a character-level tokenizer and small Qwen2 / Llama models.

What the embedded default trains from scratch (``lapo warmstart``) and what the tests use: a real
``PreTrainedTokenizerFast`` and a real ``Qwen2ForCausalLM`` (or ``LlamaForCausalLM``, SmolLM2's), so every TRL
and transformers code path runs on them unchanged.
"""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
PAD_TOKEN = "<|pad|>"
EOS_TOKEN = "<|endoftext|>"
UNK_TOKEN = "<|unk|>"


def build_char_tokenizer():
    """A byte-level ``PreTrainedTokenizerFast``: one token per byte (so per ASCII character), no merges.

    ``<think>``/``</think>`` are single tokens; ``<|pad|>``, ``<|endoftext|>`` (EOS) and ``<|unk|>`` are special.
    The pipeline (NFC, ByteLevel pre-tokenizer and decoder, BPE over the 256 byte symbols) is the one
    transformers' ``Qwen2Tokenizer`` rebuilds: ``AutoTokenizer`` loads a Qwen2 checkpoint's tokenizer as that
    class whatever the saved ``tokenizer_class`` says, so any other pipeline would load as a different tokenizer.
    """
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
    )
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    specials = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN]
    symbols = sorted(ByteLevel.alphabet())  # the 256 printable stand-ins of the bytes
    vocab = {token: i for i, token in enumerate(specials + symbols)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, continuing_subword_prefix="",
                                   end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    # Not special: the think tags are text (decoding with skip_special_tokens keeps them).
    backend.add_tokens([AddedToken(tag, special=False, normalized=False) for tag in (THINK_OPEN, THINK_CLOSE)])
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN, unk_token=UNK_TOKEN,
        padding_side="left",  # decoder-only generation pads on the left
    )


def build_tiny_model(
    tokenizer,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    seed: int = 0,
    architecture: str = "qwen2",
):
    """A randomly initialised ``Qwen2ForCausalLM`` (or, with ``architecture="llama"``, ``LlamaForCausalLM``,
    SmolLM2's) sized for ``tokenizer`` (tied embeddings, float32)."""
    import torch
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    classes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    if architecture not in classes:
        raise ValueError(f"architecture={architecture!r} is not one of {', '.join(classes)}.")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} must be a multiple of num_heads={num_heads}.")
    config_cls, model_cls = classes[architecture]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = model_cls(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
