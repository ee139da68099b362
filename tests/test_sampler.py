"""The training data order (lapo.train.trainer.EpochRepeatSampler): a new shuffle every epoch, and an order
that depends only on (seed, epoch), so a run resumed in epoch e sees what an uninterrupted run sees there."""

from __future__ import annotations

from trl.trainer.utils import RepeatSampler

from lapo.train.trainer import EpochRepeatSampler

PROBLEMS = 24


def _sampler(seed: int = 0, shuffle: bool = True) -> EpochRepeatSampler:
    return EpochRepeatSampler(data_source=range(PROBLEMS), mini_repeat_count=2, batch_size=4, repeat_count=1,
                              shuffle=shuffle, seed=seed)


def _epoch(sampler: EpochRepeatSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)  # as accelerate's dataloader does before every epoch
    return list(sampler)


def test_every_epoch_is_shuffled_anew():
    sampler = _sampler()
    orders = [_epoch(sampler, e) for e in range(3)]
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]


def test_an_epoch_is_a_whole_permutation_with_each_problem_repeated():
    order = _epoch(_sampler(), 1)
    assert sorted(set(order)) == list(range(PROBLEMS)) and order[::2] == order[1::2]


def test_a_resumed_run_draws_the_epoch_an_uninterrupted_run_draws():
    uninterrupted = _sampler()
    expected = [_epoch(uninterrupted, e) for e in range(3)][2]
    assert _epoch(_sampler(), 2) == expected  # a fresh process that starts in epoch 2


def test_epoch_0_is_trls_own_order():
    trl = RepeatSampler(data_source=range(PROBLEMS), mini_repeat_count=2, batch_size=4, repeat_count=1, seed=0)
    assert _epoch(_sampler(), 0) == list(trl)


def test_without_shuffle_the_order_is_the_dataset_order():
    assert _epoch(_sampler(shuffle=False), 2)[::2] == list(range(PROBLEMS))
