"""Hostile completions: no exception escapes, a check past its limit is wrong, none holds a call up (issue 6.1).

Two halves:

- a fixed corpus (tests/nasty_completions.py): empty strings, megabyte strings, thousands of nested or
  unbalanced ``\\boxed{``, invalid UTF-8 decoded with replacement, NUL bytes, lone surrogates, direction
  marks, numbers with thousands of digits and LaTeX that keeps sympy busy for minutes. Each completion is
  checked alone and timed (at most 2 s with the default 1 s limit), then the whole corpus goes through
  ``check_many``, both reward formulas, ``lapo.score.score_rows`` and the ``lapo score`` command line;
- generated cases (hypothesis, more than 10,000 per run: each test counts its own against ``MIN_CASES``): soups of
  hostile pieces, wrong answers in many spellings next to decoys of the right one, and scored rollout files.

The TRL reward callables (``lapo.train.rewards.DiscoveryReward`` / ``InternalizationReward``) get the corpus and
every soup batch too, called as TRL 1.16 calls them (text and conversational completions).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lapo.cli import main as lapo_main
from lapo.core import length
from lapo.core.checker import AnswerChecker
from lapo.core.equivalence import is_valid_gold
from lapo.core.extract import boxed_answers, extract_answer, extract_boxed
from lapo.score import score_rows

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nasty_completions import Nasty, corpus  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.multiproc]

LIMIT_S = 1.0  # the default time limit of one check
HOLD_UP_S = 2.0  # the most one completion may hold up a reward call
SHORT_S = 0.25  # the limit where it is not itself under test (the monsters then cost less)
MIN_CASES = {"soup": 110 * 45, "wrong_answers": 45 * 32, "extraction": 100 * 25, "score_rows": 50 * 30}  # examples x min batch

FUZZ = settings(
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=True,
)


@pytest.fixture(scope="module")
def nasty() -> list[Nasty]:
    return corpus()


@pytest.fixture(scope="module")
def checker():
    with AnswerChecker(timeout_s=LIMIT_S, workers=2) as c:
        c.check("\\boxed{\\sqrt{2}}", "\\sqrt{2}+0")  # start the workers: start-up is no check's time
        yield c


@pytest.fixture(scope="module")
def number_checker():
    with AnswerChecker(timeout_s=LIMIT_S, workers=1, fallback="last_number") as c:
        c.check("\\boxed{\\sqrt{2}}", "\\sqrt{2}+0")
        yield c


def _assert_rewards(score: length.GroupScore, correct: list[bool], weight: float) -> None:
    assert len(score.rewards) == len(score.length_rewards) == len(correct)
    for ok, reward, length_reward in zip(correct, score.rewards, score.length_rewards):
        assert math.isfinite(reward) and 0.0 <= length_reward <= 1.0
        assert reward == 0.0 if not ok else 1.0 <= reward <= 1.0 + weight + 1e-12


def _assert_scored_row(row: dict, weight_by_stage: dict[str, float], stage: str) -> None:
    assert isinstance(row["correct"], bool)
    assert math.isfinite(row["reward"]) and 0.0 <= row["length_reward"] <= 1.0
    assert row["reward"] == 0.0 if not row["correct"] else 1.0 <= row["reward"] <= 1.0 + weight_by_stage[stage] + 1e-12


WEIGHTS = {"discovery": length.DISCOVERY_WEIGHT, "internalization": length.INTERNALIZATION_WEIGHT}


# --------------------------------------------------------------------------------------------------
# The fixed corpus


def _check_one_at_a_time(cases: list[Nasty], problems: list[str], took: dict[str, float]) -> None:
    with AnswerChecker(timeout_s=LIMIT_S, workers=1) as plain, AnswerChecker(timeout_s=LIMIT_S, workers=1, fallback="last_number") as numbers:
        for c in (plain, numbers):  # start-up (fork, warm-up) is no check's time, as in a trainer
            c.check("\\boxed{\\sqrt{2}}", "\\sqrt{2}+0")
        for case in cases:
            start = time.monotonic()
            verdicts = (numbers if case.fallback == "last_number" else plain).check_many([case.completion], [case.gold])
            took[case.name] = time.monotonic() - start
            if not (isinstance(verdicts, list) and len(verdicts) == 1 and isinstance(verdicts[0], bool)):
                problems.append(f"{case.name}: returned {verdicts!r}")
                continue
            if took[case.name] > HOLD_UP_S:
                problems.append(f"{case.name}: held the call up for {took[case.name]:.2f} s")
            if case.slow and verdicts[0]:
                problems.append(f"{case.name}: past the time limit yet judged correct")
            if case.expected is not None and verdicts[0] is not case.expected:
                problems.append(f"{case.name}: judged {verdicts[0]}, expected {case.expected}")


def test_each_nasty_completion_alone_is_judged_right_and_quickly(nasty):
    """One completion per call, timed: never raises, at most 2 s, the expected verdict, slow ones wrong.

    The default limit of 1 s; two threads with a checker each (so the monsters' seconds overlap, and the
    limit is shown to hold outside the main thread too).
    """
    cases = [x for x in nasty if not x.name.startswith("right_but_slow")]  # those: the next test
    problems: list[str] = []
    took: dict[str, float] = {}
    threads = [threading.Thread(target=_check_one_at_a_time, args=(cases[i::2], problems, took)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert sorted(took) == sorted(x.name for x in cases), "a thread died"
    assert problems == [], "\n".join(problems)
    assert max(took.values()) >= LIMIT_S * 0.9  # the monsters really ran into the limit (else they test nothing)


def test_a_check_past_its_limit_is_wrong_even_when_right(checker):
    """Right answers that sympy cannot confirm in time are wrong, and cost the limit, not minutes."""
    from nasty_completions import RIGHT_BUT_SLOW, SYMPY_MONSTERS

    latex = [SYMPY_MONSTERS[name] for name in RIGHT_BUT_SLOW]
    with AnswerChecker(timeout_s=0.3, workers=2) as fast:
        fast.check("\\boxed{\\sqrt{2}}", "\\sqrt{2}+0")
        start = time.monotonic()
        verdicts = fast.check_many([f"\\boxed{{{x}}}" for x in latex], [x + "+0" for x in latex])
        took = time.monotonic() - start
        assert verdicts == [False] * len(latex)
        assert took < 0.3 * len(latex) + HOLD_UP_S  # each paid about the limit, spread over two workers
        # and the checker is healthy afterwards: a real answer still needs math-verify and passes
        assert fast.check("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}") is True


def test_the_whole_corpus_in_one_call_then_both_rewards(nasty):
    """check_many on everything at once; its verdicts feed discovery and internalization rewards."""
    with AnswerChecker(timeout_s=SHORT_S, workers=2) as c, AnswerChecker(timeout_s=SHORT_S, workers=1, fallback="last_number") as n:
        plain = [x for x in nasty if x.fallback == "none"]
        numbers = [x for x in nasty if x.fallback == "last_number"]
        start = time.monotonic()
        verdicts = c.check_many([x.completion for x in plain], [x.gold for x in plain])
        verdicts += n.check_many([x.completion for x in numbers], [x.gold for x in numbers])
        took = time.monotonic() - start
    cases = plain + numbers
    assert len(verdicts) == len(cases) and all(isinstance(v, bool) for v in verdicts)
    wrong = [(x.name, v) for x, v in zip(cases, verdicts) if (x.expected is not None and v is not x.expected) or (x.slow and v)]
    assert wrong == []
    slow = sum(x.slow for x in cases)
    assert took < SHORT_S * slow / 2 + 10  # the limit per monster over two workers, plus the rest
    rng_lengths = [0, 1, 7, 4096, 10**6, 3, 3, 250]
    for start in range(0, len(cases), 8):
        flags = verdicts[start : start + 8]
        lengths = [rng_lengths[i % 8] + len(cases[start + i].completion) % 997 for i in range(len(flags))]
        _assert_rewards(length.discovery_rewards(flags, lengths), flags, length.DISCOVERY_WEIGHT)
        for target in (None, 1, 300, 4096):
            _assert_rewards(length.internalization_rewards(flags, lengths, target), flags, length.INTERNALIZATION_WEIGHT)


def _corpus_rows(cases: list[Nasty]) -> list[dict]:
    """Rollout lines of the corpus: groups of eight, half with a budget, lengths from the text."""
    rows = []
    for i, case in enumerate(cases):
        row = {"problem_id": f"p{i // 8}", "completion": case.completion, "answer": case.gold,
               "num_tokens": min(len(case.completion) // 4, 8192) + i % 5, "_name": case.name}
        if (i // 8) % 2:
            row["budget"] = 100 + 10 * (i // 8)
        rows.append(row)
    return rows


def _write_rollouts(path: Path, rows: list[dict]) -> None:
    """JSON lines as an engine writes them: escaped, raw UTF-8, and one line of raw invalid bytes."""
    with path.open("wb") as out:
        for i, row in enumerate(rows):
            try:
                line = json.dumps(row, ensure_ascii=bool(i % 2)).encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates only travel escaped
                line = json.dumps(row).encode("utf-8")
            out.write(line + b"\n")
        raw = b'{"problem_id": "raw", "completion": "\xff\xfe\xc0\xaf \\\\boxed{3}\xc3", "answer": "3", "num_tokens": 9}\n'
        out.write(raw)


def _json_lines(text: str) -> list[dict]:
    # split on "\n" only: str.splitlines() also splits at U+0085 and U+2028, which JSON leaves unescaped
    return [json.loads(line) for line in text.split("\n") if line]


def test_lapo_score_command_on_a_file_of_nasty_lines(nasty, tmp_path):
    """``lapo score`` (grouping and both rewards through ``score_rows``) on the corpus as JSON lines."""
    rows = [{k: v for k, v in r.items() if k != "_name"} for r in _corpus_rows([x for x in nasty if x.fallback == "none"])]
    cases = [x for x in nasty if x.fallback == "none"]
    src = tmp_path / "nasty.jsonl"
    _write_rollouts(src, rows)
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"p0": 50, "p2": 4096, "\ud800": 7}))
    for stage in ("discovery", "internalization"):
        out = tmp_path / f"scored-{stage}.jsonl"
        extra = ["--targets", str(targets)] if stage == "internalization" else []
        command = ["score", "--stage", stage, "--input", str(src), "--output", str(out), "--timeout", str(SHORT_S), *extra]
        assert lapo_main(command) == 0
        scored = _json_lines(out.read_text(encoding="utf-8"))
        assert len(scored) == len(rows) + 1
        for row, case in zip(scored, cases):
            _assert_scored_row(row, WEIGHTS, stage)
            assert row["completion"] == case.completion  # written back intact, surrogates and all
            assert not (case.slow and row["correct"]) and (case.expected is None or row["correct"] is case.expected), case.name
        assert scored[-1]["correct"] is True  # the raw-bytes line: replacement characters around a right box


def test_lapo_score_process_writes_hostile_text_to_stdout(nasty, tmp_path):
    """The installed command in its own process, stdout a pipe: surrogates and NULs must not break it."""
    cases = [x for x in nasty if not x.slow and x.fallback == "none" and len(x.completion) < 300_000][:40]
    rows = [{k: v for k, v in r.items() if k != "_name"} for r in _corpus_rows(cases)]
    src = tmp_path / "nasty.jsonl"
    _write_rollouts(src, rows)
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    done = subprocess.run([sys.executable, "-m", "lapo.cli", "score", "--stage", "discovery", "--input", str(src)],
                          capture_output=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    scored = _json_lines(done.stdout.decode("utf-8"))
    assert [r["completion"] for r in scored[:-1]] == [c.completion for c in cases]
    assert all(r["correct"] is c.expected for r, c in zip(scored, cases) if c.expected is not None)


def test_in_process_checks_have_a_limit_in_the_main_thread():
    """workers=0 (debugging only): a SIGALRM timer stops sympy where it runs Python code; never raises.

    SIGALRM only interrupts Python bytecode: the double-integral monster once spent 110 s inside one C call
    here, so it is left out; only worker processes (every recipe's setting) bound such checks, and the
    corpus tests run it through them.
    """
    from nasty_completions import SYMPY_MONSTERS

    with AnswerChecker(timeout_s=0.5, workers=0) as c:
        for name in ("tower_of_nines", "deep_parentheses", "rational_power"):
            start = time.monotonic()
            assert c.check(f"\\boxed{{{SYMPY_MONSTERS[name]}}}", "1") is False, name
            assert time.monotonic() - start < HOLD_UP_S, name
        assert c.check("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}") is True  # the timer is disarmed


def test_an_alarm_dropped_inside_a_gc_callback_does_not_lift_the_limit():
    """Python drops an exception raised in a gc callback (seen in CI: hypothesis's callback swallowed the alarm
    and a check ran 7.5 s past its 0.5 s limit); the timer must fire again until the check stops."""
    import gc

    from nasty_completions import SYMPY_MONSTERS

    busy = []

    def slow_callback(phase, info):
        if phase == "start" and not busy:  # the first collection holds the thread past the limit
            busy.append(time.monotonic())
            while time.monotonic() - busy[0] < 0.8:
                pass

    with AnswerChecker(timeout_s=0.5, workers=0) as c:
        c.check("\\boxed{1}", "\\frac{2}{2}")  # warm up outside the measurement
        gc.callbacks.append(slow_callback)
        try:
            start = time.monotonic()
            verdict = c.check(f"\\boxed{{{SYMPY_MONSTERS['deep_parentheses']}}}", "1")
            took = time.monotonic() - start
        finally:
            gc.callbacks.remove(slow_callback)
    assert busy and verdict is False and took < HOLD_UP_S


def test_in_process_checker_on_the_fast_corpus(nasty):
    with AnswerChecker(timeout_s=0.5, workers=0) as c, AnswerChecker(timeout_s=0.5, workers=0, fallback="last_number") as n:
        for case in nasty:
            if case.slow:
                continue
            verdict = (n if case.fallback == "last_number" else c).check(case.completion, case.gold)
            assert case.expected is None or verdict is case.expected, case.name


# --------------------------------------------------------------------------------------------------
# One checker shared by threads or copied by fork never mixes up verdicts


def _sqrt_pairs(offset: int, right: bool) -> tuple[list[str], list[str]]:
    ks = range(2 + offset, 10 + offset)
    return [f"\\boxed{{\\sqrt{{{k}}}+{0 if right else 1}}}" for k in ks], [f"\\sqrt{{{k}}}" for k in ks]


def test_one_checker_shared_by_threads_keeps_their_verdicts_apart(checker):
    mixups = []

    def run(right: bool):
        for rep in range(6):
            completions, golds = _sqrt_pairs(rep, right)
            got = checker.check_many(completions, golds)
            if got != [right] * len(golds):
                mixups.append((right, got))

    threads = [threading.Thread(target=run, args=(right,)) for right in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert mixups == []


def _check_in_forked_child(shared, queue):
    completions, golds = _sqrt_pairs(0, right=False)
    queue.put([shared.check(c, g) for c, g in zip(completions, golds)])


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_a_forked_copy_never_reads_the_parents_verdicts():
    with AnswerChecker(timeout_s=2.0, workers=1) as shared:
        shared.check("\\boxed{\\sqrt{2}}", "\\sqrt{2}+0")  # the parent's pool exists before the fork
        context = mp.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_check_in_forked_child, args=(shared, queue))
        child.start()
        completions, golds = _sqrt_pairs(0, right=True)
        parent = [shared.check(c, g) for c, g in zip(completions, golds)]
        from_child = queue.get(timeout=120)
        child.join(30)
    assert parent == [True] * len(golds) and from_child == [False] * len(golds)


# --------------------------------------------------------------------------------------------------
# Generated cases


PIECES = [
    "\\boxed{", "\\fbox{", "\\boxed {", "{", "}", "}}", "\\frac", "\\dfrac", "^", "_", "\\sqrt", "\\left(",
    "\\right)", "$", "</think>", "<think>", "-", ".", ",", "/", "=", "x", "\\pi", "\\infty", "\\text{", "\\",
    "%", "\\%", "^\\circ", "\x00", "\ud800", "\udfff", "\u202e", "\u200f", "\u2067", "\ufeff", "\ufffd", "\n",
    " ", "\uff11", "\u0663", "e", "i", "\\cdot", "!", "(", ")", "[", "]", "\\,", "\\!", "\t", "\r", "box",
]
MATH_PIECES = ["1", "2", "3", "7", "12", "x", "y", "+", "-", "^", "{", "}", "\\frac", "\\sqrt", "(", ")", ",", ".",
               "\\pi", "\\cdot", "=", "\\left(", "\\right)", "!", "\\infty", " ", "i"]

piece = st.one_of(st.sampled_from(PIECES), st.integers(-(10**12), 10**12).map(str), st.text(max_size=8))
soup = st.lists(piece, max_size=30).map("".join)
repeated = st.tuples(
    st.sampled_from(["\\boxed{", "{", "}", "\\boxed{1}", "\x00", "\ud800", "9", "\\fbox{", "\u202e"]),
    st.integers(1, 20_000),
).map(lambda t: t[0] * t[1])
math_soup = st.lists(st.sampled_from(MATH_PIECES), max_size=10).map("".join)
invalid_utf8 = st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="replace"))
completion = st.one_of(
    soup,
    st.tuples(soup, repeated, soup).map("".join),
    invalid_utf8,
    st.tuples(soup, math_soup, soup.filter(lambda s: "box" not in s)).map(lambda t: t[0] + "\\boxed{" + t[1] + "}" + t[2]),
)
GOLDS = ["1", "0", "-3", "025", "2,125", "\\frac{1}{2}", "\\dfrac{17}{50}", "\\sqrt{51}", "(6,31,-1)", "p - q",
         "\\left( 3, \\frac{\\pi}{2} \\right)", "288 \\pi", "6 - 5i", "[-2, 7]", "90^\\circ", "\\text{(C)}", ".35625"]
gold = st.one_of(st.sampled_from(GOLDS), st.integers(-1000, 10**6).map(str), st.text(max_size=6), st.just(""), math_soup)


def _has_glue() -> bool:
    try:
        import lapo.train.rewards  # noqa: F401
    except ImportError:
        return False
    return True


def _splice(rnd) -> str:
    """A completion spliced from hostile pieces by a hypothesis-seeded Random (cheap, so batches grow)."""
    parts = []
    for _ in range(rnd.randrange(40)):
        roll = rnd.random()
        if roll < 0.6:
            parts.append(rnd.choice(PIECES))
        elif roll < 0.75:
            parts.append(rnd.choice(MATH_PIECES) * rnd.randrange(1, 4))
        elif roll < 0.85:
            parts.append(str(rnd.randrange(-(10**rnd.randrange(1, 60)), 10**rnd.randrange(1, 60))))
        elif roll < 0.95:
            parts.append(bytes(rnd.randrange(256) for _ in range(rnd.randrange(30))).decode("utf-8", errors="replace"))
        else:
            parts.append(rnd.choice(["\\boxed{", "{", "}", "\x00", "\ud800", "\u202e", "9"]) * rnd.randrange(1, 5000))
    if rnd.random() < 0.5:
        parts.append("\\boxed{" + "".join(rnd.choice(MATH_PIECES) for _ in range(rnd.randrange(8))) + "}")
    return "".join(parts)


def test_fuzz_soups_through_check_many_and_both_rewards(checker):
    """Hostile soups in batches: bools back, no box no credit, rewards well formed for any lengths."""
    cases: Counter = Counter()  # generated cases this test ran (its own count: no test reads another's)


    @settings(FUZZ, max_examples=110)
    @given(
        batch=st.lists(st.tuples(completion, gold, st.integers(0, 10**6)), min_size=15, max_size=20),
        rnd=st.integers(0, 2**64).map(random.Random),  # recorded by its seed: a failure replays exactly
        target=st.one_of(st.none(), st.integers(1, 10**5)),
    )
    def run(batch, rnd, target):
        batch = batch + [(_splice(rnd), rnd.choice(GOLDS + ["", "\\,", "1" * 2001]), rnd.randrange(10**6)) for _ in range(30)]
        completions, golds, lengths = map(list, zip(*batch))
        verdicts = checker.check_many(completions, golds)
        cases["soup"] += len(batch)
        assert len(verdicts) == len(batch) and all(isinstance(v, bool) for v in verdicts)
        for c, g, ok in zip(completions, golds, verdicts):
            if extract_answer(c) is None or not is_valid_gold(g):
                assert ok is False, (c[:200], g)
        for start in range(0, len(batch), 8):
            flags, group_lengths = verdicts[start : start + 8], lengths[start : start + 8]
            _assert_rewards(length.discovery_rewards(flags, group_lengths), flags, length.DISCOVERY_WEIGHT)
            _assert_rewards(length.internalization_rewards(flags, group_lengths, target), flags, length.INTERNALIZATION_WEIGHT)
        if glue is not None:  # the TRL callables on the batch's first two groups of eight (drawn by hypothesis)
            for out, correct in _drive_glue(*glue, completions[:16], golds[:16], [k % 9000 for k in lengths[:16]], 8):
                assert all(math.isfinite(r) and (r == 0.0 if not ok else r >= 1.0) for r, ok in zip(out, correct))

    glue = _glue_rewards(checker, 8)[:2] if _has_glue() else None
    run()
    assert cases["soup"] >= MIN_CASES["soup"]


# Values of known equality, each with spellings a model might use.
def _int_spellings(n: int) -> list[str]:
    out = [str(n), f"x = {n}", f"{n}.0", f"\\text{{{n}}}", f"$ {n} $", f"{n}^\\circ", f"{{{n}}}", f"\\left({n}\\right)"]
    if abs(n) >= 1000:
        out.append(f"{n:,}")
    if n >= 0:
        out.append(f"00{n}")
    return out


def _frac_spellings(v: Fraction) -> list[str]:
    sign, a, b = ("-" if v < 0 else ""), abs(v.numerator), v.denominator
    out = [f"{sign}\\frac{{{a}}}{{{b}}}", f"{sign}\\dfrac{{{a}}}{{{b}}}", f"{sign}{a}/{b}",
           f"{sign}\\frac{{{3 * a}}}{{{3 * b}}}", f"\\frac{{{sign}{a}}}{{{b}}}"]
    if a < 10 and b < 10:
        out.append(f"{sign}\\frac{a}{b}")
    if 10**6 % b == 0:
        out.append(f"{sign}{a / b!r}")
    return out


@st.composite
def value_pairs(draw):
    """(kind, gold, predicted, same): gold canonical, predicted in any spelling of an equal or other value."""
    kind = draw(st.sampled_from(["int", "frac", "surd", "tuple", "pi", "interval"]))
    same = draw(st.booleans())
    if kind == "int":
        n = draw(st.integers(-(10**9), 10**9))
        m = n if same else draw(st.integers(-(10**9), 10**9).filter(lambda k: k != n))
        return kind, str(n), draw(st.sampled_from(_int_spellings(m))), same
    if kind == "frac":
        fraction = st.builds(Fraction, st.integers(-500, 500), st.integers(2, 64)).filter(lambda f: f.denominator > 1)
        v = draw(fraction)
        w = v if same else draw(fraction.filter(lambda f: f != v))
        return kind, _frac_spellings(v)[0], draw(st.sampled_from(_frac_spellings(w))), same
    if kind == "surd":  # a*sqrt(b), b square-free: equal values have equal (a, b)
        squarefree = st.sampled_from([2, 3, 5, 6, 7, 10, 11, 13, 14, 15, 17, 19, 21, 51, 66])
        a, b = draw(st.integers(1, 30)), draw(squarefree)
        c, d = (a, b) if same else draw(st.tuples(st.integers(1, 30), squarefree).filter(lambda t: t != (a, b)))
        spelled = draw(st.sampled_from([f"{c}\\sqrt{{{d}}}", f"\\sqrt{{{c * c * d}}}", f"{c} \\sqrt{d}" if d < 10 else f"{c}\\sqrt{{{d}}}"]))
        return kind, f"{a}\\sqrt{{{b}}}", spelled, same
    if kind == "tuple":
        a, b = draw(st.integers(-50, 50)), draw(st.integers(-50, 50))
        if same:
            c, d = a, b
        else:
            c, d = draw(st.sampled_from([(b, a), (a, b + 1), (a - 1, b), (-a, b) if a else (a, b + 2)]))
            if (c, d) == (a, b):
                c, d = a, b + 3
        spelled = draw(st.sampled_from([f"({c}, {d})", f"({c},{d})", f"\\left( {c}, {d} \\right)"]))
        return kind, f"({a}, {b})", spelled, same
    if kind == "pi":
        a = draw(st.integers(2, 500))
        c = a if same else draw(st.integers(2, 500).filter(lambda k: k != a))
        return kind, f"{a} \\pi", draw(st.sampled_from([f"{c}\\pi", f"{c} \\pi", f"\\pi {c}" if c < 10 else f"{c}\\pi"])), same
    a, b = sorted(draw(st.tuples(st.integers(-50, 50), st.integers(-50, 50)).filter(lambda t: t[0] != t[1])))
    gold_text = f"[{a}, {b})"
    other = draw(st.sampled_from([f"[{a}, {b}]", f"({a}, {b})", f"({a}, {b}]", f"[{a}, {b + 1})", f"[{a - 1}, {b})"]))
    return kind, gold_text, gold_text.replace(", ", ",") if same else other, same


clean_text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_characters="{}\\$,", exclude_categories=("Nd",)),
        st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "\u200f", "\ufeff", "\ufffd", "\n"]),
    ),
    max_size=40,
)


@st.composite
def wrong_answer_cases(draw):
    kind, g, p, same = draw(value_pairs())
    before, after = draw(clean_text), draw(clean_text)
    wrapper = draw(st.sampled_from(["plain", "decoy_box_before", "open_box_after", "gold_unboxed_after", "fbox"]))
    text = {
        "plain": f"{before}\\boxed{{{p}}}{after}",
        "decoy_box_before": f"\\boxed{{{g}}}{before} Wait. No. \\boxed{{{p}}}{after}",
        "open_box_after": f"{before}\\boxed{{{p}}}{after}\\boxed{{{g}",
        "gold_unboxed_after": f"{before}\\boxed{{{p}}} (not ${g}$){after}",
        "fbox": f"{before}\\fbox{{{p}}}{after}",
    }[wrapper]
    return kind, g, p, same, text


def test_fuzz_wrong_answers_are_never_judged_correct(checker, number_checker):
    """Different values in any spelling, next to decoys of the right one, are wrong; numbers are exact."""
    cases: Counter = Counter()  # generated cases this test ran (its own count: no test reads another's)
    tally: Counter = Counter()

    @settings(FUZZ, max_examples=45)
    @given(batch=st.lists(wrong_answer_cases(), min_size=32, max_size=40),
           numbers=st.lists(st.tuples(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6), clean_text), max_size=10))
    def run(batch, numbers):
        verdicts = checker.check_many([case[4] for case in batch], [case[1] for case in batch])
        cases["wrong_answers"] += len(batch)
        for (kind, g, p, same, text), ok in zip(batch, verdicts):
            tally[(kind, same, ok)] += 1
            if not same:
                assert ok is False, (kind, g, p, text)
            elif kind in ("int", "frac") and len(boxed_answers(text)) == 1:  # equal numbers, in any spelling
                assert ok is True, (kind, g, p, text)  # (a decoy box that joins the answer makes it "g, p")
        # last_number fallback: the last number after the reasoning is the answer, compared exactly
        completions = [f"<think>{n + 1} {n}</think>{noise} so {m}{noise}" for n, m, noise in numbers]
        got = number_checker.check_many(completions, [str(n) for n, _, _ in numbers])
        cases["wrong_answers"] += len(numbers)
        assert got == [n == m for n, m, _ in numbers]

    run()
    assert cases["wrong_answers"] >= MIN_CASES["wrong_answers"]
    # equal values needing math-verify (surds, tuples, multiples of pi, intervals) are mostly recognised
    same_slow = [(k, ok, n) for (k, same, ok), n in tally.items() if same and k not in ("int", "frac")]
    right = sum(n for _, ok, n in same_slow if ok)
    total = sum(n for _, _, n in same_slow)
    assert total == 0 or right / total >= 0.9, tally


def _reference_extract_boxed(text: str) -> str | None:
    """The first implementation: one stack pass over the whole text (the fast one must agree)."""
    import re

    tokens = re.compile(r"\\(?:boxed|fbox)\s*\{|\{|\}")
    stack, best = [], None
    for match in tokens.finditer(text):
        token = match.group()
        if token == "}":
            if stack:
                start = stack.pop()
                if start is not None:
                    best = (start, match.start())
        elif token == "{":
            stack.append(None)
        else:
            stack.append(match.end())
    return None if best is None else text[best[0] : best[1]].strip()


brace_heavy = st.lists(st.sampled_from(["\\boxed{", "\\fbox{", "\\boxed  {", "{", "}", "x", "1", "\\", "box", " "]),
                       max_size=60).map("".join)


def test_fuzz_extraction_agrees_with_the_reference_and_never_raises(checker):
    """The box that closes last, as the first (whole-text) implementation found it; then checked."""
    cases: Counter = Counter()  # generated cases this test ran (its own count: no test reads another's)


    @settings(FUZZ, max_examples=100)
    @given(texts=st.lists(st.one_of(completion, brace_heavy, st.tuples(brace_heavy, repeated, brace_heavy).map("".join)),
                          min_size=25, max_size=30),
           answer=st.sampled_from(["1", "x1", "1x", "\\boxed{1}", "x"]))
    def run(texts, answer):
        for text in texts:
            assert extract_boxed(text) == _reference_extract_boxed(text)
            for fallback in ("none", "last_number"):
                found = extract_answer(text, fallback)
                assert found is None or isinstance(found, str)
        verdicts = checker.check_many(texts, [answer] * len(texts))
        cases["extraction"] += len(texts)
        assert all(ok is False for text, ok in zip(texts, verdicts) if extract_boxed(text) is None)

    run()
    assert cases["extraction"] >= MIN_CASES["extraction"]


rollout_row = st.fixed_dictionaries(
    {
        "problem_id": st.sampled_from(["a", "b", "c", "d", "\ud800", "\x00", "0"]),
        "completion": st.one_of(completion, wrong_answer_cases().map(lambda t: t[4])),
        "answer": st.one_of(gold, st.none(), st.integers(-5, 5)),
        "num_tokens": st.integers(0, 10**6),
    },
    optional={"budget": st.integers(1, 10**5)},
)


def test_fuzz_score_rows_groups_and_rewards(checker):
    cases: Counter = Counter()  # generated cases this test ran (its own count: no test reads another's)

    @settings(FUZZ, max_examples=50)
    @given(rows=st.lists(rollout_row, min_size=30, max_size=40), stage=st.sampled_from(["discovery", "internalization"]))
    def run(rows, stage):
        # one budget per problem (the file format's rule): the first row's, when it has one
        budgets = {}
        for row in rows:
            budgets.setdefault(row["problem_id"], row.get("budget"))
        rows = [{k: v for k, v in r.items() if k != "budget"} | ({"budget": budgets[r["problem_id"]]} if budgets[r["problem_id"]] else {})
                for r in rows]
        scored = score_rows(rows, stage, checker, targets={"a": 200})
        cases["score_rows"] += len(rows)
        assert len(scored) == len(rows)
        by_problem: dict[str, list[dict]] = {}
        for row in scored:
            _assert_scored_row(row, WEIGHTS, stage)
            if row["answer"] is None or not is_valid_gold(str(row["answer"])):
                assert row["correct"] is False
            by_problem.setdefault(row["problem_id"], []).append(row)
        for group in by_problem.values():
            correct_lengths = [r["num_tokens"] for r in group if r["correct"]]
            if stage == "discovery":
                band = length.percentile_band(correct_lengths)
                assert all(r["band"] == (list(band) if band else None) for r in group)
            else:
                assert len({r["target"] for r in group}) == 1

    run()
    assert cases["score_rows"] >= MIN_CASES["score_rows"]


def test_generated_cases_add_up_to_ten_thousand():
    """Each fuzz test asserts that it ran at least its MIN_CASES (counted as they ran), so their minima bound
    the run's total from below, whatever order the tests run in."""
    assert sum(MIN_CASES.values()) >= 10_000


# --------------------------------------------------------------------------------------------------
# The TRL reward glue (lapo.train.rewards)


def _glue_rewards(checker, group_size: int, targets: dict | None = None):
    rewards = pytest.importorskip("lapo.train.rewards")
    from lapo.core.stats import LengthStats

    stats = LengthStats()
    return (rewards.DiscoveryReward(group_size, stats, checker),
            rewards.InternalizationReward(group_size, stats, checker, dict(targets or {})), stats)


def _drive_glue(discovery, internalization, completions, golds, lengths, group_size, step=0):
    """Call both TRL reward callables as TRL 1.16 does; return (rewards, correct flags) of each."""
    n = len(completions) // group_size * group_size
    common = dict(
        prompts=["P"] * n, completions=completions[:n], completion_ids=[range(k) for k in lengths[:n]],
        problem_id=[f"p{i // group_size}" for i in range(n)], answer=golds[:n],
        trainer_state=None, log_metric=lambda name, value: None,
    )
    results = []
    for reward, columns in ((discovery, {}),
                            (internalization, {"budget": [100 + i // group_size for i in range(n)],
                                               "budget_fallback": [(i // group_size) % 2 == 0 for i in range(n)]})):
        extra: dict = {}
        out = reward(**common, log_extra=extra.__setitem__, **columns)
        assert len(out) == n and len(extra["correct"]) == n
        results.append((out, extra["correct"]))
    return results


def test_trl_reward_glue_on_the_corpus(nasty):
    """lapo.train.rewards' stage-1 and stage-2 callables on the corpus: text and conversational completions."""
    plain = [x for x in nasty if x.fallback == "none"]
    plain = plain + plain[: (-len(plain)) % 8]  # whole groups of eight
    completions = [x.completion if i % 2 else [{"role": "assistant", "content": x.completion}] for i, x in enumerate(plain)]
    lengths = [min(len(x.completion) // 4, 4096) for x in plain]
    with AnswerChecker(timeout_s=SHORT_S, workers=2) as c:
        discovery, internalization, stats = _glue_rewards(c, 8)
        results = _drive_glue(discovery, internalization, completions, [x.gold for x in plain], lengths, 8)
    for (out, correct), weight in zip(results, (length.DISCOVERY_WEIGHT, length.INTERNALIZATION_WEIGHT)):
        for reward, ok, case in zip(out, correct, plain):
            assert math.isfinite(reward) and (reward == 0.0 if not ok else 1.0 <= reward <= 1.0 + weight + 1e-12)
            assert not (case.slow and ok) and (case.expected is None or ok is case.expected), case.name
    assert set(stats.problem_ids()) == {f"p{i}" for i in range(len(plain) // 8)}  # every group recorded


def test_ctrl_c_during_an_in_process_check_is_not_a_wrong_verdict(monkeypatch):
    import lapo.core.checker

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("Ctrl-C during a check")

    monkeypatch.setattr(lapo.core.checker, "_verify_in_process", interrupted)
    with AnswerChecker(timeout_s=0.5, workers=0) as c, pytest.raises(KeyboardInterrupt, match="Ctrl-C during a check"):
        c.check("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}")
