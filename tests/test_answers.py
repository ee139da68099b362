"""Answer extraction and equivalence: the same checker grades training, `lapo score` and `lapo eval`."""

import json
import random
import re
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest

from lapo.core.checker import AnswerChecker
from lapo.core.equivalence import Number, read_number
from lapo.core.extract import boxed_answers, extract_answer, extract_boxed

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def checker():
    with AnswerChecker(timeout_s=2.0, workers=2) as c:
        yield c


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{5}", "5"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\boxed{3}}", r"\boxed{3}"),
        (r"\fbox{7}", "7"),
        (r"\boxed {x^{2}}", "x^{2}"),
        (r"\boxed{4} and \boxed{unclosed", "4"),
        (r"\boxed{", None),
        ("no box at all", None),
        ("", None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("a 12 then 1,234.5 done", "1,234.5"), ("<think>7 8 9</think> so it is 42.", "42"), ("nothing", None)],
)
def test_last_number_fallback(text, expected):
    assert extract_answer(text, fallback="last_number") == expected


def test_no_fallback_ignores_plain_numbers():
    assert extract_answer("the answer is 42") is None


@pytest.mark.parametrize(
    "text, parts",
    [
        (r"so \boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}.", ["(2, 2)", "(6, 2)"]),
        (r"\boxed{1},\boxed{2},\boxed{3}", ["1", "2", "3"]),
        (r"\boxed{1} or \boxed{2}", ["1", "2"]),
        (r"\boxed{7} and again \boxed{7}", ["7"]),  # a part equal to the one after it counts once
        (r"\boxed{1}, \boxed{7} and again \boxed{7}", ["7"]),  # 10 characters or more: an equal box stops the walk
        (r"\boxed{3} is wrong. I recheck everything: \boxed{4}", ["4"]),  # 10 characters or more, no "and"
        (r"\boxed{1}, " + "x" * 60 + r" \boxed{2}", ["1", "2"]),  # fewer than 70 characters with a comma
        (r"\boxed{1}, " + "x" * 70 + r" \boxed{2}", ["2"]),  # 70 characters or more, even with a comma
        (r"\boxed{\boxed{3}}", [r"\boxed{3}"]),
        (r"\boxed{4} and \boxed{5", ["4"]),  # an unclosed box is no part
        ("no box", []),
    ],
)
def test_boxed_answers_are_the_last_box_and_the_boxes_that_join_it(text, parts):
    assert boxed_answers(text) == parts


def test_answer_parts_are_joined_with_comma_and_space():
    assert extract_answer(r"\boxed{32},\boxed{349}") == "32, 349"  # two numbers, not 32,349


@pytest.mark.parametrize(
    "text, value, decimal",
    [("025", 25, False), ("-7", -7, False), ("2,125", 2125, False), (".5", Fraction(1, 2), True),
     ("0.125", Fraction(1, 8), True), (r"\dfrac{3}{4}", Fraction(3, 4), False),
     (r"-\frac{1}{2}", Fraction(-1, 2), False), (r"\frac{-1}{-2}", Fraction(1, 2), False),
     (r"\frac12", Fraction(1, 2), False), ("3/56", Fraction(3, 56), False), ("$ 5 $", 5, False)],
)
def test_read_number(text, value, decimal):
    assert read_number(text) == Number(Fraction(value), decimal)


@pytest.mark.parametrize(
    "text",
    ["1" * 5000, "9" * 200 + "/1", r"\frac{1}{0}", "abc", "2 3", "1 1/2", "32, 349", "1,2345", "0,500", "5.",
     "10\\%", r"\left(5\right)", "x = 3", "1$,$000"],
)
def test_read_number_refuses_what_math_verify_reads_otherwise(text):
    assert read_number(text) is None


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        (r"\boxed{\dfrac{1}{2}}", r"\frac{1}{2}", True),
        (r"\boxed{0.5}", r"\frac12", True),
        (r"\boxed{x=3}", "3", True),
        (r"\boxed{25}", "025", True),
        (r"\boxed{2125}", "2,125", True),
        (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}", True),
        (r"\boxed{(1, 2)}", "(1,2)", True),
        (r"\boxed{3}", "4", False),
        (r"\boxed{}", "4", False),
        ("4", "4", False),  # no box, no fallback
        (r"\boxed{4}", "", False),  # an empty gold answer is never matched
    ],
)
def test_check_table(checker, completion, gold, expected):
    assert checker.check(completion, gold) is expected


