"""The built-in sums task: deterministic, disjoint splits (no shared pair of addends), levels, loader hook."""

import pytest

from lapo.core.checker import AnswerChecker
from lapo.core.extract import extract_boxed
from lapo.data.problems import load_problems
from lapo.tasks import sums


@pytest.fixture(scope="module")
def train():
    return sums.load_split("train", seed=0)


@pytest.fixture(scope="module")
def test_split():
    return sums.load_split("test", seed=0)


def _pair(p):
    return tuple(sorted(sums.parse_problem(p)))


def test_same_seed_same_problems():
    assert sums.load_split("train", seed=3, n=40) == sums.load_split("train", seed=3, n=40)


def test_other_seed_other_order_same_problems():
    first, second = sums.load_split("train", seed=0), sums.load_split("train", seed=1)
    assert [p["id"] for p in first] != [p["id"] for p in second]
    assert sorted(p["id"] for p in first) == sorted(p["id"] for p in second)


def test_splits_share_no_pair_of_addends_in_either_order(train, test_split):
    assert not {_pair(p) for p in train} & {_pair(p) for p in test_split}
    assert not {p["problem"] for p in train} & {p["problem"] for p in test_split}


def test_splits_cover_every_ordered_pair_and_phrasing(train, test_split):
    pairs = {sums.parse_problem(p) for p in train + test_split}
    assert pairs == {(a, b) for a in range(10) for b in range(10)}
    assert len(train) + len(test_split) == 100 * len(sums.PHRASINGS)


def test_held_out_pairs_do_not_depend_on_the_seed():
    assert {_pair(p) for p in sums.load_split("test", seed=0)} == {_pair(p) for p in sums.load_split("test", seed=9)}
    assert {_pair(p) for p in sums.load_split("test", seed=0)} == set(sums.TEST_PAIRS)


def test_ids_are_unique(train, test_split):
    ids = [p["id"] for p in train + test_split]
    assert len(set(ids)) == len(ids)


def test_records_have_the_documented_fields(train):
    assert all({"id", "problem", "answer", "level", "minimal_completion"} <= set(p) for p in train)


def test_answer_is_the_integer_sum(train, test_split):
    for p in train + test_split:
        a, b = sums.parse_problem(p)
        assert p["answer"] == str(a + b) and p["answer"].isdigit()


def test_level_is_the_number_of_carries(train, test_split):
    assert len(sums.LEVELS) >= 2
    for p in train + test_split:
        a, b = sums.parse_problem(p)
        assert p["level"] == (1 if a + b < 10 else 2)


def test_both_splits_hold_every_level(train, test_split):
    assert {p["level"] for p in train} == {p["level"] for p in test_split} == set(sums.LEVELS)


def test_a_prefix_alternates_levels():
    first = sums.load_split("test", seed=0, n=20)
    assert [p["level"] for p in first] == [1, 2] * 10
    assert first == sums.load_split("test", seed=0)[:20]


def test_every_phrasing_parses_back():
    for k in range(len(sums.PHRASINGS)):
        assert sums.parse_problem(sums.problem_text(7, 8, k)) == (7, 8)


def test_parse_rejects_other_text():
    with pytest.raises(ValueError, match="one-digit sum"):
        sums.parse_problem("What is 12 + 5?")


def test_asking_for_too_many_problems_says_how_many_there_are(test_split):
    with pytest.raises(ValueError, match=f"holds {len(test_split)} problems"):
        sums.load_split("test", n=len(test_split) + 1)


def test_unknown_split_and_level_are_refused():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        sums.load_split("dev")
    with pytest.raises(ValueError, match="levels"):
        sums.load_split("train", levels=(3,))


def test_minimal_completion_is_graded_correct(train):
    with AnswerChecker(workers=0) as checker:
        for p in train[:40]:
            assert extract_boxed(p["minimal_completion"]) == p["answer"]
            assert checker.check(p["minimal_completion"], p["answer"])


def test_task_is_pure_python():
    import subprocess
    import sys

    code = "import sys, lapo.tasks.sums; sys.exit(int('torch' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_sums_is_built_into_load_problems():
    problems = load_problems("sums", split="test", limit=6, seed=2)
    assert len(problems) == 6 and problems == load_problems("sums", split="test", limit=6, seed=2)
    assert all(p.id.startswith("sums-") and p.answer.isdigit() and p.level in sums.LEVELS for p in problems)
    assert [p.level for p in problems] == [1, 2, 1, 2, 1, 2]
    assert all(p.meta["minimal_completion"] for p in problems)
    train_ids = {p.id for p in load_problems("sums", split="train")}
    assert len(train_ids) == len(sums.load_split("train")) and not train_ids & {p.id for p in problems}
