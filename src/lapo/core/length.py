"""Length statistics and LAPO's two reward formulas, as plain functions (no torch, no TRL).

Stage 1 (Discovery, "LAPO-D") and stage 2 (Internalization, "LAPO-I") of arXiv 2507.15758, section 3:

- Discovery: over the *correct* completions of one problem's group, take the band [P30, P70] of their
  lengths. A correct completion earns a length reward of 1 inside the band and ``max(0, 1 - d / 100)``
  outside, ``d`` being its distance in tokens to the nearest band edge; the total is ``acc + 0.7 * len``.
- Internalization: a correct completion earns ``acc + 0.8 * exp(-(L - N)^2 / (2 * 120^2))`` where ``N`` is
  the problem's target length; wrong completions earn 0.

Every function takes a whole group: a reward that depends on a group statistic can only be right when
it sees all of the group's completions at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

# The paper's constants (section 3.1 and 3.2 of arXiv 2507.15758).
BAND_LOW = 30.0  # lower percentile of the band of correct lengths
BAND_HIGH = 70.0  # upper percentile
DECAY_TOKENS = 100.0  # length reward falls by 1 over this many tokens outside the band
DISCOVERY_WEIGHT = 0.7  # weight of the length reward in stage 1
INTERNALIZATION_WEIGHT = 0.8  # weight of the length reward in stage 2
SIGMA_TOKENS = 120.0  # width of stage 2's Gaussian around the target


@dataclass(frozen=True)
class GroupScore:
    """The rewards of one group, with what they were computed from (for logs and `lapo score`)."""

    rewards: list[float]
    length_rewards: list[float]
    band: tuple[float, float] | None = None
    target: float | None = None
    correct_lengths: list[int] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, numpy's default method.

    Written out so the reward core needs no numpy; tests check it against ``numpy.percentile``.
    """
    if not values:
        raise ValueError("percentile() of an empty sequence: pass at least one value.")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} is outside [0, 100].")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


def median(values: Sequence[float]) -> float | None:
    """The median (the 50th percentile), or None for an empty sequence."""
    return percentile(values, 50.0) if values else None


def percentile_band(
    lengths: Sequence[float], low: float = BAND_LOW, high: float = BAND_HIGH
) -> tuple[float, float] | None:
    """The [P_low, P_high] band of the lengths, or None when it is empty.

    As in the reference, the band is empty when there are no lengths or when ``P_low >= P_high``
    (e.g. fewer than two distinct correct lengths); then no completion earns a length reward.
    """
    if not lengths:
        return None
    lo, hi = percentile(lengths, low), percentile(lengths, high)
    return (lo, hi) if lo < hi else None


def band_reward(length: float, band: tuple[float, float] | None, decay: float = DECAY_TOKENS) -> float:
    """1 inside the band, ``max(0, 1 - d / decay)`` outside (d = tokens to the nearest edge), 0 without a band."""
    if band is None:
        return 0.0
    lo, hi = band
    distance = max(lo - length, length - hi, 0.0)
    return max(0.0, 1.0 - distance / decay)


def gaussian_reward(length: float, target: float, sigma: float = SIGMA_TOKENS) -> float:
    """``exp(-(L - N)^2 / (2 sigma^2))``: 1 at the target, falling off over about sigma tokens."""
    return math.exp(-((length - target) ** 2) / (2.0 * sigma * sigma))


def _check_group(correct: Sequence[bool], lengths: Sequence[int]) -> list[int]:
    if len(correct) != len(lengths):
        raise ValueError(
            f"a group has {len(correct)} correctness flags but {len(lengths)} lengths: pass one of each per completion."
        )
    return [int(n) for n, ok in zip(lengths, correct) if ok]


def discovery_rewards(
    correct: Sequence[bool],
    lengths: Sequence[int],
    *,
    weight: float = DISCOVERY_WEIGHT,
    low: float = BAND_LOW,
    high: float = BAND_HIGH,
    decay: float = DECAY_TOKENS,
) -> GroupScore:
    """Stage-1 rewards of one group: ``acc + weight * band_reward`` for correct completions, 0 for wrong ones.

    Exactly one reward per completion (the reference appended two per sample: docs/METHOD.md, section 8).
    """
    correct_lengths = _check_group(correct, lengths)
    band = percentile_band(correct_lengths, low, high)
    length_rewards = [band_reward(n, band, decay) if ok else 0.0 for n, ok in zip(lengths, correct)]
    rewards = [(1.0 + weight * lr) if ok else 0.0 for lr, ok in zip(length_rewards, correct)]
    return GroupScore(rewards, length_rewards, band=band, correct_lengths=correct_lengths)


def internalization_rewards(
    correct: Sequence[bool],
    lengths: Sequence[int],
    target: float | None,
    *,
    weight: float = INTERNALIZATION_WEIGHT,
    sigma: float = SIGMA_TOKENS,
) -> GroupScore:
    """Stage-2 rewards of one group: ``acc + weight * exp(-(L - N)^2 / (2 sigma^2))`` if correct, else 0.

    ``target=None`` marks a problem stage 1 never solved (the reference's sentinel): the group's own median
    correct length serves as N, and a group with no correct completion gets zeros.
    """
    correct_lengths = _check_group(correct, lengths)
    n = target if target is not None else median(correct_lengths)
    if n is None:
        return GroupScore([0.0] * len(lengths), [0.0] * len(lengths), correct_lengths=correct_lengths)
    length_rewards = [gaussian_reward(L, n, sigma) if ok else 0.0 for L, ok in zip(lengths, correct)]
    rewards = [(1.0 + weight * lr) if ok else 0.0 for lr, ok in zip(length_rewards, correct)]
    return GroupScore(rewards, length_rewards, target=float(n), correct_lengths=correct_lengths)


def relative_deviation(lengths: Sequence[float], targets: Sequence[float]) -> float | None:
    """Mean ``|L - N| / N`` over the pairs with a positive target: how far lengths miss their budget."""
    pairs = [(L, n) for L, n in zip(lengths, targets) if n and n > 0]
    if not pairs:
        return None
    return sum(abs(L - n) / n for L, n in pairs) / len(pairs)
