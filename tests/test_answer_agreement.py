"""lapo's answer checker against plain math-verify (issue 15.2).

The reference is ``verify(parse("$" + gold + "$"), parse(completion))`` at math-verify's default settings
(``answer_corpus.reference_verdict``). lapo may never say True where it says False, and must say True
wherever it does, except the documented cases of ``answer_corpus.EXCEPTIONS``, where lapo's verdict is
certainly right. Checked on the hand-written classes of ``answer_corpus.HAND_CASES`` (always) and on
rewrites of every benchmark gold answer under ../shared/data (skipped when absent); the fast path alone is
checked on random numbers in many spellings.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from lapo.core.checker import AnswerChecker
from lapo.core.equivalence import quick_equal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from answer_corpus import EXCEPTIONS, HAND_CASES, Case, boxed, explain, reference_verdict, rewritten_pairs  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCHMARKS = ("math500", "aime24", "amc23", "olympiadbench", "gsm8k_test")
LIMIT_S = 5.0  # math-verify's own default limit: a slow check is not what this file compares


@pytest.fixture(scope="module", autouse=True)
def quiet_math_verify():
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # it warns about every unreadable answer


def _disagreements(cases: list[Case]) -> tuple[list[tuple], Counter]:
    """(case, reference, lapo) for every unexplained difference, and the count of each explained one."""
    with AnswerChecker(timeout_s=LIMIT_S, workers=2) as checker:
        verdicts = checker.check_many([c.completion for c in cases], [c.gold for c in cases])
    unexplained, explained = [], Counter()
    for case, lapo in zip(cases, verdicts):
        reference = reference_verdict(case.completion, case.gold)
        if lapo != reference:
            reason = explain(case, reference, lapo)
            if reason is None:
                unexplained.append((case, reference, lapo))
            else:
                explained[reason] += 1
    return unexplained, explained


def test_hand_written_classes_agree_with_math_verify():
    unexplained, explained = _disagreements(HAND_CASES)
    assert unexplained == []
    assert set(explained) == set(EXCEPTIONS)  # each documented exception is shown by a case, once or more


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        (r"$\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}$", "(2, 2), (6, 2)", True),
        (r"\boxed{1},\boxed{2},\boxed{3}", r"\{1,2,3\}", True),
        (r"\boxed{0.0833333333333333}", r"\frac{1}{12}", True),
        (r"\boxed{0.1}", r"10\%", True),
        (r"\boxed{32, 349}", "32349", False),
        (r"\boxed{2 3}", "23", False),
        (r"\boxed{1 1/2}", r"\frac{11}{2}", False),
        (r"\boxed{y = 2x+1}", "x = 2x+1", False),
        (r"\boxed{x=3}", "y=3", False),
        (r"\boxed{\rightarrow}", r"\leftarrow", False),
        (r"\boxed{5.}", "5", False),
    ],
)
def test_issue_15_cases(completion, gold, expected):
    """The failures issue 15 lists: answers math-verify accepts, and the fast path's false positives."""
    with AnswerChecker(timeout_s=LIMIT_S, workers=0) as checker:
        assert checker.check(completion, gold) is expected


# --------------------------------------------------------------------------------------------------
# The fast path alone, on random numbers


def _spell(value: Fraction, rng: random.Random) -> str:
    """One of the spellings of a number a model writes (a decimal one rounded to a random precision)."""
    if value.denominator == 1 and rng.random() < 0.4:
        n = int(value)
        return rng.choice([str(n), f"0{n}" if n >= 0 else str(n), f"{n:,}", f"x = {n}", f"\\text{{{n}}}",
                           f"$ {n} $", f"{n}.0", f"{n}^\\circ", f"{n:,}".replace(",", ",\\! ")])
    if rng.random() < 0.5:
        a, b = value.numerator, value.denominator
        return rng.choice([f"\\frac{{{a}}}{{{b}}}", f"{a}/{b}", f"\\dfrac{{{a}}}{{{b}}}"])
    text = f"{float(value):.{rng.choice([1, 3, 5, 6, 7, 10, 15, 16])}f}"
    return rng.choice([text, f"x = {text}", text.replace("0.", ".", 1) if text.startswith("0.") else text])


