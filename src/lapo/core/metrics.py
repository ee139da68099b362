"""Evaluation metrics as plain functions of per-sample records (no torch import), checked by tables.

A record is a dict with the fields of one ``samples.jsonl`` line (problem_id, tokens, correct, truncated,
level, subject, budget, minimal_tokens); :func:`summarize` turns a list of them into the metrics of a
``summary.json``.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from lapo.core.length import median, relative_deviation


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, None for no values."""
    return sum(values) / len(values) if values else None


def pass_at_1(records: Iterable[dict]) -> float | None:
    """Mean over problems of each problem's mean accuracy over its samples (so every problem weighs the same
    whatever its number of samples)."""
    per_problem: dict[str, list[bool]] = {}
    for r in records:
        per_problem.setdefault(r["problem_id"], []).append(bool(r["correct"]))
    return mean([sum(v) / len(v) for v in per_problem.values()])


def group_metrics(records: Sequence[dict]) -> dict:
    """Pass@1, token statistics and truncation rate of a set of samples."""
    tokens = [r["tokens"] for r in records]
    correct_tokens = [r["tokens"] for r in records if r["correct"]]
    return {
        "num_problems": len({r["problem_id"] for r in records}),
        "num_samples": len(records),
        "pass_at_1": pass_at_1(records),
        "mean_tokens": mean(tokens),
        "median_tokens": median(tokens),
        "mean_tokens_correct": mean(correct_tokens),
        "truncation_rate": mean([float(r["truncated"]) for r in records]),
        "minimal_tokens": _mean_minimal(records),
    }


def _mean_minimal(records: Sequence[dict]) -> float | None:
    """Mean over problems of the known minimal correct length (built-in task only), None when unknown."""
    per_problem = {r["problem_id"]: r["minimal_tokens"] for r in records if r.get("minimal_tokens") is not None}
    return mean(list(per_problem.values()))


def breakdown(records: Sequence[dict], field: str) -> dict[str, dict]:
    """:func:`group_metrics` per value of ``field`` (e.g. level), sorted naturally; None when no record has one."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r.get(field) is not None:
            groups.setdefault(str(r[field]), []).append(r)
    if not groups:
        return {}
    order = sorted(groups, key=lambda k: (0, float(k), k) if _is_number(k) else (1, 0.0, k))
    return {k: group_metrics(groups[k]) for k in order}


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of the ranks they span (the convention of Spearman's rho)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            out[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None with fewer than two points or when either side is constant."""
    if len(x) != len(y):
        raise ValueError(f"pearson needs two sequences of one length, got {len(x)} and {len(y)}.")
    if len(x) < 2:
        return None
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson on tie-averaged ranks), as scipy.stats.spearmanr computes it."""
    return pearson(ranks(x), ranks(y))


BUDGET_TOLERANCE = 0.1  # a sample is "off budget" when |L - N| / N exceeds this (the within-10% figure's mirror)


def adherence(records: Sequence[dict], tolerance: float = BUDGET_TOLERANCE) -> dict | None:
    """How well lengths L keep to budgets N: mean |L - N| / N, L1's signed mean relative error (L - N) / N
    (negative: shorter than asked) and the share of samples off by more than ``tolerance``, Spearman rho of L
    with N, share within 10%.

    Only samples that carried a budget count; None when none did. Rho is None for a single budget value
    (``fixed:N``), where a rank correlation means nothing.
    """
    pairs = [(r["tokens"], r["budget"]) for r in records if r.get("budget")]
    if not pairs:
        return None
    rel = [abs(length - n) / n for length, n in pairs]
    return {
        "num_samples": len(pairs),
        # The training log's budget_deviation, so eval and training figures compare one to one.
        "mean_rel_error": relative_deviation([p[0] for p in pairs], [p[1] for p in pairs]),
        "signed_rel_error": mean([(length - n) / n for length, n in pairs]),
        "tolerance": tolerance,
        "off_budget": mean([float(e > tolerance) for e in rel]),
        "within_10pct": mean([float(e <= 0.10) for e in rel]),
        "spearman": spearman([p[0] for p in pairs], [p[1] for p in pairs]),
        "mean_budget": mean([p[1] for p in pairs]),
    }


def summarize(records: Sequence[dict], tolerance: float = BUDGET_TOLERANCE) -> dict:
    """Every metric of the summary JSON from the sample records (``settings`` etc. are added by the caller)."""
    summary = group_metrics(records)
    summary["by_level"] = breakdown(records, "level")
    summary["by_subject"] = breakdown(records, "subject")
    summary["budget_adherence"] = adherence(records, tolerance)
    return summary
