"""Final-answer extraction and equivalence checking, with a hard time limit per check.

Extraction takes the *last* ``\\boxed{...}`` (or ``\\fbox{...}``) with nested braces matched, in one
linear pass, so a megabyte of unbalanced ``\\boxed{`` costs milliseconds. Equivalence is decided in two
steps:

1. a fast path in the calling process: normalised strings and exact rational numbers (AIME's leading
   zeros, GSM8K's thousands separators, ``\\dfrac`` vs ``\\frac``, ``0.5`` vs ``\\frac{1}{2}``, ``x=3`` vs ``3``);
2. ``math-verify`` for everything else, run in worker processes that are killed when a check passes its
   time limit. math-verify's own limit uses ``signal.alarm``, which only works in the main thread of the
   main interpreter; a killed process works everywhere (threads, dataloader workers, Ray actors).

A check that fails, raises or runs out of time counts as wrong. Nothing here ever raises on a completion.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection, wait
from typing import Iterable, Sequence

# Answers longer than this are not worth sympy's time: no benchmark answer comes close.
MAX_ANSWER_CHARS = 2_000
DEFAULT_TIMEOUT_S = 1.0

_BOX_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*\{|\{|\}")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


# --------------------------------------------------------------------------------------------------
# Extraction


def extract_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}``/``\\fbox{...}``; braces inside are matched.

    "Last" means the box that closes last, so for ``\\boxed{\\boxed{3}}`` it is the outer one. Unclosed
    boxes are ignored. One pass over the text with a stack: linear in its length whatever it holds.
    """
    if not isinstance(text, str) or "box" not in text:
        return None
    stack: list[int | None] = []  # content start for a box's brace, None for a plain brace
    best: tuple[int, int] | None = None
    for match in _BOX_TOKENS.finditer(text):
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
    if best is None:
        return None
    return text[best[0] : best[1]].strip()


def extract_answer(text: str, fallback: str = "none") -> str | None:
    """The final answer of a completion: the last box, else (``fallback="last_number"``) the last number.

    The number fallback serves tasks whose answers are plain numbers (GSM8K-style); it looks after the
    think-closing tag when there is one, so numbers inside the reasoning do not count.
    """
    boxed = extract_boxed(text)
    if boxed is not None or fallback == "none" or not isinstance(text, str):
        return boxed
    if fallback != "last_number":
        raise ValueError(f"unknown answer fallback {fallback!r}: use 'none' or 'last_number'.")
    tail = text.rsplit("</think>", 1)[-1]
    numbers = _NUMBER.findall(tail[-10_000:])
    return numbers[-1] if numbers else None


# --------------------------------------------------------------------------------------------------
# Fast path: normalisation and exact numbers


_LATEX_NOISE = [
    ("\\left", ""),
    ("\\right", ""),
    ("\\!", ""),
    ("\\,", ""),
    ("\\;", ""),
    ("\\ ", ""),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("^\\circ", ""),
    ("^{\\circ}", ""),
    ("\\%", ""),
    ("%", ""),
    ("$", ""),
]
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_ASSIGNMENT = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?=(?!=)")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_SIMPLE_NUMBER = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")
_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$|^(-?)\\frac(\d)(\d)$")
_SLASH = re.compile(r"^(-?\d+)/(\d+)$")


def normalize_answer(answer: str) -> str:
    """A canonical spelling for string comparison: spacing, ``$``, ``\\left``, ``\\dfrac``, ``x=``, units."""
    s = answer.strip()
    for old, new in _LATEX_NOISE:
        s = s.replace(old, new)
    s = _TEXT_WRAPPER.sub(r"\1", s)
    s = "".join(s.split())
    s = _ASSIGNMENT.sub("", s)
    s = s.rstrip(".")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return s


def as_number(answer: str) -> Fraction | None:
    """The exact rational value of a normalised answer that is a plain number or fraction, else None."""
    if len(answer) > 200:  # no real answer is that long; int() also refuses > 4300 digits
        return None
    try:
        if _SIMPLE_NUMBER.match(answer):
            return Fraction(answer)
        if m := _SLASH.match(answer):
            return Fraction(int(m.group(1)), int(m.group(2)))
        if m := _FRAC.match(answer):
            sign, num, den = (m.group(1), m.group(2), m.group(3)) if m.group(2) else m.group(4, 5, 6)
            value = Fraction(int(num), int(den))
            return -value if sign else value
    except (ValueError, ZeroDivisionError):
        return None
    return None


