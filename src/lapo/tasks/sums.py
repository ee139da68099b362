"""One-digit sums for a real pretrained model: ``What is 3 + 5?`` -> ``"8"``.

The task of ``lapo quickstart --model smollm2-135m-instruct`` (recipe ``smollm2-135m``): SmolLM2-135M-Instruct
solves about a third of one-digit sums and almost no two-digit ones, so one-digit sums leave GRPO something to
learn and something to shorten.

Difficulty levels (``LEVELS``) are the number of carries: level 1 has none (sum 0-9), level 2 carries
into the tens (sum 10-18).

Train and test never share a pair of addends. There are only 100 ordered pairs, so the split is made on the
unordered pair ``{a, b}`` (``3 + 5`` and ``5 + 3`` always land together; a model cannot have seen the
swapped sum in training): a fixed list of held-out pairs (:data:`TEST_PAIRS`, chosen once from a hash of the
pair, the same for every seed, with both levels present) is the test split, the rest is the train split.
Each pair is asked in several phrasings (:data:`PHRASINGS`), so the splits hold ``pairs x phrasings``
distinct problems; the seed only shuffles which problems come first.

Each problem has a minimal correct completion (:func:`minimal_completion`): the one-line sum, the closed
think block and the boxed answer, so the report can set each model's length against it.

Pure Python (no torch).
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any, Mapping

from lapo.errors import LapoError

LEVELS = (1, 2)  # number of carries
THINK_CLOSE = "</think>"
PHRASINGS = (
    "What is {a} + {b}?",
    "Compute {a} + {b}.",
    "What is the sum of {a} and {b}?",
    "Add {a} and {b}.",
)
TEST_SHARE = 0.3  # about this fraction of the unordered pairs is held out for the test split


def _held_out(a: int, b: int) -> bool:
    """Whether the unordered pair {a, b} belongs to the test split (a hash of the pair alone)."""
    lo, hi = sorted((a, b))
    digest = hashlib.sha256(f"lapo-sums/{lo}+{hi}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < TEST_SHARE


# Unordered pairs (a <= b) of the test split, fixed for every seed.
TEST_PAIRS: tuple[tuple[int, int], ...] = tuple((a, b) for a in range(10) for b in range(a, 10) if _held_out(a, b))

_PATTERNS = [re.compile("^" + re.escape(p).replace(r"\{a\}", r"(\d)").replace(r"\{b\}", r"(\d)") + "$")
             for p in PHRASINGS]


def level_of(a: int, b: int) -> int:
    """1 when ``a + b`` needs no carry (sum below 10), 2 when it carries into the tens."""
    return 1 if a + b < 10 else 2


def problem_text(a: int, b: int, phrasing: int = 0) -> str:
    """The question shown to the model, in phrasing ``phrasing`` (an index into :data:`PHRASINGS`)."""
    return PHRASINGS[phrasing].format(a=a, b=b)


def parse_problem(problem: str | Mapping[str, Any] | Any) -> tuple[int, int]:
    """(a, b) of a problem given as text, a dict with ``problem``, or an object with ``.problem``."""
    text = problem if isinstance(problem, str) else (
        problem["problem"] if isinstance(problem, Mapping) else getattr(problem, "problem", None)
    )
    for pattern in _PATTERNS:
        match = pattern.match(text or "")
        if match:
            return int(match.group(1)), int(match.group(2))
    raise ValueError(f"{text!r} is not a one-digit sum; expected text like {problem_text(3, 5)!r}.")


def minimal_completion(problem: str | Mapping[str, Any] | Any) -> str:
    """The shortest correct completion in the recipe's format: the sum on one line, then the boxed answer."""
    a, b = parse_problem(problem)
    return f"{a} + {b} = {a + b}\n{THINK_CLOSE}\n\\boxed{{{a + b}}}"


def make_problem(a: int, b: int, phrasing: int = 0) -> dict[str, Any]:
    """The record of one problem: id, problem, answer, level and minimal completion."""
    return {
        "id": f"sums-{a}-{b}-p{phrasing}",
        "problem": problem_text(a, b, phrasing),
        "answer": str(a + b),
        "level": level_of(a, b),
        "minimal_completion": minimal_completion(problem_text(a, b, phrasing)),
    }


def split_of(a: int, b: int) -> str:
    """"test" for a held-out pair (either order), else "train"."""
    return "test" if tuple(sorted((a, b))) in TEST_PAIRS else "train"


def all_problems(split: str) -> list[dict[str, Any]]:
    """Every problem of ``split`` in a fixed order: ordered pairs of the split times the phrasings."""
    if split not in ("train", "test"):
        raise LapoError(f"split {split!r} is unknown; use 'train' or 'test'.")
    return [make_problem(a, b, k) for a in range(10) for b in range(10) if split_of(a, b) == split
            for k in range(len(PHRASINGS))]


def load_split(split: str, *, seed: int = 0, n: int | None = None,
               levels: tuple[int, ...] = LEVELS) -> list[dict[str, Any]]:
    """``n`` distinct problems of ``split`` (default: all of them), levels in turn, the same for the same seed.

    Each level's problems are shuffled by ``seed``, then taken one level after the other, so any prefix is
    balanced across levels (while each level lasts). Asking for more problems than the split holds raises.
    """
    pool = all_problems(split)
    unknown = set(levels) - set(LEVELS)
    if unknown:
        raise LapoError(f"levels {sorted(unknown)} are not among {LEVELS}; pick levels from lapo.tasks.sums.LEVELS.")
    rng = random.Random(f"lapo-sums/{seed}/{split}")
    queues = []
    for level in levels:
        items = [p for p in pool if p["level"] == level]
        rng.shuffle(items)
        queues.append(items)
    total = sum(len(q) for q in queues)
    n = total if n is None else n
    if n > total:
        raise LapoError(f"the sums task's {split} split holds {total} problems at levels {tuple(levels)}; "
                         f"ask for at most {total} (got {n}).")
    out: list[dict[str, Any]] = []
    while len(out) < n:
        for queue in queues:
            if queue and len(out) < n:
                out.append(queue.pop())
    return out
