"""The embedded default's reasoning task: count how often a letter occurs in a string.

A problem reads ``Count the letter "r" in "bdrar".``; its answer is a plain integer string (``"2"``).
The reasoning completion walks the string with a running count, then closes the think block and boxes the
answer, so the project's ordinary answer checker grades it::

    \\nb d r=1 a r=2\\n</think>\\boxed{2}

Why this task (measured before it was chosen: docs/EMBEDDED.md): every step is a copy or a successor lookup, which a model of about a
million parameters learns in minutes of CPU time, while arithmetic tables are not. The difficulty level sets
the string's length, so the minimal trace grows with the level, as reasoning grows with difficulty on MATH.

Overthinking traces (:func:`overthinking_completion`) add what reasoning models really add: "Wait, let me
recount" passes over the whole string and re-checks of its tail, in a right-skewed amount whose mean about
doubles the minimal length. They stay correct: redundancy, not errors.

Pure Python (no torch); lengths are counted in tokens of :mod:`lapo.models`' character-level tokenizer,
where each character is a token and each think tag is one token.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from typing import Any, Mapping

from lapo.errors import LapoError

LEVELS = (1, 2, 3, 4, 5)
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ALPHABET = string.ascii_lowercase
TEST_SHARE = 0.2  # fraction of all possible problems that belong to the test split

# Redundancy of the overthinking traces: a budget of extra tokens = minimal tokens * Gamma(shape, mean/shape),
# filled with re-check passes and capped at CAP * minimal. A Gamma of shape 0.5 is strongly right-skewed:
# about half the traces stop after one pass, a long tail re-checks several times. MEAN is set above 1 because
# the cap cuts the tail: the traces then average about twice the minimal length (tests/test_task_counting.py).
OVERTHINK_MEAN = 1.3
OVERTHINK_SHAPE = 0.5
OVERTHINK_CAP = 3.0

RECOUNT = "\nWait, let me recount: "
CHECK_FROM = "\nWait, check from {letter}: "
_PROBLEM = re.compile(r'^Count the letter "([a-z])" in "([a-z]+)"\.$')


def string_length(level: int) -> int:
    """Letters in a problem's string at ``level`` (1 -> 3 letters, each level adds 2)."""
    if level not in LEVELS:
        raise LapoError(f"level {level!r} is not one of {LEVELS}; pick a level from lapo.tasks.counting.LEVELS.")
    return 1 + 2 * level


def problem_text(target: str, letters: str) -> str:
    """The question shown to the model."""
    return f'Count the letter "{target}" in "{letters}".'


def parse_problem(problem: str | Mapping[str, Any] | Any) -> tuple[str, str]:
    """(target letter, string) of a problem given as text, a dict with ``problem``, or an object with ``.problem``."""
    text = problem if isinstance(problem, str) else (
        problem["problem"] if isinstance(problem, Mapping) else getattr(problem, "problem", None)
    )
    match = _PROBLEM.match(text or "")
    if match is None:
        raise ValueError(f"{text!r} is not a counting problem; expected text like {problem_text('r', 'bdrar')!r}.")
    return match.group(1), match.group(2)


def count_tokens(text: str) -> int:
    """Tokens of ``text`` under the character-level tokenizer: one per character, each think tag counts one."""
    return len(text) - sum((len(tag) - 1) * text.count(tag) for tag in (THINK_OPEN, THINK_CLOSE))


def _steps(target: str, letters: str) -> list[str]:
    """One step per letter: the letter, and for the target letter its running count (``r=2``)."""
    steps, count = [], 0
    for letter in letters:
        if letter == target:
            count += 1
            steps.append(f"{letter}={count}")
        else:
            steps.append(letter)
    return steps


def _closing(answer: int) -> str:
    return f"\n{THINK_CLOSE}\\boxed{{{answer}}}"


def minimal_completion(problem: str | Mapping[str, Any] | Any) -> str:
    """The shortest correct reasoning completion: one pass with a running count, then the boxed answer."""
    target, letters = parse_problem(problem)
    return "\n" + " ".join(_steps(target, letters)) + _closing(letters.count(target))


