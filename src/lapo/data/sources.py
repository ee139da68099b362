"""Where problems come from: local JSON/JSONL/Parquet files, benchmark names, Hugging Face hub ids, and the
built-in tasks (``counting``, ``sums``). Returns raw rows; :mod:`lapo.data.problems` turns them into problems.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lapo.core import hub
from lapo.errors import LapoError, one_line

logger = logging.getLogger(__name__)

LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")


@dataclass(frozen=True)
class HubSpec:
    """Where a named benchmark lives on the hub and which of its columns mean what."""

    repo: str
    split: str | None  # None: use the caller's split (datasets that have train and test)
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str = "id"
    config: str | None = None
    local_name: str | None = None  # file stem under data_dir; "{split}" is filled in


def _gsm8k_answer(text: Any) -> Any:
    """GSM8K's hub answers end with '#### 72' after the worked solution; keep the number."""
    return str(text).rsplit("####", 1)[-1].strip().replace(",", "") if text is not None else text


BENCHMARKS: dict[str, HubSpec] = {
    "math500": HubSpec("HuggingFaceH4/MATH-500", "test", id_field="unique_id"),
    "aime24": HubSpec("HuggingFaceH4/aime_2024", "train"),
    "amc23": HubSpec("math-ai/amc23", "test", problem_field="question"),
    "olympiadbench": HubSpec(
        "Hothan/OlympiadBench", "train", "question", "final_answer", config="OE_TO_maths_en_COMP"
    ),
    "gsm8k": HubSpec("openai/gsm8k", None, "question", config="main", local_name="gsm8k_{split}"),
    # The paper's training set (10,000 problems after filtering: docs/METHOD.md, section 5).
    "deepscaler": HubSpec("agentica-org/DeepScaleR-Preview-Dataset", "train"),
}
ANSWER_FIXES: dict[str, Callable[[Any], Any]] = {"gsm8k": _gsm8k_answer}


def _read_local(path: Path) -> list[dict]:
    """Rows of a .jsonl / .json / .parquet file; anything else is a LapoError naming the file (and the line)."""
    try:
        rows = _parquet(path) if path.suffix == ".parquet" else _json_rows(path, path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise LapoError(f"dataset file {path} is not UTF-8 text (a binary file?); pass a .jsonl, .json or "
                        ".parquet file of problems.") from None
    bad = next((i for i, row in enumerate(rows, start=1) if not isinstance(row, dict)), None)
    if bad is not None:
        raise LapoError(f"{path}: row {bad} is a {type(rows[bad - 1]).__name__}; each row must be an object "
                        '{"problem", "answer", "id"?, ...}.')
    return rows


def _parquet(path: Path) -> list[dict]:
    import pyarrow  # a dependency of `datasets`
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except pyarrow.ArrowException as error:
        raise LapoError(f"dataset file {path} is not a readable Parquet file ({one_line(error)}); pass another "
                        "file.") from None


def _json_rows(path: Path, text: str) -> list:
    """A .json array, else JSON lines; a bad line is reported with its number."""
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise LapoError(f"{path} is not valid JSON ({err}); fix the file.") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise LapoError(f"{path}:{number} is not valid JSON ({err.msg}); fix or remove that line.") from None
    return rows


def _read_hub(repo: str, split: str, config: str | None = None, instead_of: str = "") -> list[dict]:
    """A hub dataset's rows; a name the hub cannot serve from here fails at once, not after the client's
    retries (lapo.core.hub). ``instead_of``: the local copy that was looked for first (said in the log)."""
    import datasets

    _check_hub_dataset(repo, datasets.config.HF_DATASETS_CACHE, instead_of)
    if instead_of:
        logger.warning("%s; loading %s from the hub", instead_of, repo)
    return list(datasets.load_dataset(repo, config, split=split))


def _check_hub_dataset(repo: str, datasets_cache: str | os.PathLike, instead_of: str = "") -> None:
    if not hub.is_hub_id(repo):
        raise LapoError(f"dataset {repo!r} is neither a local .jsonl/.json/.parquet file, a benchmark name "
                        f"({', '.join(BENCHMARKS)}), a built-in task (counting, sums) nor a hub id org/name; "
                        "check the name or the path.")
    reason = hub.unreachable(hub.DATASET_SWITCHES)
    # datasets keeps what it prepared under its own cache (org___name) and raw files in the hub cache.
    in_cache = hub.cached(repo, "dataset") or (Path(datasets_cache) / repo.replace("/", "___")).is_dir()
    if reason is not None and not in_cache:
        raise LapoError(f"{instead_of + ', and ' if instead_of else ''}dataset {repo!r} is not in the local cache "
                        f"and the hub cannot be used ({reason}); pass a local .jsonl/.json/.parquet file, or a "
                        "folder of <name>.jsonl copies as data_dir / --data-dir.")


def _read_counting(split: str, limit: int | None, seed: int) -> list[dict]:
    from lapo.tasks import counting

    # The task draws problems: n is how many, so a limit draws exactly that many.
    return list(counting.load_split(split, seed=seed, **({"n": limit} if limit else {})))


def _read_sums(split: str, seed: int) -> list[dict]:
    from lapo.tasks import sums

    # A finite task: the whole split, levels in turn, so a limit (applied by the caller) keeps them balanced.
    return sums.load_split(split, seed=seed)


def _local_benchmark(name: str, spec: HubSpec, split: str, data_dir: str | os.PathLike) -> Path | None:
    stems = [spec.local_name.format(split=split)] if spec.local_name else []
    for stem in stems + [name]:
        path = Path(data_dir) / f"{stem}.jsonl"
        if path.exists():
            return path
    return None


def resolve(
    source: str, split: str, data_dir: str | os.PathLike | None, seed: int, limit: int | None
) -> tuple[list[dict], dict[str, str]]:
    """The raw rows of ``source`` and the column names to use for it where they differ from the caller's."""
    if source == "counting":
        return _read_counting(split, limit, seed), {}
    if source == "sums":
        return _read_sums(split, seed), {}
    if source.endswith(LOCAL_SUFFIXES):
        path = Path(source).expanduser()
        if not path.exists():
            raise LapoError(f"dataset file {path} does not exist; check the `dataset` path.")
        return _read_local(path), {}
    if source in BENCHMARKS:
        spec = BENCHMARKS[source]
        local = _local_benchmark(source, spec, split, data_dir) if data_dir else None
        if local is not None:  # local copies use the plain id/problem/answer fields
            return _read_local(local), {}
        looked = f"no {source}.jsonl under {data_dir}" if data_dir else ""
        fields = {"problem": spec.problem_field, "answer": spec.answer_field, "id": spec.id_field}
        return _read_hub(spec.repo, spec.split or split, spec.config, looked), fields
    return _read_hub(source, split), {}