def _golds(name):
    path = DATA / f"{name}.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return [json.loads(line)["answer"] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", ["math500", "aime24", "amc23", "gsm8k_test"])
def test_every_gold_answer_equals_itself_boxed(checker, name):
    golds = _golds(name)
    verdicts = checker.check_many([f"The answer is \\boxed{{{g}}}." for g in golds], golds)
    assert [g for g, ok in zip(golds, verdicts) if not ok] == []


def _rewrite(gold: str, rng: random.Random) -> str | None:
    """An equivalent spelling of a gold answer, or None when no rewrite applies."""
    if re.fullmatch(r"0\d+", gold):
        return gold.lstrip("0")  # AIME's leading zeros
    if re.fullmatch(r"\d{1,3}(,\d{3})+", gold):
        return gold.replace(",", "")  # GSM8K's thousands separators
    if re.fullmatch(r"\d{4,}", gold):
        return f"{int(gold):,}"
    if m := re.fullmatch(r"\\d?frac\{(\d+)\}\{(2|4|5|8|10)\}", gold):
        return repr(int(m.group(1)) / int(m.group(2)))  # 0.5 vs \frac{1}{2}
    if "\\frac" in gold:
        return gold.replace("\\frac", "\\dfrac")
    if "\\dfrac" in gold:
        return gold.replace("\\dfrac", "\\frac")
    if re.fullmatch(r"-?\d+", gold):
        return rng.choice([f"x={gold}", f" {gold} ", f"{gold}.0"])
    if "," in gold or "+" in gold:
        return gold.replace(",", ", ").replace("+", " + ")  # spacing
    return None


def _wrong(gold: str) -> str:
    if re.fullmatch(r"-?\d+", gold.replace(",", "")):
        return str(int(gold.replace(",", "")) + 1)
    return f"{gold}+1"


@pytest.fixture(scope="module")
def benchmark_golds():
    return [g for name in ("math500", "aime24", "amc23", "gsm8k_test") for g in _golds(name)]


def test_equivalent_rewritings_are_judged_correct(checker, benchmark_golds):
    rng = random.Random(0)
    pairs = [(r, g) for g in benchmark_golds if (r := _rewrite(g, rng)) is not None]
    verdicts = checker.check_many([f"\\boxed{{{r}}}" for r, _ in pairs], [g for _, g in pairs])
    assert len(pairs) > 500 and sum(verdicts) / len(pairs) >= 0.99


def test_wrong_answers_are_never_judged_correct(checker, benchmark_golds):
    wrong = [_wrong(g) for g in benchmark_golds]
    verdicts = checker.check_many([f"\\boxed{{{w}}}" for w in wrong], benchmark_golds)
    assert [(w, g) for w, g, ok in zip(wrong, benchmark_golds, verdicts) if ok] == []


SLOW = r"\boxed{9^{9^{9^{9^{9}}}}}"


def test_check_past_time_limit_counts_as_wrong_and_returns_in_time():
    with AnswerChecker(timeout_s=0.5) as c:
        c.check(r"\boxed{\sqrt{2}}", r"\sqrt{2}+0")  # warm the worker up
        start = time.monotonic()
        assert c.check(SLOW, "1") is False
        assert time.monotonic() - start < 2.0


def test_time_limit_works_outside_the_main_thread():
    result = {}

    def run():
        with AnswerChecker(timeout_s=0.5) as c:
            c.check(r"\boxed{\sqrt{2}}", r"\sqrt{2}+0")
            start = time.monotonic()
            result["ok"], result["took"] = c.check(SLOW, "1"), time.monotonic() - start

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert result["ok"] is False and result["took"] < 2.5


def _check_in_worker(_):
    with AnswerChecker(timeout_s=0.5, start_method="spawn") as c:
        c.check(r"\boxed{\sqrt{2}}", r"\sqrt{2}+0")  # start the worker: start-up is not a check's time
        start = time.monotonic()
        ok = c.check(SLOW, "1")
        return ok, time.monotonic() - start


def test_time_limit_works_in_worker_processes():
    with ProcessPoolExecutor(max_workers=1) as pool:
        ok, took = pool.submit(_check_in_worker, None).result(timeout=120)
    assert ok is False and took < 2.5


def test_checker_survives_pickling(checker):
    import pickle

    copy = pickle.loads(pickle.dumps(checker))
    assert copy.check(r"\boxed{\frac{2}{4}}", r"\frac{1}{2}") is True


def test_bad_timeout_is_refused_with_fix():
    with pytest.raises(ValueError, match="timeout_s=0 must be positive"):
        AnswerChecker(timeout_s=0)
