"""Answer checking: the one checker of training, scoring and evaluation, with a hard time limit per check.

A completion's final answer (:mod:`lapo.core.extract`) is compared with the gold answer in two steps:

1. the fast path (:mod:`lapo.core.equivalence`), in the calling process, which decides only where
   math-verify's verdict is certain (the gold's own spelling, plain numbers and fractions);
2. ``math-verify`` for everything else, at its default settings, in worker processes that are killed
   when a check passes its time limit. math-verify's own limit uses ``signal.alarm``, which only works in
   the main thread of the main interpreter; a killed process works everywhere (threads, dataloader
   workers, Ray actors).

A check that fails, raises or runs out of time counts as wrong. Nothing here ever raises on a completion.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Iterable, Sequence

from lapo.core.equivalence import MAX_ANSWER_CHARS, is_valid_gold, quick_equal
from lapo.core.extract import extract_answer

DEFAULT_TIMEOUT_S = 1.0


# --------------------------------------------------------------------------------------------------
# math-verify, run in a worker process


def _verify_in_process(predicted: str, gold: str, gold_cache: dict) -> bool:
    """math-verify on a gold answer and an extracted answer (runs inside a worker; gold parsed once per worker).

    The gold is parsed as math-verify's README parses one, inside ``$...$``. The answer is parsed from its
    box alone, without math-verify's search of unboxed text: when a box cannot be read, that search would
    grade the numbers inside it instead (``2\\left(x=5\\right)`` read as ``5``).
    """
    from math_verify import LatexExtractionConfig, parse, verify

    if gold not in gold_cache:
        if len(gold_cache) > 10_000:
            gold_cache.clear()
        gold_cache[gold] = parse("$" + gold + "$", parsing_timeout=None)
    gold_parsed = gold_cache[gold]
    box_only = [LatexExtractionConfig(try_extract_without_anchor=False)]
    pred_parsed = parse("\\boxed{" + predicted + "}", extraction_config=box_only, parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


# Common answer shapes. math-verify's parser and sympy fill their tables and caches on first use (0.1-0.3 s
# per new shape); doing it before a worker reports "ready" keeps that out of every check's time limit.
_WARM_UP = [
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"), ("(1, 2)", "(2, 1)"), ("[1, 2)", "[1, 2]"), ("3\\pi", "\\pi 3"),
    ("x^2 + 1", "1 + x^2"), ("\\{1, 2\\}", "\\{2, 1\\}"), ("6 - 5i", "6-5i"), ("y = 2x + 1", "2x+1"),
    ("(-\\infty, 2) \\cup (3, \\infty)", "x<2"), ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1,2)"),
    ("\\text{east}", "east"), ("4210_{5}", "555"), ("3 \\pm \\sqrt{2}", "3+\\sqrt 2"), ("10\\%", "0.1"),
    ("90^\\circ", "\\frac{\\pi}{2}"), ("\\dfrac{17}{50}", "0.34"), ("p - q", "q - p"), ("1, 2, 3", "3, 2, 1"),
]
_warmed = False  # also true in a process forked from a warmed one: it inherits the filled tables


def _warm_up() -> None:
    """Run math-verify once over the common answer shapes (once per process, or per forking parent)."""
    global _warmed
    if _warmed:
        return
    import logging

    logger = logging.getLogger("math_verify")
    level = logger.level
    logger.setLevel(logging.ERROR)  # it warns that we disabled its alarm: the time limit is ours
    try:
        cache: dict = {}
        for predicted, gold in _WARM_UP:
            try:
                _verify_in_process(predicted, gold, cache)
            except Exception:  # noqa: BLE001 - warming only
                pass
    finally:
        logger.setLevel(level)
    _warmed = True


def _worker_loop(conn: Connection) -> None:
    """Serve (predicted, gold) pairs until the pipe closes; any error is a wrong answer."""
    import gc
    import logging

    # Forked from a big process (a trainer with torch loaded), the collector would walk every inherited
    # object and copy their pages; frozen, it sees only what this worker allocates (3x faster checks).
    gc.freeze()

    import math_verify  # noqa: F401 - imported before "ready" so no check's clock pays for it

    _warm_up()  # forked from a warmed parent this costs nothing; spawned it takes about a second, once
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


class _CheckTimeout(BaseException):
    """Raised by the timer of an in-process check; a BaseException so sympy's ``except Exception`` misses it."""


# After the limit the timer keeps firing at this interval until the check is over: Python drops an exception
# raised while a gc callback or a __del__ runs (seen here: hypothesis's gc callback swallowed the first alarm
# and a sympy check ran on for 7 s), so one alarm alone is not a limit.
ALARM_REPEAT_S = 0.05


