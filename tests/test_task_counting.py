"""The built-in counting task: deterministic, disjoint splits, correct traces, overthinking about 2x."""

import random
import statistics

import pytest

from lapo.core.extract import extract_boxed
from lapo.tasks import counting


@pytest.fixture(scope="module")
def train():
    return counting.load_split("train", seed=0, n=500)


@pytest.fixture(scope="module")
def test_split():
    return counting.load_split("test", seed=0, n=500)


def test_same_seed_same_problems():
    assert counting.load_split("train", seed=3, n=50) == counting.load_split("train", seed=3, n=50)


def test_other_seed_other_problems():
    first = {p["problem"] for p in counting.load_split("train", seed=0, n=50)}
    second = {p["problem"] for p in counting.load_split("train", seed=1, n=50)}
    assert first != second


def test_splits_share_no_problem(train, test_split):
    assert not {p["problem"] for p in train} & {p["problem"] for p in test_split}


def test_splits_stay_disjoint_across_seeds():
    train = {p["problem"] for p in counting.load_split("train", seed=0, n=300)}
    test = {p["problem"] for p in counting.load_split("test", seed=7, n=300)}
    assert not train & test


def test_ids_are_unique(train):
    assert len({p["id"] for p in train}) == len(train)


def test_records_have_the_documented_fields(train):
    assert all({"id", "problem", "answer", "level", "min_tokens"} <= set(p) for p in train)


def test_every_level_is_drawn(train):
    assert {p["level"] for p in train} == set(counting.LEVELS)


def test_at_least_five_levels():
    assert len(counting.LEVELS) >= 5


def test_answer_is_the_letter_count(train):
    for p in train:
        target, letters = counting.parse_problem(p)
        assert p["answer"] == str(letters.count(target))


def test_minimal_trace_boxes_the_gold_answer(train):
    assert all(extract_boxed(counting.minimal_completion(p)) == p["answer"] for p in train)


def test_minimal_trace_running_count_is_right(train):
    for p in train:
        target, letters = counting.parse_problem(p)
        trace = counting.minimal_completion(p).split(counting.THINK_CLOSE)[0].split()
        expected = [f"{c}={letters[: i + 1].count(c)}" if c == target else c for i, c in enumerate(letters)]
        assert trace == expected


def test_minimal_trace_closes_the_think_block_once(train):
    assert all(counting.minimal_completion(p).count(counting.THINK_CLOSE) == 1 for p in train)


def test_min_tokens_counts_the_minimal_trace(train):
    assert all(p["min_tokens"] == counting.count_tokens(counting.minimal_completion(p)) for p in train)


def test_minimal_length_grows_with_level(test_split):
    means = [statistics.mean(p["min_tokens"] for p in test_split if p["level"] == lv) for lv in counting.LEVELS]
    assert means == sorted(means) and len(set(means)) == len(means)


def test_overthinking_trace_boxes_the_gold_answer(train):
    rng = random.Random(0)
    assert all(extract_boxed(counting.overthinking_completion(p, rng)) == p["answer"] for p in train)


def test_overthinking_trace_starts_with_the_minimal_pass(train):
    rng = random.Random(0)
    for p in train:
        first_pass = counting.minimal_completion(p).split("\n")[1]
        assert counting.overthinking_completion(p, rng).split("\n")[1] == first_pass


def test_overthinking_is_never_shorter_than_minimal(train):
    rng = random.Random(0)
    assert all(counting.count_tokens(counting.overthinking_completion(p, rng)) >= p["min_tokens"] for p in train)


def test_overthinking_averages_about_twice_minimal(train):
    rng = random.Random(1)
    lengths = [counting.count_tokens(counting.overthinking_completion(p, rng)) for p in train for _ in range(4)]
    minimal = [p["min_tokens"] for p in train for _ in range(4)]
    assert 1.8 <= sum(lengths) / sum(minimal) <= 2.2


def test_overthinking_is_right_skewed(train):
    rng = random.Random(2)
    extra = [counting.count_tokens(counting.overthinking_completion(p, rng)) / p["min_tokens"] for p in train]
    assert statistics.mean(extra) > statistics.median(extra)


def test_overthinking_length_is_bounded_by_the_cap(train):
    rng = random.Random(3)
    bound = 1 + counting.OVERTHINK_CAP
    assert all(counting.count_tokens(counting.overthinking_completion(p, rng)) <= bound * p["min_tokens"] for p in train)


def test_overthinking_is_reproducible_from_the_rng(train):
    first = [counting.overthinking_completion(p, random.Random(5)) for p in train[:50]]
    assert first == [counting.overthinking_completion(p, random.Random(5)) for p in train[:50]]


def test_parse_problem_accepts_text_dict_and_object(train):
    class Obj:
        problem = train[0]["problem"]

    expected = counting.parse_problem(train[0]["problem"])
    assert counting.parse_problem(train[0]) == expected == counting.parse_problem(Obj())


def test_parse_problem_rejects_other_text():
    with pytest.raises(ValueError, match="not a counting problem"):
        counting.parse_problem("What is 2+2?")


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="train"):
        counting.load_split("validation")


def test_unknown_level_is_an_error():
    with pytest.raises(ValueError, match="LEVELS"):
        counting.string_length(99)


def test_count_tokens_counts_a_think_tag_as_one():
    assert counting.count_tokens("ab</think>c<think>") == 5


@pytest.mark.parametrize(("completion", "answer", "expected"), [
    ("x\n</think>\\boxed{3}", "3", True),
    ("x\n</think>\\boxed{3}", "4", False),
    ("\\boxed{2} then \\boxed{3}", "3", True),
    ("no box", "3", False),
])
def test_is_correct(completion, answer, expected):
    assert counting.is_correct(completion, answer) is expected


def test_task_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, lapo.tasks.counting; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
