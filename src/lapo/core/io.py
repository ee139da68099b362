"""Files at the edges: atomic writes, JSON lines, the stage-1 target map, and names that are safe as paths.

One implementation of each, shared by training, evaluation and reports. Pure Python (no torch).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from lapo.errors import LapoError

TARGETS_FILE = "targets.json"


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically (same-folder temp file, fsync, ``os.replace``).

    A reader, or a run killed mid-write, sees either the previous complete file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as indented JSON, written atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike, what: str) -> Any:
    """A JSON file's content; a missing, unreadable or corrupt file is a :class:`LapoError` naming ``what``."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LapoError(f"{what} {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LapoError(f"{what} {path} is not readable JSON ({error}); the file is corrupt: remove or "
                        "regenerate it.") from None


def read_jsonl_lenient(path: str | os.PathLike) -> list[dict]:
    """The dict lines of a JSONL file; unreadable lines (a run killed mid-write) are skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def looks_binary(line: str) -> bool:
    """A line holding a raw NUL byte: not a text file.

    JSON never writes NUL unescaped, and every binary format has one within a few bytes. Bytes that are
    not UTF-8 are *not* refused: engines write a completion cut inside a multi-byte character raw, and
    reading with ``errors="replace"`` scores such a line with replacement characters instead of
    failing a whole rollout file over one broken token.
    """
    return "\x00" in line


def slug(text: str, default: str = "model") -> str:
    """``text`` as a file or folder name: letters, digits, ``-``, ``_`` and ``.`` kept, the rest ``-``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or default


# ---------------------------------------------------------------------------------------- target maps


def save_targets(targets: dict[str, int], path: str | os.PathLike) -> Path:
    """The stage-1 -> stage-2 hand-off: ``{problem_id: N}`` as sorted JSON, written atomically."""
    return atomic_write_text(path, json.dumps(dict(sorted(targets.items())), indent=1) + "\n")


def find_targets(path: str | os.PathLike) -> Path:
    """``path`` itself, or the ``targets.json`` of a run directory (``path/targets.json``, else the first below)."""
    path = Path(path)
    if path.is_dir():
        hits = [path / TARGETS_FILE] if (path / TARGETS_FILE).is_file() else sorted(path.rglob(TARGETS_FILE))
        if not hits:
            raise LapoError(f"no {TARGETS_FILE} under {path}; pass the file a stage-1 run wrote, e.g. RUN/{TARGETS_FILE}.")
        return hits[0]
    if not path.is_file():
        raise LapoError(f"no target map at {path}: run stage 1 (`lapo train --stage discovery`) first, or pass "
                        f"the {TARGETS_FILE} a stage-1 run wrote.")
    return path


def load_targets(path: str | os.PathLike) -> dict[str, int]:
    """A target map ``{problem_id: N}`` from a file or a run directory; anything else is refused, naming the
    path and the bad entry. ``{"targets": {...}}`` wrappers are read too; whole floats (``412.0``) are ints."""
    path = find_targets(path)
    data = read_json(path, "target map")
    if isinstance(data, dict) and isinstance(data.get("targets"), dict):
        data = data["targets"]
    if not isinstance(data, dict):
        raise LapoError(f"{path}: a target map must be a JSON object {{problem_id: tokens}}.")
    return {str(k): _target_value(path, k, v) for k, v in data.items()}


def _target_value(path: Path, key: str, value: Any) -> int:
    whole = isinstance(value, float) and value.is_integer()
    if (isinstance(value, int) and not isinstance(value, bool) or whole) and value > 0:
        return int(value)
    raise LapoError(f"{path}: target of problem {key!r} is {value!r}; targets must be positive integers.")
