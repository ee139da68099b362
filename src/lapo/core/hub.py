"""Whether a Hugging Face hub id can be used from here, decided in milliseconds.

With no network the hub client retries each file for about 25 seconds before it gives up (measured: `lapo
eval --model org/name` took 52 s to fail offline). lapo asks first: is the name shaped like a hub id, is the
hub switched off (``HF_HUB_OFFLINE``) or unreachable (one TCP connection, a few seconds at most), and is the
repository in the local cache. The callers (:mod:`lapo.models.loading`, :mod:`lapo.data.sources`) turn the
answers into one :class:`lapo.errors.LapoError` with the fix. Pure Python; no hub client is imported here.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

# org/name as the hub spells repository ids: letters, digits, '-', '_', '.', at most 96 characters each.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_TRUE = {"1", "on", "yes", "true"}
_PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
MODEL_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
DATASET_SWITCHES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def is_hub_id(name: str) -> bool:
    """``org/name`` as the hub accepts it (no ``..`` or ``--``, not ending in ``.git``)."""
    return bool(_HUB_ID.fullmatch(name)) and ".." not in name and "--" not in name and not name.endswith(".git")


def unreachable(switches: tuple[str, ...] = MODEL_SWITCHES, timeout_s: float = 3.0) -> str | None:
    """Why the hub cannot be reached from here (an offline switch set, no connection), or None when it can.

    Behind a proxy a direct connection says nothing, so the client is left to try (None).
    """
    for var in switches:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    if any(os.environ.get(var) for var in _PROXIES):
        return None
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        return f"{host} cannot be reached: {error.strerror or error}"
    return None


def hub_cache() -> Path:
    """The hub client's cache folder (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached(repo_id: str, repo_type: str = "model") -> bool:
    """Whether the hub cache holds a downloaded snapshot of ``repo_id`` (``models--org--name/snapshots/*``)."""
    folder = hub_cache() / f"{repo_type}s--{repo_id.replace('/', '--')}" / "snapshots"
    return folder.is_dir() and any(folder.iterdir())
