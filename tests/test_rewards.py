"""The TRL reward callables in one process: the pure formulas per group, recording, metrics, tightening."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

from lapo.core import length
from lapo.core.checker import AnswerChecker
from lapo.core.stats import LengthStats
from lapo.train.config import LapoConfig
from lapo.train.rewards import (
    DiscoveryReward,
    InternalizationReward,
    discovery_reward,
    internalization_reward,
)

RIGHT, WRONG = "x</think>\\boxed{7}", "x</think>\\boxed{3}"


def _call(reward, completions, lengths, pids, step=5, epoch=1.5, **columns):
    metrics, extra = {}, {}
    out = reward(
        prompts=["p"] * len(completions),
        completions=completions,
        completion_ids=[[0] * n for n in lengths],  # lengths come from the token ids, never the text
        problem_id=pids,
        answer=columns.pop("answer", ["7"] * len(completions)),
        trainer_state=SimpleNamespace(global_step=step, epoch=epoch),
        log_metric=metrics.__setitem__,
        log_extra=extra.__setitem__,
        **columns,
    )
    return out, metrics, extra


def _discovery(stats=None):
    return DiscoveryReward(4, stats if stats is not None else LengthStats(), AnswerChecker(workers=0))


def test_discovery_equals_the_pure_formula_per_group():
    completions = [RIGHT, RIGHT, WRONG, RIGHT, RIGHT, WRONG, WRONG, RIGHT]
    lengths = [100, 300, 50, 200, 80, 90, 100, 120]
    pids = ["a"] * 4 + ["b"] * 4
    out, _, _ = _call(_discovery(), completions, lengths, pids)
    expected = (
        length.discovery_rewards([True, True, False, True], lengths[:4]).rewards
        + length.discovery_rewards([True, False, False, True], lengths[4:]).rewards
    )
    assert out == expected


def test_discovery_records_correct_lengths_per_group_with_step_and_epoch():
    stats = LengthStats()
    _call(_discovery(stats), [RIGHT, WRONG, RIGHT, RIGHT] + [WRONG] * 4, [10, 20, 30, 40] * 2, ["a"] * 4 + ["b"] * 4)
    records = {r.problem_id: r for r in stats.records}
    assert records["a"].lengths == (10, 30, 40) and records["a"].num_samples == 4
    assert records["b"].lengths == ()  # unsolved groups are recorded too
    assert (records["a"].step, records["a"].epoch) == (5, 1)


def test_discovery_metrics():
    completions = [RIGHT, RIGHT, RIGHT, WRONG]
    _, metrics, extra = _call(_discovery(), completions, [100, 200, 300, 10], ["a"] * 4)
    assert metrics["lapo/accuracy"] == 0.75 and metrics["lapo/mean_length"] == 152.5
    assert metrics["lapo/band_hit_rate"] == pytest.approx(1 / 3)  # only 200 lies inside [160, 240]
    assert extra["correct"] == [True, True, True, False] and len(extra["length_reward"]) == 4


def test_a_group_that_mixes_problems_is_refused():
    with pytest.raises(RuntimeError, match="mixes problems"):
        _call(_discovery(), [RIGHT] * 4, [1, 2, 3, 4], ["a", "a", "b", "b"])


def test_a_batch_that_is_not_whole_groups_is_refused():
    with pytest.raises(RuntimeError, match="num_generations=4"):
        _call(_discovery(), [RIGHT] * 6, [1] * 6, ["a"] * 6)


@pytest.mark.parametrize("gold", ["", "\\frac{", "}{", "\\boxed{", "9" * 5000], ids=["empty", "frac", "braces", "box", "long"])
def test_a_gold_that_cannot_be_checked_is_never_graded_correct(gold):
    echoes = [f"\\boxed{{{gold}}}", gold, f"x</think>\\boxed{{{gold}}}}}", "\\boxed{}"]
    out, metrics, extra = _call(_discovery(), echoes, [10, 20, 30, 40], ["a"] * 4, answer=[gold] * 4)
    assert extra["correct"] == [False] * 4 and metrics["lapo/accuracy"] == 0 and out == [0.0] * 4


def _internalization(targets, tighten=True):
    return InternalizationReward(4, LengthStats(), AnswerChecker(workers=0), targets, tighten=tighten)


def test_internalization_scores_against_the_budget_shown():
    lengths = [100, 220, 400, 150]
    out, metrics, _ = _call(
        _internalization({"a": 200}), [RIGHT, RIGHT, RIGHT, WRONG], lengths, ["a"] * 4,
        budget=[200] * 4, budget_fallback=[False] * 4,
    )
    assert out == length.internalization_rewards([True, True, True, False], lengths, 200).rewards
    assert metrics["lapo/budget_deviation"] == pytest.approx((100 + 20 + 200 + 50) / 200 / 4)


def test_internalization_fallback_uses_the_group_median():
    lengths = [100, 300, 500, 50]
    out, _, _ = _call(
        _internalization({"a": 4096}), [RIGHT, RIGHT, RIGHT, WRONG], lengths, ["a"] * 4,
        budget=[4096] * 4, budget_fallback=[True] * 4,
    )
    assert out == length.internalization_rewards([True, True, True, False], lengths, None).rewards
    assert out[1] == pytest.approx(1.8)  # 300 is the median: the Gaussian's peak


@pytest.mark.parametrize("tighten, expected", [(True, 150), (False, 200)])
def test_online_tightening_lowers_the_live_target(tighten, expected):
    targets = {"a": 200}
    reward = _internalization(targets, tighten)
    _call(reward, [RIGHT, RIGHT, WRONG, WRONG], [100, 200, 10, 10], ["a"] * 4, budget=[200] * 4, budget_fallback=[False] * 4)
    assert targets["a"] == expected  # the group median 150 is below the target 200


def test_longer_groups_never_raise_a_target():
    targets = {"a": 100}
    _call(_internalization(targets), [RIGHT] * 4, [300] * 4, ["a"] * 4, budget=[100] * 4, budget_fallback=[False] * 4)
    assert targets["a"] == 100


def test_internalization_needs_the_budget_column():
    with pytest.raises(KeyError, match="budget"):
        _call(_internalization({}), [RIGHT] * 4, [1] * 4, ["a"] * 4)


def test_factories_use_the_config_and_are_picklable():
    cfg = LapoConfig(discovery_weight=0.5, sigma=60.0, answer_workers=0)
    d = discovery_reward(cfg, 8, LengthStats())
    i = internalization_reward(cfg, 8, LengthStats(), {})
    assert (d.__name__, d.weight, i.__name__, i.sigma) == ("lapo_discovery", 0.5, "lapo_internalization", 60.0)
    assert pickle.loads(pickle.dumps(d)).weight == 0.5


def test_a_missing_gold_answer_is_never_matched():
    none_box = "x</think>\\boxed{None}"
    out, _, _ = _call(_discovery(), [none_box] * 4, [10, 20, 30, 40], ["a"] * 4, answer=[None] * 4)
    assert out == [0.0] * 4
