"""Evaluation metrics on fixed records: Pass@1, token statistics, per-level breakdown, Spearman, adherence."""

import math

import pytest

from lapo.core import metrics as mt


def rec(pid, correct, tokens, *, sample=0, truncated=False, level=None, budget=None, **extra):
    return {"problem_id": pid, "sample": sample, "correct": correct, "tokens": tokens, "truncated": truncated,
            "level": level, "budget": budget, **extra}


# ------------------------------------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    "records, expected",
    [
        # per problem 3/4, 0/2, 1/1 -> (0.75 + 0 + 1) / 3; a sample-weighted mean would give 4/7
        ([rec("a", c, 1) for c in (1, 1, 1, 0)] + [rec("b", 0, 1)] * 2 + [rec("c", 1, 1)], (0.75 + 0 + 1) / 3),
        ([rec("a", 1, 1), rec("a", 1, 1)], 1.0),
        ([rec("a", 0, 1)], 0.0),
        ([], None),
    ],
)
def test_pass_at_1_averages_per_problem_then_over_problems(records, expected):
    assert mt.pass_at_1(records) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    "values, expected", [([3, 1, 2], 2.0), ([4, 1, 3, 2], 2.5), ([7], 7.0), ([], None)]
)
def test_median(values, expected):
    assert mt.median(values) == expected


def test_group_metrics_on_fixed_records():
    records = [rec("a", True, 10), rec("a", False, 40, truncated=True), rec("b", True, 20), rec("b", True, 30)]
    assert mt.group_metrics(records) == {
        "num_problems": 2, "num_samples": 4, "pass_at_1": pytest.approx(0.75), "mean_tokens": 25.0,
        "median_tokens": 25.0, "mean_tokens_correct": 20.0, "truncation_rate": 0.25, "minimal_tokens": None,
    }


def test_minimal_tokens_is_a_mean_over_problems_not_samples():
    records = [rec("a", 1, 5, minimal_tokens=10)] * 3 + [rec("b", 1, 5, minimal_tokens=20)]
    assert mt.group_metrics(records)["minimal_tokens"] == 15.0


def test_breakdown_by_level_orders_levels_numerically():
    records = [rec("a", 1, 10, level=10), rec("b", 0, 20, level=2), rec("c", 1, 30, level=2)]
    table = mt.breakdown(records, "level")
    assert list(table) == ["2", "10"] and table["2"]["pass_at_1"] == 0.5 and table["2"]["mean_tokens"] == 25.0


def test_breakdown_is_empty_when_no_record_has_the_field():
    assert mt.breakdown([rec("a", 1, 10)], "subject") == {}


@pytest.mark.parametrize(
    "values, expected",
    [([10, 20, 20, 5], [2.0, 3.5, 3.5, 1.0]), ([1, 1, 1], [2.0, 2.0, 2.0]), ([3, 2, 1], [3.0, 2.0, 1.0])],
)
def test_ranks_share_the_mean_rank_on_ties(values, expected):
    assert mt.ranks(values) == expected


@pytest.mark.parametrize(
    "x, y, expected",
    [
        ([1, 2, 3, 4, 5], [1, 4, 9, 16, 100], 1.0),  # monotone, not linear
        ([1, 2, 3, 4], [40, 30, 20, 10], -1.0),
        ([1, 2, 2, 3], [1, 2, 3, 4], 4.5 / math.sqrt(22.5)),  # ties in x (scipy: 0.9486833)
        ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], 8 / math.sqrt(95)),  # ties in y (scipy: 0.8207827)
    ],
)
def test_spearman_known_cases(x, y, expected):
    assert mt.spearman(x, y) == pytest.approx(expected)


@pytest.mark.parametrize("x, y", [([1, 2, 3], [5, 5, 5]), ([1], [2]), ([], [])])
def test_spearman_is_none_when_undefined(x, y):
    assert mt.spearman(x, y) is None


def test_adherence_on_fixed_lengths_and_budgets():
    records = [rec("a", 1, 90, budget=100), rec("b", 1, 110, budget=100), rec("c", 0, 150, budget=200),
               rec("d", 1, 200, budget=200), rec("e", 1, 999)]  # no budget: left out
    # |L-N|/N = .1, .1, .25, 0; ranks L 1..4 against N 1.5,1.5,3.5,3.5 -> rho = 4 / sqrt(20)
    assert mt.adherence(records) == {
        "num_samples": 4, "mean_rel_error": pytest.approx(0.1125), "within_10pct": 0.75,
        "signed_rel_error": pytest.approx((-0.1 + 0.1 - 0.25 + 0) / 4), "tolerance": 0.1, "off_budget": 0.25,
        "spearman": pytest.approx(4 / math.sqrt(20)), "mean_budget": 150.0,
    }


def test_adherence_with_one_fixed_budget_has_no_rank_correlation():
    assert mt.adherence([rec("a", 1, 90, budget=100), rec("b", 1, 120, budget=100)])["spearman"] is None


def test_adherence_is_none_without_budgets():
    assert mt.adherence([rec("a", 1, 90)]) is None


def test_adherence_counts_samples_off_by_more_than_the_tolerance():
    records = [rec("a", 1, 90, budget=100), rec("b", 1, 130, budget=100), rec("c", 1, 160, budget=100)]
    assert mt.adherence(records, tolerance=0.35)["off_budget"] == pytest.approx(1 / 3)
