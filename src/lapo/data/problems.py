"""Problems: one loader for training, evaluation and the quickstart.

A *problem* is a question, its gold answer and a stable id (:class:`Problem`). :func:`load_problems` reads them
from any source :mod:`lapo.data.sources` knows (a local file, a benchmark name, a hub id, a built-in task),
leaves out rows whose gold answer no completion could match, and refuses duplicate ids.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from lapo.data.sources import ANSWER_FIXES, resolve
from lapo.errors import LapoError

logger = logging.getLogger(__name__)


@dataclass
class Problem:
    """One question with its gold answer; ``id`` is stable across runs (the id field or a text hash)."""

    id: str
    problem: str
    answer: str
    level: int | None = None
    subject: str | None = None
    meta: dict = field(default_factory=dict)


def problem_id(text: str) -> str:
    """A stable id from the problem text alone: the same problem gets the same id in every run."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _as_answer(value: Any) -> str:
    """Gold answers as strings: 27.0 -> '27', ['3'] -> '3' (OlympiadBench stores one-element lists)."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(_as_answer(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


def gold_is_checkable(answer: str, checker: Any = None) -> bool:
    """Whether any completion could ever be graded correct against the gold ``answer``.

    The gold must be a sane answer (``lapo.core.equivalence.is_valid_gold``: non-empty, of sane length)
    that comes back as itself from ``\\boxed{answer}`` and that the answer checker accepts against itself.
    ``\\frac{`` or ``}{`` unbalance the box and a gold of LaTeX noise normalises to nothing: no completion
    could match them, so their problem would only ever teach "never solved". With the round trip exact,
    the checker's fast path decides (no math-verify call); ``checker`` defaults to one without workers.
    """
    from lapo.core.checker import AnswerChecker
    from lapo.core.equivalence import is_valid_gold
    from lapo.core.extract import extract_boxed

    if not is_valid_gold(answer):
        return False
    boxed = "\\boxed{" + answer + "}"
    if extract_boxed(boxed) != answer.strip():
        return False
    if checker is None:
        with AnswerChecker(workers=0) as own:
            return own.check(boxed, answer)
    return checker.check(boxed, answer)


def _check_fields(rows: list[dict], source: str, problem_field: str, answer_field: str) -> None:
    """A missing problem/answer column is a configuration error: name it and the columns there are."""
    if not rows:
        return
    columns = sorted(rows[0])
    for role, name in (("problem", problem_field), ("answer", answer_field)):
        if name not in rows[0]:
            raise LapoError(
                f"dataset {source!r} has no {role} field {name!r} (its fields are {columns}); "
                f"set `{role}_field` to the column that holds the {role}."
            )


def _to_problem(row: Mapping, problem_field: str, answer_field: str, id_field: str, level_field: str) -> Problem:
    text = str(row[problem_field])
    raw_id = row.get(id_field)
    level = row.get(level_field)
    known = {problem_field, answer_field, id_field, level_field, "subject"}
    return Problem(
        id=str(raw_id) if raw_id not in (None, "") else problem_id(text),
        problem=text,
        answer=_as_answer(row[answer_field]),
        level=_as_level(level),
        subject=row.get("subject"),
        meta={k: v for k, v in row.items() if k not in known},
    )


def _as_level(value: Any) -> int | None:
    """MATH levels come as 3 or 'Level 3'; anything else is no level."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.split()[-1:] and value.split()[-1].isdigit():
        return int(value.split()[-1])
    return None


def check_unique_ids(problems: Iterable[Problem], source: str = "dataset") -> None:
    """Two problems under one id would share one length target: refuse, naming the ids."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for p in problems:
        if p.id in seen and p.id not in duplicates:
            duplicates.append(p.id)
        seen.add(p.id)
    if duplicates:
        shown = ", ".join(repr(d) for d in duplicates[:5]) + (" ..." if len(duplicates) > 5 else "")
        raise LapoError(
            f"{source} has {len(duplicates)} duplicate problem id(s): {shown}; make the id field unique "
            "or set `id_field` to a column that does not exist so ids come from the problem text."
        )


def load_problems(
    source: str,
    *,
    split: str = "train",
    problem_field: str = "problem",
    answer_field: str = "answer",
    id_field: str = "id",
    level_field: str = "level",
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[Problem]:
    """Load problems from a local file, a benchmark name, a hub id or the built-in ``counting`` task.

    Rows whose gold answer is empty or cannot be checked are left out (their count is logged) so they are
    never rewarded as correct; duplicate ids raise. ``seed`` only matters for generated tasks (``counting``).
    """
    rows, fields = resolve(source, split, data_dir, seed, limit)
    names = {role: fields.get(role, given) for role, given in (("problem", problem_field), ("answer", answer_field),
                                                                ("id", id_field), ("level", level_field))}
    _check_fields(rows, source, names["problem"], names["answer"])
    fix = ANSWER_FIXES.get(source) if fields else None
    problems, empty, unparseable = _usable_problems(rows, names, fix)
    if empty or unparseable:
        _log_left_out(source, len(rows), empty, unparseable)
    check_unique_ids(problems, repr(source))
    return problems[:limit] if limit is not None else problems


def _usable_problems(rows: list[dict], names: dict[str, str], fix: Callable | None) -> tuple[list, int, list]:
    """(problems, rows with an empty problem or answer, problems whose gold answer cannot be checked)."""
    from lapo.core.checker import AnswerChecker

    problems, empty, unparseable = [], 0, []
    with AnswerChecker(workers=0) as checker:  # golds are decided by its fast path: no worker is needed
        for row in rows:
            if row.get(names["problem"]) is None or row.get(names["answer"]) is None:
                empty += 1
                continue
            if fix is not None:
                row = {**row, names["answer"]: fix(row[names["answer"]])}
            problem = _to_problem(row, names["problem"], names["answer"], names["id"], names["level"])
            if not problem.problem.strip() or not problem.answer:
                empty += 1
            elif not gold_is_checkable(problem.answer, checker):
                unparseable.append(problem)
            else:
                problems.append(problem)
    return problems, empty, unparseable


def _log_left_out(source: str, total: int, empty: int, unparseable: list[Problem]) -> None:
    """One warning: how many rows were left out, why, and which problems had an unusable gold answer."""
    shown = ", ".join(f"{p.id!r} ({_short(p.answer)})" for p in unparseable[:3]) + (" ..." if len(unparseable) > 3 else "")
    logger.warning(
        "%s: left out %d of %d rows (%d with an empty problem or gold answer, %d whose gold answer cannot be "
        "checked%s); they would never be graded correct",
        source, empty + len(unparseable), total, empty, len(unparseable), f": {shown}" if unparseable else "",
    )


def _short(text: str, limit: int = 30) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... {len(text)} characters"
