"""The length-control methods' rewards, one plain function per method, each on one whole group.

``correct`` holds acc in {0, 1} and ``lengths`` the completion tokens L of one problem's group of
``num_generations`` completions (never a slice: group-aware methods are only right on the whole group,
docs/METHOD.md section 9). Every function returns a :class:`lapo.core.length.GroupScore` with one reward
per completion and every constant is a keyword whose default is its paper's value (docs/METHODS.md):

- ``plain``: r = acc (GRPO with the correctness reward alone);
- ``l1_exact``: r = acc - alpha |N - L| (L1 / LCPO-Exact, Aggarwal & Welleck 2025, alpha = 0.0003);
- ``l1_max``: r = acc * clip(alpha (N - L) + delta, 0, 1) (LCPO-Max, alpha = 0.0003, delta = 0.5);
- ``thinkprune``: r = acc if L <= cap else 0 (ThinkPrune, Hou et al. 2025);
- ``kimi``: Kimi k1.5's length reward (Kimi Team 2025), lambda = 0.5 - (L - Lmin) / (Lmax - Lmin);
- ``shorterbetter``: r = 2 acc - 0.001 |L - SOL| (ShorterBetter, Yi et al. 2025);
- ``arora_zanette``: r = acc (1 - 0.1 sigmoid((L - mean_c) / (std_c + 1e-7))) (Arora & Zanette 2025);
- ``dapo_overlong``: r = acc + DAPO's soft overlong punishment (Yu et al. 2025), cache = max length / 5;
- ``lapo_d`` / ``lapo_i``: LAPO's two stages, :func:`lapo.core.length.discovery_rewards` and
  :func:`lapo.core.length.internalization_rewards` (not written twice).
"""

from __future__ import annotations

import math
from typing import Sequence

from lapo.core import length
from lapo.core.length import GroupScore

L1_ALPHA = 0.0003  # L1 (arXiv 2503.04697), section 3: the penalty per token off the budget
L1_MAX_DELTA = 0.5  # LCPO-Max's offset: a correct answer exactly at its budget earns 0.5
KIMI_WEIGHT = 1.0  # Kimi k1.5 (arXiv 2501.12599), section 2.3.3: the length reward is added with weight 1
SHORTERBETTER_ACC = 2.0  # ShorterBetter (arXiv 2504.21370): alpha, the weight of correctness
SHORTERBETTER_BETA = 0.001  # beta, the penalty per token away from the sample optimal length
ARORA_ALPHA = 0.1  # Arora & Zanette (arXiv 2502.04463): alpha, the largest share of the reward length may take
ARORA_EPS = 1e-7  # keeps the z-score finite when every correct length is the same
DAPO_CACHE_SHARE = 0.2  # DAPO (arXiv 2503.14476): L_cache = 4096 of L_max = 20480, one fifth


def _check(correct: Sequence[bool], lengths: Sequence[int]) -> tuple[list[float], list[int]]:
    if len(correct) != len(lengths):
        raise ValueError(
            f"a group has {len(correct)} correctness flags but {len(lengths)} lengths: pass one of each per completion."
        )
    return [1.0 if ok else 0.0 for ok in correct], [int(n) for n in lengths]


def _score(rewards: list[float], acc: list[float], lengths: list[int], **extra) -> GroupScore:
    """The rewards, with ``length_rewards`` = what the length part added or took (reward - acc)."""
    correct_lengths = [n for n, a in zip(lengths, acc) if a]
    return GroupScore(rewards, [r - a for r, a in zip(rewards, acc)], correct_lengths=correct_lengths, **extra)


def plain(correct: Sequence[bool], lengths: Sequence[int]) -> GroupScore:
    """r = acc: plain GRPO, the baseline every length method needs at the same max length."""
    acc, lengths = _check(correct, lengths)
    return _score(list(acc), acc, lengths)


def _budgets(budgets: Sequence[float] | None, size: int) -> list[float]:
    if budgets is None or len(budgets) != size or any(b is None or b <= 0 for b in budgets):
        raise ValueError(f"a budget method needs one positive budget N per completion, got {budgets!r}.")
    return [float(b) for b in budgets]


def l1_exact(correct, lengths, budgets: Sequence[float], *, alpha: float = L1_ALPHA) -> GroupScore:
    """LCPO-Exact: r = acc - alpha * |N - L|, N the budget of the prompt ("Think for N tokens.")."""
    acc, lengths = _check(correct, lengths)
    ns = _budgets(budgets, len(lengths))
    return _score([a - alpha * abs(n - L) for a, n, L in zip(acc, ns, lengths)], acc, lengths)