def _value(rng: random.Random) -> Fraction:
    return rng.choice([
        lambda: Fraction(rng.randint(-10**6, 10**6)),
        lambda: Fraction(rng.randint(-50, 50), rng.randint(1, 40)),
        lambda: Fraction(rng.randint(0, 10**9), 10 ** rng.randint(0, 9)),
        lambda: Fraction(rng.randint(1, 9) * rng.choice([1, 5]), 10 ** rng.randint(5, 8)),  # tiny: both round to 0
        lambda: Fraction(rng.randint(1, 3 * 10**7), 2 * 10**6 + rng.choice([0, 1])),  # halfway at the 6th decimal
        lambda: Fraction(rng.randint(10**5, 10**8), rng.choice([1, 3, 7, 10])),  # past 10^6
    ])()


def test_fast_path_verdicts_are_math_verifys_on_random_numbers():
    """Every verdict the fast path gives on numbers (exact, rounded, assigned, near ties) is math-verify's."""
    rng = random.Random(15)
    decided, wrong = 0, []
    for _ in range(600):
        gold = _value(rng)
        near = gold + Fraction(rng.choice([1, -1]), 10 ** rng.randint(0, 9))
        predicted = rng.choice([gold, gold, near, _value(rng)])
        g, p = _spell(gold, rng), _spell(predicted, rng)
        fast = quick_equal(p, g)
        if fast is not None:
            decided += 1
            if fast != reference_verdict(boxed(p), g):
                wrong.append((p, g, fast))
    assert wrong == [] and decided > 300


@pytest.mark.parametrize(
    "predicted, gold",
    [("42", "42"), ("43", "42"), ("025", "25"), ("x = 7", "7"), ("2125", "2,125"), ("-3", "3"),
     (r"\frac{2}{4}", r"\frac{1}{2}"), (r"\frac{3}{4}", r"\frac{1}{2}"), ("3/8", r"\dfrac{3}{8}"), ("0.25", r"\frac14"),
     ("0.3", r"\frac{1}{4}"), (r"\text{12}", "12"), (r"\frac{\sqrt{21}}{5}", r"\frac{\sqrt{21}}{5}"),
     (r"120^\circ", "120"), ("10080", r"10,\!080"), ("p-q", "p - q"), (r"\left(-2, 1\right)", "(-2, 1)"), (r"\dfrac{\pi}{6}", r"\frac{\pi}{6}")],
)
def test_common_answers_never_wait_for_math_verify(predicted, gold):
    """Integers, fractions and wrong numbers are decided in-process: what keeps rewards fast."""
    assert quick_equal(predicted, gold) is not None


@pytest.mark.parametrize(
    "predicted, gold",
    [("0.0833333333333333", r"\frac{1}{12}"), ("0.0000002", "0.0000001"), (r"10\%", "0.1"), ("32, 349", "32349"),
     ("2 3", "23"), ("x = 3", "y = 3"), ("5.", "5"), (r"\left(5\right)", "5"), ("1000000.5", "1000000.4")],
)
def test_fast_path_leaves_uncertain_answers_to_math_verify(predicted, gold):
    assert quick_equal(predicted, gold) is None


# --------------------------------------------------------------------------------------------------
# Rewrites of the benchmark gold answers


def _benchmark_golds() -> list[str]:
    paths = [DATA / f"{name}.jsonl" for name in BENCHMARKS]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"{DATA} does not hold {', '.join(BENCHMARKS)}")
    return [json.loads(line)["answer"] for p in paths for line in p.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_rewritten_benchmark_answers_agree_with_math_verify():
    """Every 4th gold of the five benchmarks, in each of its equal and different rewrites (about 6,000 pairs)."""
    cases = rewritten_pairs(_benchmark_golds()[::4])
    unexplained, explained = _disagreements(cases)
    assert len(cases) > 5000
    assert unexplained == [], unexplained[:20]
    assert sum(explained.values()) < 0.002 * len(cases), explained
