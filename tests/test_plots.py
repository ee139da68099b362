"""`lapo report` plots: training-log metrics picked leniently, series by step, the frontier, smoothing."""

import math

import pytest

from lapo.eval import plots as pl

# ------------------------------------------------------------------------------------------- training logs


@pytest.mark.parametrize(
    "keys, expected",
    [
        (["reward", "rewards/lapo_discovery/mean"], "reward"),
        (["rewards/lapo_discovery/mean", "rewards/lapo_discovery/std"], "rewards/lapo_discovery/mean"),
        (["train/reward"], "reward"),
        (["loss"], None),
    ],
)
def test_pick_key_prefers_exact_names_then_patterns(keys, expected):
    entries = [{"step": 1, **{k: 1.0 for k in keys}}]
    assert pl.pick_key(entries, *pl.PANELS[0][1:]) == expected


def test_series_sorts_steps_and_keeps_the_last_value_of_a_repeated_step():
    entries = [{"step": 2, "m": 5.0}, {"step": 1, "m": 1.0}, {"step": 2, "m": 7.0}, {"step": 3, "m": "x"},
               {"step": 4, "m": math.nan}]
    assert pl.series(entries, "m") == ([1, 2], [1.0, 7.0])


def test_pareto_keeps_points_no_other_beats_on_both_axes():
    assert pl.pareto([(100, 50), (200, 60), (150, 40), (300, 55), (50, 30)]) == [(50, 30), (100, 50), (200, 60)]


def test_smooth_is_a_trailing_moving_average():
    assert pl.smooth([1, 3, 5, 7], 2) == [1.0, 2.0, 4.0, 6.0]