class _Alarm:
    """The SIGALRM handler of one in-process check: raises :class:`_CheckTimeout` until disarmed."""

    def __init__(self):
        self.armed = True

    def __call__(self, signum, frame) -> None:
        if self.armed:
            raise _CheckTimeout()

    def disarm(self) -> None:
        self.armed = False  # first: an alarm that lands during the next line does nothing
        signal.setitimer(signal.ITIMER_REAL, 0)


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
        workers: math-verify worker processes; 0 runs math-verify in this process, limited by a SIGALRM
            timer in the main thread and unlimited elsewhere (for debugging and tiny CPU runs).
        start_method: multiprocessing start method of the workers (``fork`` restarts fastest).
    """

    timeout_s: float = DEFAULT_TIMEOUT_S
    fallback: str = "none"
    workers: int = 1
    start_method: str | None = None
    _pool: list[_Worker] = field(default_factory=list, init=False, repr=False)
    _gold_cache: dict = field(default_factory=dict, init=False, repr=False)
    # One call at a time talks to the workers: two threads sharing the pipes would read each other's verdicts.
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _pid: int = field(default_factory=os.getpid, init=False, repr=False, compare=False)

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
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock, self._pid = threading.Lock(), os.getpid()

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
        if self._pid != os.getpid():  # a forked copy does not own the parent's workers
            self._pool = []
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
        pending: dict[tuple[str, str], list[int]] = {}  # identical pairs (common in a group) checked once
        for i, (completion, gold) in enumerate(zip(completions, golds)):
            verdict, predicted = self._fast_verdict(completion, gold)
            verdicts.append(verdict)
            if verdict is None:
                pending.setdefault((predicted, gold), []).append(i)
        unique = [(k, predicted, gold) for k, (predicted, gold) in enumerate(pending)]
        where = list(pending.values())
        for k, ok in self._slow_verdicts(unique):
            for i in where[k]:
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
        """``workers=0``: math-verify in this process, cut off by a SIGALRM timer in the main thread."""
        _warm_up()  # outside the timer, as in a worker: filling sympy's caches is no check's time
        timed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
        alarm = _Alarm()
        if timed:
            started = time.monotonic()
            previous = signal.signal(signal.SIGALRM, alarm)
            # a caller's own timer, if any, comes back as `outer`
            outer, _ = signal.setitimer(signal.ITIMER_REAL, self.timeout_s, ALARM_REPEAT_S)
        try:
            try:
                return _verify_in_process(predicted, gold, self._gold_cache)
            finally:
                if timed:
                    alarm.disarm()
        except (_CheckTimeout, Exception):  # past the limit, or a crash on a hostile answer: wrong
            if timed:
                alarm.disarm()  # the alarm may have fired inside the finally above, before it disarmed
            return False
        finally:
            if timed:
                signal.signal(signal.SIGALRM, previous)
                if outer > 0:  # give the caller's timer back, less the time this check took
                    signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))

    def _ensure_pool(self) -> list[_Worker]:
        if not self._pool:
            method = self.start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            if method == "fork":
                _warm_up()  # forked workers (and their restarts) inherit math-verify warmed up, ready at once
            context = mp.get_context(method)
            self._pool = [_Worker(context) for _ in range(self.workers)]
        return self._pool

    def _verify_in_workers(self, pending: list[tuple[int, str, str]]) -> list[tuple[int, bool]]:
        """Deal the pending checks to the workers; a worker past its deadline is killed and replaced."""
        if self._pid != os.getpid():
            # A forked copy (a dataloader or pool worker): the pipes belong to the parent, whose verdicts
            # this process would read; it leaves them alone and starts workers of its own.
            self._pool, self._lock, self._pid = [], threading.Lock(), os.getpid()
        with self._lock:
            pool = self._ensure_pool()
            # Checks of one gold answer go to one worker, which then parses that gold once (its cache);
            # a worker whose own queue is empty takes from the longest other queue.
            queues: list[deque] = [deque() for _ in pool]
            for entry in pending:
                queues[hash(entry[2]) % len(pool)].append(entry)
            busy: dict[int, tuple[int, float]] = {}  # worker index -> (item index, deadline)
            results: list[tuple[int, bool]] = []
            try:
                while busy or any(queues):
                    for w, worker in enumerate(pool):
                        if w not in busy and any(queues):
                            item, predicted, gold = queues[w].popleft() if queues[w] else max(queues, key=len).pop()
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
            except BaseException:
                # Interrupted (KeyboardInterrupt, a trainer's timeout): a busy worker's late verdict would be
                # read as the answer to the next call's check, so those workers start afresh.
                for w in busy:
                    pool[w].restart()
                raise
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
