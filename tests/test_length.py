"""The LAPO-D and LAPO-I reward formulas (arXiv 2507.15758, section 3), by tables and properties."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lapo.core import length

groups = st.integers(min_value=2, max_value=16).flatmap(
    lambda n: st.tuples(st.lists(st.booleans(), min_size=n, max_size=n), st.lists(st.integers(0, 5000), min_size=n, max_size=n))
)
# A group and an arbitrary reordering of it (any permutation, not only the reversal, which keeps first and last
# in place up to a swap and so misses a formula that reads only the ends of the group).
groups_and_orders = groups.flatmap(lambda g: st.tuples(st.just(g), st.permutations(range(len(g[0])))))


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_equals_numpy(values, q):
    assert length.percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(
    "lengths, band",
    [
        ([100, 200, 300, 400, 500], (220.0, 380.0)),
        ([10, 20], (13.0, 17.0)),
        ([50, 50, 50], None),  # fewer than two distinct lengths: empty band, as in the reference
        ([70], None),
        ([], None),
    ],
)
def test_percentile_band(lengths, band):
    assert length.percentile_band(lengths) == band


@pytest.mark.parametrize(
    "L, expected",
    [(220, 1.0), (300, 1.0), (380, 1.0), (170, 0.5), (430, 0.5), (120, 0.0), (1000, 0.0), (215, 0.95)],
)
def test_band_reward_decays_linearly_over_100_tokens(L, expected):
    assert length.band_reward(L, (220.0, 380.0)) == pytest.approx(expected)


def test_band_reward_without_band_is_zero():
    assert length.band_reward(300, None) == 0.0


def test_discovery_rewards_by_hand():
    score = length.discovery_rewards([True, True, False, True, True, True], [100, 200, 999, 300, 400, 500])
    # correct lengths 100..500 -> band (220, 380); 100 is 120 tokens out (0), 200 is 20 out (0.8)
    assert score.band == (220.0, 380.0)
    assert score.rewards == pytest.approx([1.0, 1 + 0.7 * 0.8, 0.0, 1.7, 1 + 0.7 * 0.8, 1.0])


def test_discovery_rewards_one_per_completion():
    correct, lengths = [True, False, True, True], [5, 6, 7, 8]
    assert len(length.discovery_rewards(correct, lengths).rewards) == len(correct)


def test_discovery_rewards_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="one of each"):
        length.discovery_rewards([True, False], [1, 2, 3])


@given(groups_and_orders)
def test_discovery_rewards_are_invariant_to_shuffling(group_and_order):
    (correct, lengths), order = group_and_order
    base = length.discovery_rewards(correct, lengths).rewards
    shuffled = length.discovery_rewards([correct[i] for i in order], [lengths[i] for i in order]).rewards
    assert [base[i] for i in order] == pytest.approx(shuffled)


@given(groups)
def test_discovery_rewards_within_bounds(group):
    rewards = length.discovery_rewards(*group, weight=0.7).rewards
    assert all(0.0 <= r <= 1.7 + 1e-12 for r in rewards)


@given(groups)
def test_wrong_completions_get_zero_in_both_stages(group):
    correct, lengths = group
    for score in (length.discovery_rewards(correct, lengths), length.internalization_rewards(correct, lengths, 300)):
        assert all(r == 0.0 for r, ok in zip(score.rewards, correct) if not ok)


@given(st.lists(st.integers(0, 5000), min_size=2, max_size=16))
def test_all_wrong_group_gets_zeros(lengths):
    wrong = [False] * len(lengths)
    assert length.discovery_rewards(wrong, lengths).rewards == [0.0] * len(lengths)
    assert length.internalization_rewards(wrong, lengths, None).rewards == [0.0] * len(lengths)


@pytest.mark.parametrize(
    "L, N, expected",
    [(500, 500, 1.8), (620, 500, 1 + 0.8 * math.exp(-0.5)), (260, 500, 1 + 0.8 * math.exp(-2.0)), (5000, 500, 1.0)],
)
def test_internalization_reward_by_hand(L, N, expected):
    assert length.internalization_rewards([True], [L], N).rewards[0] == pytest.approx(expected)


def test_internalization_without_target_uses_group_median():
    score = length.internalization_rewards([True, True, True, False], [100, 200, 300, 5], None)
    assert score.target == 200.0 and score.rewards[1] == pytest.approx(1.8)


@given(groups, st.one_of(st.none(), st.integers(1, 5000)))
def test_internalization_rewards_within_bounds(group, target):
    rewards = length.internalization_rewards(*group, target, weight=0.8).rewards
    assert all(0.0 <= r <= 1.8 + 1e-12 for r in rewards)


@given(groups_and_orders, st.one_of(st.none(), st.integers(1, 5000)))
def test_internalization_rewards_are_invariant_to_shuffling(group_and_order, target):
    (correct, lengths), order = group_and_order
    base = length.internalization_rewards(correct, lengths, target).rewards
    shuffled = length.internalization_rewards([correct[i] for i in order], [lengths[i] for i in order], target).rewards
    assert [base[i] for i in order] == pytest.approx(shuffled)


def test_relative_deviation():
    assert length.relative_deviation([90, 120, 50], [100, 100, 0]) == pytest.approx(0.15)
