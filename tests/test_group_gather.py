"""The group gather of the TRL reward callables, with a fake two-process world in one process.

TRL calls a reward function on each process's slice of the generation batch; a group of ``num_generations``
completions can straddle two processes. ``lapo.train.rewards.gather_rows`` gathers every process's rows and
finds where this process's rows start; a wrong offset hands each process another process's rewards. Here
``accelerate``'s ``gather_object`` and ``PartialState`` are replaced so that this process is rank 1 of 2 and
rank 0's rows are known: its rewards must be exactly rows 6-11 of the rewards the whole batch gets.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lapo.core.checker import AnswerChecker
from lapo.core.stats import LengthStats
from lapo.train.rewards import DiscoveryReward, InternalizationReward, Row

RIGHT, WRONG = "x</think>\\boxed{7}", "x</think>\\boxed{3}"
G = 4  # num_generations
# 12 completions = 3 groups (a, b, c) over 2 processes of 6: group b straddles ranks 0 and 1.
PIDS = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
COMPLETIONS = [RIGHT, RIGHT, WRONG, RIGHT, RIGHT, WRONG, RIGHT, RIGHT, RIGHT, RIGHT, WRONG, RIGHT]
LENGTHS = [100, 300, 50, 200, 80, 90, 100, 120, 40, 60, 70, 90]
BUDGETS = [150] * 4 + [100] * 4 + [50] * 4
RANK0, RANK1 = slice(0, 6), slice(6, 12)


def _call(reward, part: slice, **columns) -> tuple[list[float], dict]:
    extra: dict = {}
    out = reward(
        prompts=["p"] * len(PIDS[part]), completions=COMPLETIONS[part],
        completion_ids=[[0] * n for n in LENGTHS[part]], problem_id=PIDS[part], answer=["7"] * len(PIDS[part]),
        trainer_state=SimpleNamespace(global_step=3, epoch=0), log_metric=lambda *a: None,
        log_extra=extra.__setitem__, **{k: v[part] for k, v in columns.items()},
    )
    return out, extra


@pytest.fixture
def rank1_of_2(monkeypatch):
    """This process is rank 1 of 2; rank 0 contributed the rows of completions 0-5."""
    rank0 = [Row(p, c == RIGHT, n, b) for p, c, n, b in zip(PIDS[RANK0], COMPLETIONS[RANK0], LENGTHS[RANK0], BUDGETS)]
    gathered = []

    def gather_object(local):  # accelerate's contract: every process's list, concatenated in rank order
        gathered.append(local)
        return [rank0, *local]

    monkeypatch.setattr("accelerate.utils.gather_object", gather_object)
    monkeypatch.setattr("accelerate.PartialState", lambda: SimpleNamespace(process_index=1, num_processes=2))
    return gathered


def _rewards():
    checker = AnswerChecker(workers=0)
    return [
        (DiscoveryReward(G, LengthStats(), checker), {}),
        (InternalizationReward(G, LengthStats(), checker, {"a": 150, "b": 100, "c": 50}), {"budget": BUDGETS}),
    ]


@pytest.mark.parametrize("which", [0, 1], ids=["discovery", "internalization"])
def test_rank_1_gets_the_rewards_of_its_own_rows(which, rank1_of_2, monkeypatch):
    reward, columns = _rewards()[which]
    mine, extra = _call(reward, RANK1, **columns)
    assert len(rank1_of_2) == 1  # one gather per call
    monkeypatch.undo()  # the whole batch in one process: the rewards rank 1 must get are its slice of these
    whole, whole_extra = _call(_rewards()[which][0], slice(0, 12), **columns)
    assert mine == whole[RANK1]
    assert extra["length_reward"] == whole_extra["length_reward"][RANK1]


def test_the_straddling_group_is_scored_whole(rank1_of_2):
    stats = LengthStats()
    _call(DiscoveryReward(G, stats, AnswerChecker(workers=0)), RANK1)
    records = {r.problem_id: r.lengths for r in stats.records}
    assert records == {"a": (100, 300, 200), "b": (80, 100, 120), "c": (40, 60, 90)}  # b: rows 4, 6, 7


GROUP_AWARE = ["kimi", "shorterbetter", "arora-zanette"]


def _method(name):
    from lapo.methods.registry import resolve
    from lapo.train.rewards import MethodReward

    return MethodReward(G, LengthStats(), AnswerChecker(workers=0), resolve(name), max_length=400, total_steps=10)


@pytest.mark.parametrize("name", GROUP_AWARE)
def test_group_aware_methods_gather_whole_groups_like_lapo(name, rank1_of_2, monkeypatch):
    mine, _ = _call(_method(name), RANK1)
    monkeypatch.undo()
    whole, _ = _call(_method(name), slice(0, 12))
    # Group b scored on rank 1's half alone (rows 6-7), as a per-slice reward would: other rewards.
    from lapo.methods.registry import resolve, score_group

    half = score_group(resolve(name), [c == RIGHT for c in COMPLETIONS[6:8]], LENGTHS[6:8], cap=400).rewards
    assert mine == whole[RANK1] and mine[:2] != half
