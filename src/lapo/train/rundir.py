"""The run directory of `lapo train`: its file names, stage completion, and its metadata.

    <output_dir>/config.yaml, recipe.yaml, run.json, lapo.log, targets.json
    <output_dir>/<stage>/checkpoint-<step>/ (+ length_stats.jsonl, stage 2: targets.json)
    <output_dir>/<stage>/final/, length_stats.jsonl, log_history.jsonl, complete.json

The layout is documented in docs/TRAINING.md ("Run directory"). Only the main process writes here, and the
reward functions never do: ``lapo.train.callbacks.StatsCallback`` is the one writer of the length statistics.
Every file a resume reads is written atomically (``lapo.core.io.atomic_write_text``), so a kill leaves the
previous complete file. Which checkpoint a resume starts from is :mod:`lapo.train.resume`'s business.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import yaml

from lapo.core.io import TARGETS_FILE, atomic_write_text  # noqa: F401 - TARGETS_FILE: a run-dir name
from lapo.core.stats import LengthStats
from lapo.train.config import STAGES, RunConfig
from lapo.train.distributed import run_scale_out

STATS_FILE = "length_stats.jsonl"
# TARGETS_FILE (lapo.core.io): in the run dir the hand-off; in a stage-2 checkpoint the live (tightened) map
COMPLETE_FILE = "complete.json"
FINAL_DIR = "final"
LOG_FILE = "log_history.jsonl"
LAPO_LOG = "lapo.log"
VERSIONED = ("lapo", "torch", "trl", "transformers", "accelerate", "datasets", "peft", "math-verify", "vllm", "deepspeed")


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def main_process_only(fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn(*args)`` on the main process only (every file here has one writer)."""
    if is_main_process():
        fn(*args)


# ============================================================================================ stage files


def is_complete(stage_dir: Path) -> bool:
    return (Path(stage_dir) / COMPLETE_FILE).is_file()


def stage_summary(lengths: LengthStats, policy: str, **extra: Any) -> dict:
    """What ``complete.json`` holds: the statistics' summary (no histogram) and when the stage finished."""
    summary = lengths.summary(policy)
    summary.pop("target_histogram", None)
    return {**extra, **summary, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def mark_complete(stage_dir: Path, summary: dict) -> None:
    """Written last: a stage with ``complete.json`` is skipped by a resume."""
    main_process_only(atomic_write_text, Path(stage_dir) / COMPLETE_FILE, json.dumps(summary, indent=1) + "\n")


# ============================================================================================ metadata


def versions() -> dict[str, str | None]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision() -> dict[str, Any] | None:
    """The commit of the lapo source tree (editable installs), with whether it had uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10)
        return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def config_as_run(run: RunConfig) -> dict:
    """Every field of every dataclass, per stage: ``config.yaml``."""
    return {
        s: {
            "lapo": dataclasses.asdict(run.stages[s].lapo),
            "model": dataclasses.asdict(run.stages[s].model),
            "grpo": run.stages[s].grpo.to_dict(),
        }
        for s in STAGES
    }


def recipe_of(run: RunConfig) -> dict:
    """A recipe that reproduces this run: shared keys at the top, per-stage differences in sections."""
    flat = {s: run.stages[s].resolved for s in STAGES}
    shared = {k: v for k, v in flat["discovery"].items() if k in flat["internalization"] and flat["internalization"][k] == v}
    out = dict(shared)
    for s in STAGES:
        section = {k: v for k, v in flat[s].items() if k not in shared}
        if section:
            out[s] = section
    return out


def run_info(run: RunConfig, started: str) -> dict:
    """``run.json``: seed, stages, command line, git revision and library versions."""
    return {
        "seed": run.stages["discovery"].grpo.seed,
        "stages": list(run.selected),
        "method": run.method.as_dict() if run.method is not None else None,
        "resume": run.resume,
        "recipe": run.recipe_path,
        "command": sys.argv,
        "started": started,
        "git": git_revision(),
        "versions": versions(),
        "scale_out": run_scale_out(),  # world size, backend, ZeRO stage or FSDP version, stage processes
    }


def write_run_metadata(run: RunConfig) -> None:
    """config.yaml (as run), recipe.yaml (re-runnable), run.json; a resume writes ``*.resume-<time>`` beside them."""
    if not is_main_process():
        return
    run.run_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = f".resume-{stamp}" if run.resume and (run.run_dir / "config.yaml").exists() else ""
    write = atomic_write_text
    write(run.run_dir / f"config{suffix}.yaml", yaml.safe_dump(config_as_run(run), sort_keys=True))
    write(run.run_dir / f"recipe{suffix}.yaml", yaml.safe_dump(recipe_of(run), sort_keys=False))
    write(run.run_dir / f"run{suffix}.json", json.dumps(run_info(run, stamp), indent=1, default=str) + "\n")


def setup_logging(run_dir: Path) -> None:
    """lapo's log lines to stderr and, on the main process, to ``<run_dir>/lapo.log``."""
    root = logging.getLogger("lapo")
    root.setLevel(logging.INFO)
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s lapo %(levelname)s %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    for old in [h for h in root.handlers if getattr(h, "lapo_run_log", False)]:  # an earlier run in this process
        root.removeHandler(old)
        old.close()
    if is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(run_dir / LAPO_LOG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        file_handler.lapo_run_log = True
        root.addHandler(file_handler)
