"""The fast path of answer checking: normalised strings and exact rational numbers, decided in-process.

It answers True or False only where it is certain; everything else is left to math-verify
(:mod:`lapo.core.checker`). Pure: no torch, no math-verify.
"""

from __future__ import annotations

import re
from fractions import Fraction

# Answers longer than this are not worth sympy's time: no benchmark answer comes close.
MAX_ANSWER_CHARS = 2_000

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
    if not g:  # a gold answer that is only LaTeX noise ("$", "\\,", ".") matches nothing
        return False
    if p == g:
        return True
    pn, gn = as_number(p), as_number(g)
    if pn is not None and gn is not None:
        return pn == gn
    return None


def is_valid_gold(gold: object) -> bool:
    """A gold answer that can be checked at all: a non-empty string of sane size."""
    return isinstance(gold, str) and bool(gold.strip()) and len(gold) <= MAX_ANSWER_CHARS
