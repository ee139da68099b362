"""Per-problem length records, targets and their files (stage 1 -> stage 2 hand-off)."""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lapo.core.io import load_targets, save_targets
from lapo.core.stats import LengthStats, tighten_target
from lapo.errors import LapoError


def _stats():
    s = LengthStats()
    s.record("p1", step=1, correct_lengths=[100, 300], num_samples=8, epoch=0)
    s.record("p1", step=5, correct_lengths=[50, 70, 90], num_samples=8, epoch=1)
    s.record("p1", step=9, correct_lengths=[], num_samples=8, epoch=1)  # a late all-wrong group
    s.record("p2", step=2, correct_lengths=[], num_samples=8, epoch=0)
    return s


@pytest.mark.parametrize("policy, expected", [("last", 70), ("stage", 90), ("last_epoch", 70)])
def test_target_policies(policy, expected):
    assert _stats().targets(policy, fallback=4096)["p1"] == expected


def test_late_group_without_correct_answer_keeps_target():
    assert _stats().target("p1", "last") == 70.0


def test_never_solved_problem_gets_fallback():
    assert _stats().targets(fallback=2048)["p2"] == 2048


def test_targets_cover_requested_problems_only():
    assert set(_stats().targets(problem_ids=["p1", "unseen"])) == {"p1", "unseen"}


def test_save_load_round_trip(tmp_path):
    s = _stats()
    assert LengthStats.load(s.save(tmp_path / "length_stats.jsonl")) == s


def test_save_leaves_no_temp_files(tmp_path):
    _stats().save(tmp_path / "s.jsonl")
    assert [p.name for p in tmp_path.iterdir()] == ["s.jsonl"]


def test_truncated_file_is_refused_with_line(tmp_path):
    path = _stats().save(tmp_path / "s.jsonl")
    path.write_text(path.read_text()[:-15])
    with pytest.raises(ValueError, match=r"s\.jsonl:4"):
        LengthStats.load(path)


def test_corrupt_line_is_refused_with_path_and_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"problem_id": "a", "step": 1, "lengths": [3], "num_samples": 2}\n{"oops": 1}\n')
    with pytest.raises(ValueError, match=r"s\.jsonl:2"):
        LengthStats.load(path)


def test_merge_counts_identical_records_once():
    a, b = _stats(), _stats()
    b.record("p3", step=3, correct_lengths=[5], num_samples=4)
    assert len(a.merge(b)) == len(a) + 1


def test_truncated_keeps_records_up_to_step():
    assert {r.step for r in _stats().truncated(5).records} == {1, 2, 5}


@given(st.lists(st.integers(1, 4096), min_size=1, max_size=30))
def test_stage_target_is_numpy_median(lengths):
    s = LengthStats()
    s.record("p", 1, lengths[: len(lengths) // 2], 8)
    s.record("p", 2, lengths[len(lengths) // 2 :], 8)
    assert s.target("p", "stage") == pytest.approx(float(np.median(lengths)))


def test_summary_counts():
    summary = _stats().summary()
    assert (summary["problems"], summary["solved_problems"], summary["correct_completions"]) == (2, 1, 5)


def test_summary_histogram_holds_every_solved_problem():
    s = LengthStats()
    for i in range(37):
        s.record(f"p{i}", 1, [10 + 3 * i], 8)
    assert sum(b["count"] for b in s.summary()["target_histogram"]) == 37


@pytest.mark.parametrize("median, moved, expected", [(80, True, 80), (120, False, 100), (None, False, 100), (0, False, 100)])
def test_tighten_target_only_lowers(median, moved, expected):
    targets = {"p": 100}
    assert tighten_target(targets, "p", median) is moved and targets["p"] == expected


def test_targets_file_round_trip(tmp_path):
    assert load_targets(save_targets({"b": 3, "a": 10}, tmp_path / "t.json")) == {"a": 10, "b": 3}


@pytest.mark.parametrize("content", ['{"a": 0}', '{"a": "12"}', "[1, 2]", "{not json"])
def test_bad_targets_file_is_refused(tmp_path, content):
    path = tmp_path / "targets.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="targets.json"):
        load_targets(path)


def test_missing_targets_file_says_run_stage_1(tmp_path):
    with pytest.raises(LapoError, match="stage 1"):
        load_targets(tmp_path / "nope.json")
