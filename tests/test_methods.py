"""The length-control methods' rewards (lapo.methods): a hand-computed table per method, and properties
(a group's rewards follow its completions under any permutation; each reward stays within its bounds)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lapo.core import length
from lapo.errors import LapoError
from lapo.methods import budgets, formulas, registry

C = [True, False, True, True]
L = [100, 200, 300, 500]
N = [250, 250, 250, 250]


def _sig(x):
    return 1 / (1 + math.exp(-x))


# Each row: method, its call, the rewards worked out by hand from the formula.
TABLE = [
    ("plain", lambda: formulas.plain(C, L), [1, 0, 1, 1]),
    # acc - 0.0003 |N - L|: |250-100| = 150 -> 1 - 0.045; wrong: -0.015; 1 - 0.015; 1 - 0.075
    ("l1-exact", lambda: formulas.l1_exact(C, L, N), [0.955, -0.015, 0.985, 0.925]),
    # acc * clip(0.0003 (N - L) + 0.5, 0, 1): 0.545; 0; 0.485; 0.425
    ("l1-max", lambda: formulas.l1_max(C, L, N), [0.545, 0.0, 0.485, 0.425]),
    ("thinkprune", lambda: formulas.thinkprune(C, L, 300), [1, 0, 1, 0]),
    # lambda = 0.5 - (L - 100) / 400: 0.5, 0.25, 0, -0.5; wrong gets min(0, 0.25) = 0
    ("kimi", lambda: formulas.kimi(C, L), [1.5, 0.0, 1.0, 0.5]),
    # SOL = 100: 2 acc - 0.001 |L - 100|
    ("shorterbetter", lambda: formulas.shorterbetter(C, L), [2.0, -0.1, 1.8, 1.6]),
    # correct lengths 100, 300, 500: mean 300, population std sqrt(80000/3)
    ("arora-zanette", lambda: formulas.arora_zanette(C, L),
     [1 - 0.1 * _sig(-200 / (math.sqrt(80000 / 3) + 1e-7)), 0.0, 0.95,
      1 - 0.1 * _sig(200 / (math.sqrt(80000 / 3) + 1e-7))]),
    # max 500, cache 100: 0 up to 400, then (400 - L) / 100: the 500-token completion gets -1
    ("dapo-overlong", lambda: formulas.dapo_overlong(C, L, 500), [1, 0, 1, 0]),
    # correct lengths 100, 300, 500: band [P30, P70] = [220, 380]; 100 is 120 out -> 0; 300 in; 500 is 120 out
    ("lapo-d", lambda: formulas.lapo_d(C, L), [1.0, 0, 1.7, 1.0]),
    ("lapo-i", lambda: formulas.lapo_i(C, L, N),
     [1 + 0.8 * math.exp(-150**2 / (2 * 120**2)), 0, 1 + 0.8 * math.exp(-50**2 / (2 * 120**2)),
      1 + 0.8 * math.exp(-250**2 / (2 * 120**2))]),
]


@pytest.mark.parametrize("name, call, expected", TABLE, ids=[row[0] for row in TABLE])
def test_each_method_gives_the_hand_computed_rewards(name, call, expected):
    assert call().rewards == pytest.approx(expected)


def test_every_registered_method_has_a_row_in_the_table():
    assert {row[0] for row in TABLE} == set(registry.METHODS)


def test_kimi_gives_zero_length_reward_when_all_lengths_are_equal():
    assert formulas.kimi([True, False], [50, 50]).rewards == [1.0, 0.0]


def test_shorterbetter_uses_the_group_mean_when_nothing_is_correct():
    assert formulas.shorterbetter([False, False], [100, 300]).rewards == pytest.approx([-0.1, -0.1])


def test_dapo_overlong_falls_linearly_inside_the_cache():
    assert formulas.overlong_penalty(450, 500, 100) == pytest.approx(-0.5)


def test_lapo_methods_are_lapo_core_functions():
    assert formulas.lapo_d(C, L) == length.discovery_rewards(C, L)
    assert formulas.lapo_i(C, L, N) == length.internalization_rewards(C, L, 250.0)


# ------------------------------------------------------------------------------------------- properties

groups = st.integers(2, 10).flatmap(
    lambda n: st.tuples(st.lists(st.booleans(), min_size=n, max_size=n),
                        st.lists(st.integers(1, 4000), min_size=n, max_size=n), st.integers(1, 4000),
                        st.permutations(list(range(n))))
)
CAP = 4000


def _score(name, correct, lengths, budget):
    spec = registry.resolve(name)
    return registry.score_group(spec, correct, lengths, budgets=[budget] * len(lengths), cap=CAP).rewards


@pytest.mark.parametrize("name", sorted(registry.METHODS))
@given(group=groups)
def test_rewards_follow_their_completions_under_any_permutation(name, group):
    correct, lengths, budget, order = group
    rewards = _score(name, correct, lengths, budget)
    shuffled = _score(name, [correct[i] for i in order], [lengths[i] for i in order], budget)
    assert shuffled == pytest.approx([rewards[i] for i in order])


# The range each method's reward stays in (the papers' defaults; lengths within the cap).
BOUNDS = {
    "plain": (0, 1), "l1-max": (0, 1), "thinkprune": (0, 1), "kimi": (-0.5, 1.5),
    "arora-zanette": (0, 1), "dapo-overlong": (-1, 1), "lapo-d": (0, 1.7), "lapo-i": (0, 1.8),
    "l1-exact": (-0.0003 * 4000, 1), "shorterbetter": (-0.001 * 4000, 2),
}


@pytest.mark.parametrize("name", sorted(registry.METHODS))
@given(group=groups)
def test_rewards_stay_within_the_methods_bounds(name, group):
    correct, lengths, budget, _ = group
    lo, hi = BOUNDS[name]
    assert all(lo - 1e-9 <= r <= hi + 1e-9 for r in _score(name, correct, lengths, budget))


@pytest.mark.parametrize("name", sorted(registry.METHODS))
@given(group=groups)
def test_a_wrong_completion_never_outscores_a_right_one_of_the_same_length(name, group):
    correct, lengths, budget, _ = group
    rewards = _score(name, [True, False], [lengths[0]] * 2, budget)
    assert rewards[0] >= rewards[1]


# ------------------------------------------------------------------------------------------- registry


def test_an_unknown_method_is_one_error_listing_the_known_ones():
    with pytest.raises(LapoError, match="method 'l2' is unknown; choose one of plain"):
        registry.resolve("l2")


def test_a_knob_the_method_lacks_is_an_error_naming_its_knobs():
    with pytest.raises(LapoError, match="method kimi has no knob sigma; its knobs are: weight"):
        registry.resolve("kimi", {"sigma": 3})


def test_a_cap_above_the_max_completion_length_is_an_error():
    with pytest.raises(LapoError, match="cap 4096 is above max_completion_length=160"):
        registry.resolve("thinkprune", max_length=160)


def test_knob_overrides_replace_the_paper_defaults():
    assert registry.resolve("l1-exact", {"alpha": "0.003"}).knobs["alpha"] == 0.003


def test_thinkprune_caps_fall_over_evenly_split_rounds():
    assert [registry.cap_at([128, 96, 64], s, 30) for s in (0, 9, 10, 19, 20, 29, 35)] == [128, 128, 96, 96, 64, 64, 64]


def test_budgets_are_drawn_per_problem_within_the_range_and_seeded():
    a = budgets.draw_budgets([f"p{i}" for i in range(200)], 20, 100, seed=3)
    assert a == budgets.draw_budgets([f"p{i}" for i in reversed(range(200))], 20, 100, seed=3)
    assert min(a.values()) >= 20 and max(a.values()) <= 100 and len(set(a.values())) > 30


def test_l1s_sentence_knob_replaces_its_budget_sentence():
    spec = registry.resolve("l1-exact", {"sentence": "I will answer the question with {n} tokens."})
    assert spec.budget_template == "I will answer the question with {n} tokens." and "sentence" not in spec.reward_args()


def test_a_sentence_without_its_placeholder_is_an_error():
    with pytest.raises(LapoError, match="must contain the placeholder"):
        registry.resolve("l1-max", {"sentence": "Think briefly."})