def l1_max(correct, lengths, budgets: Sequence[float], *, alpha: float = L1_ALPHA,
           delta: float = L1_MAX_DELTA) -> GroupScore:
    """LCPO-Max: r = acc * clip(alpha * (N - L) + delta, 0, 1), N from "Think for maximum N tokens."."""
    acc, lengths = _check(correct, lengths)
    ns = _budgets(budgets, len(lengths))
    rewards = [a * min(1.0, max(0.0, alpha * (n - L) + delta)) for a, n, L in zip(acc, ns, lengths)]
    return _score(rewards, acc, lengths)


def thinkprune(correct, lengths, cap: float) -> GroupScore:
    """ThinkPrune: r = acc if L <= cap else 0; the cap is also the generation limit of the round."""
    acc, lengths = _check(correct, lengths)
    return _score([a if L <= cap else 0.0 for a, L in zip(acc, lengths)], acc, lengths)


def kimi(correct, lengths, *, weight: float = KIMI_WEIGHT) -> GroupScore:
    """Kimi k1.5: lambda = 0.5 - (L - Lmin) / (Lmax - Lmin) over the whole group (0 when all lengths are
    equal); r = acc + weight * (lambda if correct else min(0, lambda))."""
    acc, lengths = _check(correct, lengths)
    lo, hi = min(lengths), max(lengths)
    lams = [0.5 - (L - lo) / (hi - lo) if hi > lo else 0.0 for L in lengths]
    return _score([a + weight * (lam if a else min(0.0, lam)) for a, lam in zip(acc, lams)], acc, lengths)


def shorterbetter(correct, lengths, *, alpha: float = SHORTERBETTER_ACC, beta: float = SHORTERBETTER_BETA) -> GroupScore:
    """ShorterBetter: r = alpha * acc - beta * |L - SOL|; SOL (the sample optimal length) is the group's
    shortest correct length, or its mean length when no completion is correct."""
    acc, lengths = _check(correct, lengths)
    right = [L for L, a in zip(lengths, acc) if a]
    sol = float(min(right)) if right else sum(lengths) / len(lengths)
    rewards = [alpha * a - beta * abs(L - sol) for a, L in zip(acc, lengths)]
    score = _score(rewards, acc, lengths, target=sol)
    return score


def _sigmoid(x: float) -> float:
    # Written to never overflow: exp of a large positive argument is avoided on either side.
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def arora_zanette(correct, lengths, *, alpha: float = ARORA_ALPHA, eps: float = ARORA_EPS) -> GroupScore:
    """Arora & Zanette: r = acc * (1 - alpha * sigmoid((L - mean_c) / (std_c + eps))), mean and population
    standard deviation over the group's correct lengths."""
    acc, lengths = _check(correct, lengths)
    right = [L for L, a in zip(lengths, acc) if a]
    if not right:
        return _score([0.0] * len(lengths), acc, lengths)
    mean = sum(right) / len(right)
    std = math.sqrt(sum((L - mean) ** 2 for L in right) / len(right))
    rewards = [a * (1.0 - alpha * _sigmoid((L - mean) / (std + eps))) for a, L in zip(acc, lengths)]
    return _score(rewards, acc, lengths)


def overlong_penalty(length_: float, max_length: float, cache: float) -> float:
    """DAPO's soft overlong punishment: 0 up to max - cache, linear to -1 at max, -1 beyond."""
    if length_ <= max_length - cache:
        return 0.0
    if length_ <= max_length:
        return (max_length - cache - length_) / cache
    return -1.0


def dapo_overlong(correct, lengths, max_length: float, *, cache: float | None = None) -> GroupScore:
    """DAPO: r = acc + overlong_penalty(L), L_max = the max completion length, L_cache = L_max / 5 by default."""
    acc, lengths = _check(correct, lengths)
    c = max_length * DAPO_CACHE_SHARE if cache is None else cache
    return _score([a + overlong_penalty(L, max_length, c) for a, L in zip(acc, lengths)], acc, lengths)


def lapo_d(correct, lengths, *, weight: float = length.DISCOVERY_WEIGHT, low: float = length.BAND_LOW,
           high: float = length.BAND_HIGH, decay: float = length.DECAY_TOKENS) -> GroupScore:
    """LAPO-D (stage 1): acc + 0.7 * band reward over the group's [P30, P70] band (lapo.core.length)."""
    return length.discovery_rewards(correct, lengths, weight=weight, low=low, high=high, decay=decay)


def lapo_i(correct, lengths, budgets: Sequence[float | None] | None = None, *,
           weight: float = length.INTERNALIZATION_WEIGHT, sigma: float = length.SIGMA_TOKENS) -> GroupScore:
    """LAPO-I (stage 2): acc + 0.8 * Gaussian around the group's target N (lapo.core.length); no budget (or
    None) means the group's median correct length, as for a never-solved problem."""
    known = {float(b) for b in (budgets or []) if b is not None}
    if len(known) > 1:
        raise ValueError(f"a group's completions share one target, got {sorted(known)}.")
    target = known.pop() if known else None
    return length.internalization_rewards(correct, lengths, target, weight=weight, sigma=sigma)