def _recheck(steps: list[str], start: int) -> str:
    """A redundant pass: the whole string again (start 0) or its tail from step ``start``."""
    if start == 0:
        return RECOUNT + " ".join(steps)
    return CHECK_FROM.format(letter=steps[start][0]) + " ".join(steps[start:])


def overthinking_completion(
    problem: str | Mapping[str, Any] | Any,
    rng: random.Random,
    *,
    mean: float = OVERTHINK_MEAN,
    shape: float = OVERTHINK_SHAPE,
    cap: float = OVERTHINK_CAP,
) -> str:
    """A correct completion with redundant re-checks, on average about twice the minimal length.

    The redundancy budget is drawn once per trace (right-skewed Gamma, capped at ``cap`` times the minimal
    length) and filled with re-check passes (a whole recount or the tail from a random letter).
    """
    target, letters = parse_problem(problem)
    steps = _steps(target, letters)
    minimal_tokens = count_tokens(minimal_completion(problem))
    budget = rng.gammavariate(shape, mean / shape) * minimal_tokens
    room = cap * minimal_tokens  # hard ceiling on the extra tokens, so generation lengths stay bounded
    passes = []
    while budget > 0:
        extra = _recheck(steps, rng.randrange(len(steps)))
        cost = count_tokens(extra)
        # The last pass is kept with probability budget/cost, so the expected extra length equals the budget.
        if cost > room or (cost > budget and rng.random() >= budget / cost):
            break
        passes.append(extra)
        budget -= cost
        room -= cost
    return "\n" + " ".join(steps) + "".join(passes) + _closing(letters.count(target))


def _split_of(text: str) -> str:
    """The split a problem belongs to, from a hash of its text: train and test can never share a problem."""
    bucket = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
    return "test" if bucket < TEST_SHARE else "train"


def _draw(rng: random.Random, level: int) -> str:
    """A random problem of ``level``: the count is uniform over 0..ceil(n/2), the other letters distinct."""
    n = string_length(level)
    target = rng.choice(ALPHABET)
    count = rng.randint(0, (n + 1) // 2)
    others = rng.sample([c for c in ALPHABET if c != target], n - count)
    positions = set(rng.sample(range(n), count))
    it = iter(others)
    letters = "".join(target if i in positions else next(it) for i in range(n))
    return problem_text(target, letters)


def make_problem(text: str, level: int) -> dict[str, Any]:
    """The record of one problem: id, problem, answer, level, minimal completion and its token count."""
    target, letters = parse_problem(text)
    minimal = minimal_completion(text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return {
        "id": f"counting-{level}-{digest}",
        "problem": text,
        "answer": str(letters.count(target)),
        "level": level,
        "minimal_completion": minimal,
        "min_tokens": count_tokens(minimal),
    }


def load_split(split: str, *, seed: int = 0, n: int = 500, levels: tuple[int, ...] = LEVELS) -> list[dict[str, Any]]:
    """``n`` distinct problems of ``split`` ("train" or "test"), levels in turn, the same for the same seed."""
    if split not in ("train", "test"):
        raise LapoError(f"split {split!r} is unknown; use 'train' or 'test'.")
    rng = random.Random(f"lapo-counting/{seed}/{split}")
    seen: set[str] = set()
    problems = []
    attempts = 0
    while len(problems) < n:
        level = levels[len(problems) % len(levels)]
        text = _draw(rng, level)
        attempts += 1
        if attempts > 100 * n + 1000:
            raise LapoError(f"could not draw {n} distinct {split} problems of the counting task; ask for fewer.")
        if text in seen or _split_of(text) != split:
            continue
        seen.add(text)
        problems.append(make_problem(text, level))
    return problems


def is_correct(completion: str, answer: str) -> bool:
    """True when the completion's last ``\\boxed{...}`` holds exactly ``answer`` (a cheap check for this task)."""
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", completion)
    return bool(boxed) and boxed[-1].strip() == str(answer).strip()
