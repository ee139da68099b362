"""What a sample is drawn with and where it is kept: per-problem budgets, per-sample seeds, and the files
of one evaluation folder (``samples.jsonl`` appended batch by batch, ``eval_config.json``, ``summary.json``).

An interrupted evaluation resumes from these files: finished samples are read back, a torn last line is
cut, and a resume under other sampling settings is refused. No torch import.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lapo.core.io import load_targets, read_json, write_json
from lapo.errors import LapoError


@dataclass
class Generation:
    """One finished sample: its token ids up to and including EOS, and whether it ran out of tokens."""

    token_ids: list[int]
    truncated: bool


SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "eval_config.json"
# Settings that change what a sample is: a resumed run must use the same ones (k, limit, batch size and
# backend may change, they only decide which samples exist and how fast they come).
SAMPLE_DEFINING = ("model", "dataset", "split", "temperature", "top_p", "max_new_tokens", "seed", "data_seed",
                   "budget", "prompt_format", "answer_fallback")


# --------------------------------------------------------------------------------------------------
# Budgets: none (the paper's plain prompt), a stage-1 target map, or one fixed N


def parse_budget_spec(spec: str) -> tuple[str, str | int | None]:
    """``none`` -> ("none", None); ``fixed:N`` -> ("fixed", N); ``targets:PATH`` -> ("targets", PATH)."""
    kind, _, value = spec.partition(":")
    if kind == "none" and not value:
        return "none", None
    if kind == "fixed" and value.strip().isdigit() and int(value) > 0:
        return "fixed", int(value)
    if kind == "targets" and value:
        return "targets", value
    if kind == "sweep":
        items = [v.strip() for v in value.split(",")]
        if items and all(v.isdigit() and int(v) > 0 for v in items):
            return "sweep", [int(v) for v in items]
    raise LapoError(f"--budget {spec!r} is not understood: use none, fixed:N (N > 0), sweep:N1,N2,... or "
                    "targets:PATH (a targets.json or the run directory holding one).")


def assign_budgets(problem_ids: Sequence[str], spec: str) -> tuple[dict[str, int | None], list[str]]:
    """Each problem's budget under ``spec``, and the ids the target map lacks (evaluated without one)."""
    kind, value = parse_budget_spec(spec)
    if kind == "none":
        return {pid: None for pid in problem_ids}, []
    if kind == "fixed":
        return {pid: int(value) for pid in problem_ids}, []
    if kind == "sweep":
        raise LapoError(f"--budget {spec} is a sweep: run it with `lapo eval` (lapo.eval.evaluate.run_sweep), one "
                        "evaluation per N.")
    targets = load_targets(str(value))
    missing = [pid for pid in problem_ids if pid not in targets]
    if len(missing) == len(problem_ids):
        raise LapoError(f"none of the {len(problem_ids)} problems is in the target map {value}: a stage-1 map "
                        "holds training problems; evaluate those, or use --budget fixed:N.")
    return {pid: targets.get(pid) for pid in problem_ids}, missing


# --------------------------------------------------------------------------------------------------
# Samples on disk: seeds, records, resume, flushed appends


def sample_seed(seed: int, problem_id: str, index: int) -> int:
    """A seed that depends only on (seed, problem, sample index), so a sample is the same whatever batch it
    lands in and a resumed run draws exactly what the interrupted one would have."""
    digest = hashlib.sha256(f"{seed}\0{problem_id}\0{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def sample_record(problem, index: int, gen: Generation, text: str, correct: bool, budget: int | None,
                  minimal: int | None, predicted: str | None) -> dict:
    """One line of samples.jsonl."""
    record = {
        "problem_id": problem.id, "sample": index, "level": problem.level, "subject": problem.subject,
        "budget": budget, "tokens": len(gen.token_ids), "truncated": gen.truncated, "correct": bool(correct),
        "predicted": predicted, "answer": problem.answer, "completion": text,
    }
    if minimal is not None:
        record["minimal_tokens"] = minimal
    return record


def minimal_tokens(problem, tokenizer) -> int | None:
    """Tokens of the problem's known minimal correct completion plus EOS, counted like a sample; None if unknown."""
    meta = getattr(problem, "meta", None) or {}
    if meta.get("minimal_completion"):
        return len(tokenizer(meta["minimal_completion"], add_special_tokens=False)["input_ids"]) + 1
    return int(meta["min_tokens"]) + 1 if meta.get("min_tokens") is not None else None


def read_samples(path: Path) -> dict[tuple[str, int], dict]:
    """The finished samples of ``path`` by (problem id, sample index); a torn last line is dropped."""
    done: dict[tuple[str, int], dict] = {}
    if not path.exists():
        return done
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a write cut short by an interruption; that sample is generated again
            if isinstance(r, dict) and "problem_id" in r and "sample" in r:
                done[(str(r["problem_id"]), int(r["sample"]))] = r
    return done


def repair_tail(path: Path) -> None:
    """Cut an unterminated last line so the next append starts on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def append_samples(path: Path, records: Sequence[dict]) -> None:
    """Append records and flush them to disk, so an interruption loses at most the batch in flight."""
    with path.open("a", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def exclusive(out: Path):
    """Hold ``<out>/.lock`` while evaluating: two evaluations appending to one samples.jsonl would each
    generate the other's missing samples twice."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, as before
        yield
        return
    with (out / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LapoError(f"another lapo eval is writing to {out}; wait for it to finish or choose another "
                            "--out.") from None
        yield


def check_resumable(out: Path, config: dict) -> None:
    """Refuse to mix samples drawn under different settings in one output directory."""
    path = out / CONFIG_FILE
    if not path.exists():
        return
    old = read_json(path, "evaluation settings")
    if not isinstance(old, dict):
        raise LapoError(f"{path} is not an object of settings; the file is corrupt: remove it, or pass --overwrite "
                        "to start again.")
    diff = [k for k in SAMPLE_DEFINING if old.get(k) != config.get(k)]
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in diff)
        raise LapoError(f"{out} holds samples drawn with other settings ({shown}); choose another --out or "
                        "pass --overwrite to start again.")


def prepare_out(out: Path, config: dict, overwrite: bool) -> None:
    """Create (or, with overwrite, empty) the output directory and check that a resume is consistent."""
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in (SAMPLES_FILE, SUMMARY_FILE, CONFIG_FILE):
            (out / name).unlink(missing_ok=True)
    check_resumable(out, config)
    write_json(out / CONFIG_FILE, config)
    repair_tail(out / SAMPLES_FILE)
