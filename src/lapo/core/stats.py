"""Per-problem length records of stage 1 and the targets stage 2 learns from.

Stage 1 of LAPO records, for each problem, the lengths of its correct completions; the median of those is
the problem's target length N in stage 2 (arXiv 2507.15758, section 3.1). This module keeps every record
(problem, step, epoch, correct lengths, group size), so the target can follow any policy:

- ``last``: the median of the last group that had a correct completion (the reference's "last write
  wins", minus its bug: a late group with no correct answer never erases an earlier target);
- ``stage``: the median of all correct lengths seen in the stage;
- ``last_epoch``: the median of the correct lengths of the problem's last epoch with any.

Problems never solved get a fallback target (the reference's sentinel 4096 = max completion length).
Files are JSON lines written by an atomic replace: a crash mid-write leaves the previous complete file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from lapo.core.io import atomic_write_text, looks_binary
from lapo.core.length import median, percentile
from lapo.errors import LapoError

POLICIES = ("last", "stage", "last_epoch")


@dataclass(frozen=True)
class LengthRecord:
    """The correct lengths of one group of one problem at one training step."""

    problem_id: str
    step: int
    lengths: tuple[int, ...]
    num_samples: int
    epoch: int = 0

    @classmethod
    def from_json(cls, data: dict) -> "LengthRecord":
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        lengths = tuple(int(n) for n in data["lengths"])
        if any(n < 0 for n in lengths):
            raise ValueError("negative length")
        return cls(str(data["problem_id"]), int(data["step"]), lengths, int(data["num_samples"]), int(data.get("epoch", 0)))


class LengthStats:
    """All length records of a stage; the one owner of stage 1's statistics."""

    def __init__(self, records: Iterable[LengthRecord] = ()):
        self._records: list[LengthRecord] = []
        self._seen: set[LengthRecord] = set()
        for record in records:
            self._add(record)

    def _add(self, record: LengthRecord) -> None:
        # Identical records (same problem, step, epoch, lengths) are one record: merging the same file
        # twice, or the copies several processes kept of one gathered group, must not count it twice.
        if record not in self._seen:
            self._seen.add(record)
            self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LengthStats) and sorted(self._records, key=_order) == sorted(other._records, key=_order)

    @property
    def records(self) -> list[LengthRecord]:
        return list(self._records)

    def record(
        self, problem_id: str, step: int, correct_lengths: Sequence[int], num_samples: int, epoch: int = 0
    ) -> None:
        """Add one group's correct lengths (an empty list records that the problem went unsolved)."""
        self._add(LengthRecord(str(problem_id), int(step), tuple(int(n) for n in correct_lengths), int(num_samples), int(epoch)))

    def problem_ids(self) -> list[str]:
        return sorted({r.problem_id for r in self._records})

    def latest_step(self) -> int:
        return max((r.step for r in self._records), default=0)

    def truncated(self, step: int) -> "LengthStats":
        """The records up to and including ``step`` (what a checkpoint at that step had seen)."""
        return LengthStats(r for r in self._records if r.step <= step)

    # ---------------------------------------------------------------------------------------------- targets

    def target(self, problem_id: str, policy: str = "last") -> float | None:
        """The problem's median correct length under ``policy``; None when it was never solved."""
        return self.medians(policy, [problem_id]).get(str(problem_id))

    def medians(self, policy: str = "last", problem_ids: Iterable[str] | None = None) -> dict[str, float | None]:
        """Median correct length per problem under ``policy`` (None: never solved), in one pass."""
        _check_policy(policy)
        by_problem: dict[str, list[LengthRecord]] = {str(pid): [] for pid in (problem_ids or ())}
        for r in self._records:
            if problem_ids is None or r.problem_id in by_problem:
                by_problem.setdefault(r.problem_id, [])
                if r.lengths:
                    by_problem[r.problem_id].append(r)
        return {pid: _target_of(groups, policy) for pid, groups in sorted(by_problem.items())}

    def targets(
        self, policy: str = "last", fallback: int = 4096, problem_ids: Iterable[str] | None = None
    ) -> dict[str, int]:
        """Target length per problem (rounded to whole tokens); never-solved problems get ``fallback``.

        With ``problem_ids`` the map covers exactly those problems, including ones stage 1 never sampled.
        """
        medians = self.medians(policy, problem_ids)
        return {pid: int(round(m)) if m is not None else int(fallback) for pid, m in medians.items()}

    # ---------------------------------------------------------------------------------------------- merge

    def merge(self, other: "LengthStats") -> "LengthStats":
        """A new store holding the records of both (identical records once)."""
        return LengthStats([*self._records, *other._records])

    @classmethod
    def merged(cls, stores: Iterable["LengthStats"]) -> "LengthStats":
        return cls(r for store in stores for r in store._records)

    # ---------------------------------------------------------------------------------------------- I/O

    def state_dict(self) -> dict:
        return {"records": [asdict(r) | {"lengths": list(r.lengths)} for r in self._records]}

    @classmethod
    def from_state_dict(cls, state: dict) -> "LengthStats":
        return cls(LengthRecord.from_json(r) for r in state["records"])

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON lines atomically: a temp file in the same folder, fsync, then ``os.replace``."""
        lines = [json.dumps(r) for r in self.state_dict()["records"]]
        return atomic_write_text(path, "".join(line + "\n" for line in lines))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LengthStats":
        """Read a file written by :meth:`save`; a truncated or corrupt line is refused with path and line."""
        path = Path(path)
        if not path.is_file():
            raise LapoError(f"no length-statistics file at {path}: run stage 1 first or pass the right path "
                            "(RUN/discovery/length_stats.jsonl).")
        records = []
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if not line.endswith("\n"):
                    raise LapoError(f"{path}:{number}: the last line is truncated (no newline); the file is "
                                    "incomplete: remove that line or use an earlier checkpoint's copy.")
                records.append(_record(path, number, line))
        return cls(records)

    # ---------------------------------------------------------------------------------------------- summary

    def summary(self, policy: str = "last", bins: int = 10) -> dict:
        """Counts, target quantiles and a histogram of targets: what `lapo stats` prints."""
        solved = {pid: t for pid, t in self.medians(policy).items() if t is not None}
        all_lengths = [n for r in self._records for n in r.lengths]
        values = sorted(solved.values())
        summary = {
            "records": len(self._records),
            "problems": len(self.problem_ids()),
            "solved_problems": len(solved),
            "correct_completions": len(all_lengths),
            "sampled_completions": sum(r.num_samples for r in self._records),
            "steps": len({r.step for r in self._records}),
            "policy": policy,
        }
        if values:
            summary["target_quantiles"] = {f"p{q}": percentile(values, q) for q in (0, 10, 25, 50, 75, 90, 100)}
            summary["target_histogram"] = histogram(values, bins)
        return summary


def _record(path: Path, number: int, line: str) -> LengthRecord:
    """One line of a statistics file; anything else is a :class:`LapoError` naming the file and the line."""
    if looks_binary(line):
        raise LapoError(f"{path}:{number}: holds NUL bytes (a binary file?); pass the length_stats.jsonl that "
                        "`lapo train` writes.")
    try:
        return LengthRecord.from_json(json.loads(line))
    except (ValueError, KeyError, TypeError) as error:
        detail = f"missing field {error}" if isinstance(error, KeyError) else str(error)
        raise LapoError(f"{path}:{number}: not a length record ({detail}); each line must be an object "
                        '{"problem_id", "step", "lengths", "num_samples", "epoch"?}: the file is corrupt, or not '
                        "a length_stats.jsonl.") from None


def _order(r: LengthRecord) -> tuple:
    return (r.problem_id, r.step, r.epoch, r.lengths, r.num_samples)


def _check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise LapoError(f"target policy {policy!r} is unknown: use one of {', '.join(POLICIES)}.")


def _target_of(groups: list[LengthRecord], policy: str) -> float | None:
    """Median correct length of the groups (all of which have a correct completion) under ``policy``."""
    _check_policy(policy)
    if not groups:
        return None
    ordered = sorted(groups, key=lambda r: (r.epoch, r.step))
    if policy == "last":
        return median(ordered[-1].lengths)
    if policy == "last_epoch":
        last = ordered[-1].epoch
        return median([n for r in ordered if r.epoch == last for n in r.lengths])
    return median([n for r in ordered for n in r.lengths])


def tighten_target(targets: dict[str, int], problem_id: str, group_median: float | None) -> bool:
    """Stage 2's online tightening: lower a problem's target to a shorter group median. True if it moved.

    The reference intended this but wrote under a different key than it read; here the map that renders
    the prompts is the one updated.
    """
    if group_median is None or problem_id not in targets:
        return False
    new = int(round(group_median))
    if 0 < new < targets[problem_id]:
        targets[problem_id] = new
        return True
    return False


def histogram(values: Sequence[float], bins: int = 10) -> list[dict]:
    """Equal-width bins over [min, max]: ``[{"low", "high", "count"}, ...]``."""
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins if hi > lo else 1.0
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return [{"low": lo + i * width, "high": lo + (i + 1) * width, "count": c} for i, c in enumerate(counts)]
