"""The fast path of answer checking: decides in-process only where math-verify's verdict is certain.

:func:`quick_equal` answers True or False for answers it can read completely and whose verdict under
math-verify (default settings, as :mod:`lapo.core.checker` runs it) is known: the gold's own spelling
(:func:`same_spelling`), plain numbers and fractions (:func:`read_number`, :func:`numbers_equal`), and
``x = <number>`` against a number. Everything else (expressions, tuples, sets, percentages, units,
several boxed parts, numbers close to each other) returns None and goes to math-verify.
Pure: no torch, no math-verify.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

# Answers longer than this are not worth sympy's time: no benchmark answer comes close.
MAX_ANSWER_CHARS = 2_000
MAX_DIGITS = 100  # longer numbers go to math-verify (and int() refuses > 4300 digits anyway)

# math-verify compares a number written with a decimal point by rounding both sides to 6 decimal places
# (verify's float_rounding=6). Values more than 2e-6 apart never round to the same; closer ones (1/12 vs
# 0.0833333333333333, which it accepts) are left to it, as are numbers of 10^6 or more, where the 15
# significant digits of its floats no longer hold 6 decimal places.
DECIDED_GAP = Fraction(2, 10**6)
DECIDED_RANGE = 10**6


class Number(NamedTuple):
    """An exactly read number; ``decimal`` when written with a decimal point (compared after rounding)."""

    value: Fraction
    decimal: bool


_INTEGER = re.compile(r"-?\d+")
_THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+")  # what math-verify reads as one number: 2,125
_DECIMAL = re.compile(r"-?(?:\d+\.\d+|\.\d+)")  # not "5." (math-verify cannot read it)
_FRACTION = re.compile(r"(-?)\\[dtc]?frac(?:\{(-?\d+)\}\{(-?\d+)\}|\s?(\d)\s?(\d))")
_SLASH = re.compile(r"(-?\d+)/(\d+)")
# math-verify reads \text{25} as a symbol named "25" and compares its name with the gold's printed value:
# equal to a gold 25 or 025 (printed 25), not \text{025} to either.
_TEXT = re.compile(r"\\(?:text|textbf|mathrm)\{(-?\d+)\}")
_FRAC_VARIANT = re.compile(r"\\[dtc]frac")
_SIZED_DELIMITER = re.compile(r"\\(?:left|right)(?=[()\[\]|]|\\[{}|])")  # \left( but not \leftarrow
_SPACES = re.compile(r"\s+")
_NEGATIVE_SPACE = re.compile(r"\\!\s*")  # math-verify deletes it first: 10,\!080 is 10,080
_DEGREES = re.compile(r"\s*\^\s*(?:\\circ|\{\\circ\})$")  # math-verify drops the unit: 120^\circ is 120
_ASSIGNMENT = re.compile(r"([A-Za-z])\s*=\s*([^=]*)")
# Letters math-verify does not read as a plain symbol on the left of a gold "x = 3" (e is Euler's number).
_NOT_A_NAME = frozenset("e")


def same_spelling(a: str, b: str) -> bool:
    """Whether two answers differ only where the LaTeX they write does not: ``\\dfrac``/``\\tfrac`` for
    ``\\frac``, ``\\left(``/``\\right)`` for ``(``/``)``, spaces next to a symbol (``p - q``, ``p-q``).

    A space between letters or digits (``\\pi r``, ``2 3``) or after a comma (``32, 349``) stays: there it
    can change what is read. math-verify normalises the same way before it parses.
    """
    return a == b or _spelling(a) == _spelling(b)


def _spelling(answer: str) -> str:
    s = _SIZED_DELIMITER.sub("", _FRAC_VARIANT.sub(r"\\frac", answer.strip()))
    return _SPACES.sub(_kept_space, s)


def _kept_space(m: re.Match) -> str:
    before, after = m.string[m.start() - 1 : m.start()], m.string[m.end() : m.end() + 1]
    keep = (before.isalnum() or before in ("\\", ",", ".")) and (after.isalnum() or after in (",", "."))
    return " " if keep else ""


def read_number(answer: str) -> Number | None:
    """The exact value of an answer that is one plain number or fraction as math-verify reads it, else None.

    Integers (``025`` is 25), thousands separators without spaces (``2,125``; ``32, 349`` is a list),
    decimals, ``\\frac{a}{b}`` (``\\dfrac``, ``\\frac12``) and ``a/b``, optionally in degrees or
    inside one pair of ``$``. Anything else, inner spaces included (``2 3``, ``1 1/2``), is not read.
    """
    s = _DEGREES.sub("", _NEGATIVE_SPACE.sub("", answer.strip())).strip()
    if len(s) > 2 and s[0] == s[-1] == "$" and "$" not in s[1:-1]:
        s = s[1:-1].strip()
    if len(s) > MAX_DIGITS:
        return None
    if _INTEGER.fullmatch(s):
        return Number(Fraction(int(s)), False)
    if _THOUSANDS.fullmatch(s):
        return Number(Fraction(int(s.replace(",", ""))), False)
    if _DECIMAL.fullmatch(s):
        return Number(Fraction(s), True)
    if m := _FRACTION.fullmatch(s):
        numerator, denominator = (m.group(2), m.group(3)) if m.group(2) else (m.group(4), m.group(5))
        value = _ratio(numerator, denominator)
        return None if value is None else Number(-value if m.group(1) else value, False)
    if m := _SLASH.fullmatch(s):
        value = _ratio(m.group(1), m.group(2))
        return None if value is None else Number(value, False)
    return None


def _ratio(numerator: str, denominator: str) -> Fraction | None:
    return None if int(denominator) == 0 else Fraction(int(numerator), int(denominator))


def numbers_equal(a: Number, b: Number) -> bool | None:
    """math-verify's verdict on two numbers where it is certain, else None.

    Without a decimal point both are exact rationals, compared exactly. With one, below
    :data:`DECIDED_RANGE`, equal values are equal and values more than :data:`DECIDED_GAP` apart differ.
    """
    if not (a.decimal or b.decimal):
        return a.value == b.value
    if max(abs(a.value), abs(b.value)) >= DECIDED_RANGE:
        return None
    if a.value == b.value:
        return True
    return False if abs(a.value - b.value) > DECIDED_GAP else None


def _assigned_number(answer: str, gold_side: bool) -> Number | None:
    """The number of ``x = <number>`` (one letter on the left), else None."""
    m = _ASSIGNMENT.fullmatch(answer.strip())
    if m is None or (gold_side and m.group(1) in _NOT_A_NAME):
        return None
    return read_number(m.group(2))


def quick_equal(predicted: str, gold: str) -> bool | None:
    """True/False when math-verify's verdict is certain, None when math-verify must decide.

    math-verify reads ``x = 3`` against a gold ``3`` (and a gold ``x = 3`` against ``3``) as ``3``; two
    equations (``x = 3`` against ``y = 3``) it compares as equations, so they go to it.
    """
    p, g = predicted.strip(), gold.strip()
    if not any(c.isalnum() for c in g):  # a gold answer that is only LaTeX noise ("$", "\\,", ".") matches nothing
        return False
    if p == g:  # the gold's own spelling (math-verify agrees, except on 2 OlympiadBench golds with a stray "$")
        return True
    if (m := _TEXT.fullmatch(p)) and _INTEGER.fullmatch(g):
        return m.group(1) == str(int(g))
    pn, gn = read_number(p), read_number(g)
    if pn is not None and gn is not None:
        return numbers_equal(pn, gn)
    if gn is not None and (an := _assigned_number(p, gold_side=False)) is not None:
        return numbers_equal(an, gn)
    if pn is not None and (an := _assigned_number(g, gold_side=True)) is not None:
        return numbers_equal(pn, an)
    return True if same_spelling(p, g) else None


def is_valid_gold(gold: object) -> bool:
    """A gold answer that can be checked at all: a non-empty string of sane size."""
    return isinstance(gold, str) and bool(gold.strip()) and len(gold) <= MAX_ANSWER_CHARS
