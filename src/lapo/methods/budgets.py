"""Budgets drawn per problem for the budget methods (L1): seeded, the same whatever the process or order."""

from __future__ import annotations

import hashlib
from typing import Iterable


def draw_budget(problem_id: str, low: int, high: int, seed: int) -> int:
    """N ~ U(low, high) (integers, both ends included) for one problem, a function of (seed, problem id) alone,
    so every process, a resumed run and a re-run show a problem the same N (L1 draws N ~ U(100, 4000))."""
    digest = hashlib.sha256(f"{seed}:{problem_id}".encode("utf-8")).digest()
    return int(low) + int.from_bytes(digest[:8], "big") % (int(high) - int(low) + 1)


def draw_budgets(problem_ids: Iterable[str], low: int, high: int, seed: int) -> dict[str, int]:
    """{problem id: N} for every problem."""
    return {str(p): draw_budget(str(p), low, high, seed) for p in problem_ids}