def quick_equal(predicted: str, gold: str) -> bool | None:
    """True/False when the fast path can decide, None when math-verify must."""
    p, g = normalize_answer(predicted), normalize_answer(gold)
    if p == g:
        return True
    pn, gn = as_number(p), as_number(g)
    if pn is not None and gn is not None:
        return pn == gn
    return None


def is_valid_gold(gold: object) -> bool:
    """A gold answer that can be checked at all: a non-empty string of sane size."""
    return isinstance(gold, str) and bool(gold.strip()) and len(gold) <= MAX_ANSWER_CHARS


# --------------------------------------------------------------------------------------------------
# math-verify, run in a worker process


def _verify_in_process(predicted: str, gold: str, gold_cache: dict) -> bool:
    """math-verify on two extracted answers (runs inside a worker; gold parsed once per worker)."""
    from math_verify import parse, verify

    if gold not in gold_cache:
        if len(gold_cache) > 10_000:
            gold_cache.clear()
        gold_cache[gold] = parse("\\boxed{" + gold + "}", parsing_timeout=None)
    gold_parsed = gold_cache[gold]
    pred_parsed = parse("\\boxed{" + predicted + "}", parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _worker_loop(conn: Connection) -> None:
    """Serve (predicted, gold) pairs until the pipe closes; any error is a wrong answer."""
    import logging

    import math_verify  # noqa: F401 - imported before "ready" so no check's clock pays for it

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns that we disabled its alarm
    gold_cache: dict = {}
    conn.send("ready")
    while True:
        try:
            predicted, gold = conn.recv()
        except (EOFError, OSError):
            return
        try:
            ok = _verify_in_process(predicted, gold, gold_cache)
        except BaseException:  # noqa: BLE001 - a crash on one answer must not stop the worker
            ok = False
        conn.send(ok)


class _Worker:
    """One math-verify process; killed and replaced when a check runs past its limit."""

    STARTUP_S = 120.0  # importing sympy in a spawned process can take seconds on a loaded machine

    def __init__(self, context: mp.context.BaseContext):
        self._context = context
        self._start()

    def _start(self) -> None:
        self.conn, child = self._context.Pipe()
        self.process = self._context.Process(target=_worker_loop, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def wait_ready(self) -> None:
        """Block until the worker has imported math-verify, so start-up never eats a check's time limit."""
        if not self.ready and self.conn.poll(self.STARTUP_S):
            self.ready = self.conn.recv() == "ready"
        if not self.ready:
            raise RuntimeError("the math-verify worker process did not start; check that math-verify imports.")

    def restart(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


@dataclass
class AnswerChecker:
    """Grades completions against gold answers; the one checker used by training, scoring and evaluation.

    Args:
        timeout_s: wall-clock limit of one math-verify check; past it the answer counts as wrong.
        fallback: ``"none"`` (only boxed answers count) or ``"last_number"`` (plain-number tasks).
        workers: math-verify worker processes; 0 runs math-verify in this process, limited by its own
            signal alarm in the main thread and unlimited elsewhere (for debugging only).
        start_method: multiprocessing start method of the workers (``fork`` restarts fastest).
    """

    timeout_s: float = DEFAULT_TIMEOUT_S
    fallback: str = "none"
    workers: int = 1
    start_method: str | None = None
    _pool: list[_Worker] = field(default_factory=list, init=False, repr=False)
    _gold_cache: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"answer check timeout_s={self.timeout_s} must be positive, e.g. 1.0 seconds.")
        if self.workers < 0:
            raise ValueError(f"answer check workers={self.workers} must be 0 or more.")
        if self.fallback not in ("none", "last_number"):
            raise ValueError(f"answer fallback={self.fallback!r} must be 'none' or 'last_number'.")

    # The worker processes never travel: a copy (pickle, deepcopy) starts its own on first use.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pool"], state["_gold_cache"] = [], {}
        return state

    def __enter__(self) -> "AnswerChecker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def close(self) -> None:
        for worker in self._pool:
            worker.close()
        self._pool.clear()

    def check(self, completion: str, gold: str) -> bool:
        """Whether the completion's final answer equals the gold answer."""
        return self.check_many([completion], [gold])[0]

    def check_many(self, completions: Sequence[str], golds: Sequence[str]) -> list[bool]:
        """One verdict per (completion, gold) pair; never raises, never waits past the time limit."""
        if len(completions) != len(golds):
            raise ValueError(f"{len(completions)} completions but {len(golds)} gold answers: pass one of each.")
        verdicts: list[bool | None] = []
        pending: list[tuple[int, str, str]] = []
        for i, (completion, gold) in enumerate(zip(completions, golds)):
            verdict, predicted = self._fast_verdict(completion, gold)
            verdicts.append(verdict)
            if verdict is None:
                pending.append((i, predicted, gold))
        for i, ok in self._slow_verdicts(pending):
            verdicts[i] = ok
        return [bool(v) for v in verdicts]

    def _fast_verdict(self, completion: object, gold: object) -> tuple[bool | None, str]:
        if not isinstance(completion, str) or not is_valid_gold(gold):
            return False, ""
        predicted = extract_answer(completion, self.fallback)
        if predicted is None or not predicted or len(predicted) > MAX_ANSWER_CHARS:
            return False, ""
        return quick_equal(predicted, gold), predicted

    def _slow_verdicts(self, pending: list[tuple[int, str, str]]) -> Iterable[tuple[int, bool]]:
        if not pending:
            return []
        if self.workers == 0:
            return [(i, self._verify_here(p, g)) for i, p, g in pending]
        return self._verify_in_workers(pending)

    def _verify_here(self, predicted: str, gold: str) -> bool:
        try:
            return _verify_in_process(predicted, gold, self._gold_cache)
        except BaseException:  # noqa: BLE001
            return False

    def _ensure_pool(self) -> list[_Worker]:
        if not self._pool:
            method = self.start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            if method == "fork":
                import math_verify  # noqa: F401 - forked workers (and their restarts) inherit it, ready at once
            context = mp.get_context(method)
            self._pool = [_Worker(context) for _ in range(self.workers)]
        return self._pool

    def _verify_in_workers(self, pending: list[tuple[int, str, str]]) -> list[tuple[int, bool]]:
        """Deal the pending checks to the workers; a worker past its deadline is killed and replaced."""
        pool = self._ensure_pool()
        queue = list(reversed(pending))
        busy: dict[int, tuple[int, float]] = {}  # worker index -> (item index, deadline)
        results: list[tuple[int, bool]] = []
        while queue or busy:
            for w, worker in enumerate(pool):
                if w not in busy and queue:
                    item, predicted, gold = queue.pop()
                    busy[w] = (item, self._send(worker, predicted, gold))
            ready = wait([pool[w].conn for w in busy], timeout=self._next_timeout(busy))
            for w in list(busy):
                item, deadline = busy[w]
                if pool[w].conn in ready:
                    results.append((item, self._receive(pool[w])))
                    del busy[w]
                elif time.monotonic() >= deadline:
                    pool[w].restart()
                    results.append((item, False))
                    del busy[w]
        return results

    def _send(self, worker: _Worker, predicted: str, gold: str) -> float:
        try:
            worker.wait_ready()
            worker.conn.send((predicted, gold))
        except (BrokenPipeError, EOFError, OSError):
            worker.restart()
            worker.wait_ready()
            worker.conn.send((predicted, gold))
        return time.monotonic() + self.timeout_s

    @staticmethod
    def _receive(worker: _Worker) -> bool:
        try:
            return bool(worker.conn.recv())
        except (EOFError, OSError):  # the worker died (e.g. out of memory): wrong, and a fresh worker
            worker.restart()
            return False

    @staticmethod
    def _next_timeout(busy: dict[int, tuple[int, float]]) -> float:
        return max(0.0, min(deadline for _, deadline in busy.values()) - time.monotonic())
