"""(completion, gold) pairs for comparing lapo's answer checker with plain math-verify.

Two sources:

- ``HAND_CASES``: a fixed table written here, one or more cases per class of answers (integers, leading
  zeros, thousands separators, fractions, decimals and float approximations, percentages, assignments,
  tuples, sets and intervals, several boxed answers, the false positives of lapo's former fast path, and
  cases in the spirit of public graders' regression tests). It needs no data files, so CI checks every
  class;
- :func:`rewritten_pairs`: each gold answer of a benchmark file rewritten into equal and different
  answers (the rewrite names the intent; the verdict that counts is math-verify's), inside completions.

The reference verdict is ``verify(parse("$" + gold + "$"), parse(completion))`` with math-verify's
default settings (:func:`reference_verdict`): the gold wrapped in ``$`` as math-verify's README does,
since ``parse`` finds no LaTeX in a bare ``(2, 2), (6, 2)`` or ``10\\%``.
"""

from __future__ import annotations

import random
import re
from fractions import Fraction
from typing import NamedTuple


class Case(NamedTuple):
    kind: str  # class of answer and rewrite, e.g. "fraction/float approximation"
    completion: str
    gold: str


def boxed(answer: str) -> str:
    return f"Some reasoning first.\n\nSo the final answer is $\\boxed{{{answer}}}$."


def boxes(parts: list[str], between: str) -> str:
    return "So the answers are " + between.join(f"\\boxed{{{p}}}" for p in parts) + "."


# (kind, completion, gold). The kinds group the report; the verdict expected is math-verify's.
HAND_CASES: list[Case] = [Case(*c) for c in [
    # several boxed answers (multi-part and multi-solution questions)
    ("multi-box/pairs", r"So $\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}$.", "(2, 2), (6, 2)"),
    ("multi-box/set", r"The roots are \boxed{1},\boxed{2},\boxed{3}", r"\{1,2,3\}"),
    ("multi-box/set", r"The roots are \boxed{1},\boxed{2},\boxed{3}", "1,2,3"),
    ("multi-box/set", boxes(["3", "1", "2"], " and "), "1, 2, 3"),
    ("multi-box/one missing", boxes(["1", "2"], ", "), "1,2,3"),
    ("multi-box/one extra", boxes(["1", "2", "4"], ", "), "1,2"),
    ("multi-box/far apart", r"First \boxed{1}. " + "Then a long check of the other case. " * 3 + r"\boxed{2}", "1, 2"),
    ("multi-box/repeated", r"\boxed{7} so again \boxed{7}", "7"),
    ("multi-box/dollar-separated gold", boxes(["69", "84"], ", "), "69$,$84"),
    ("multi-box/not a thousands number", boxes(["32", "349"], ","), "32349"),
    ("multi-box/functions", boxes(["f(x)=x", "f(x)=2-x"], " and "), "f(x)=x$,$f(x)=2-x"),
    # integers
    ("integer/same", boxed("42"), "42"),
    ("integer/wrong", boxed("43"), "42"),
    ("integer/leading zeros", boxed("25"), "025"),
    ("integer/leading zeros", boxed("025"), "25"),
    ("integer/negative", boxed("-7"), "-7"),
    ("integer/sign", boxed("7"), "-7"),
    ("integer/digits split", boxed("2 3"), "23"),
    ("integer/point zero", boxed("5.0"), "5"),
    ("integer/trailing point", boxed("5."), "5"),
    ("integer/text", boxed(r"\text{5}"), "5"),
    ("integer/text", boxed(r"\text{25}"), "025"),
    ("integer/text with leading zero", boxed(r"\text{025}"), "025"),
    ("integer/text", boxed(r"\mathrm{-5}"), "-5"),
    ("integer/dollars", boxed("$ 5 $"), "5"),
    ("integer/currency", boxed(r"\$5"), "5"),
    ("integer/parentheses", boxed(r"\left(5\right)"), "5"),
    ("integer/degrees", boxed(r"90^\circ"), "90"),
    ("integer/degrees", boxed("90"), r"90^\circ"),
    ("integer/huge", boxed("1" * 60), "1" * 60),
    ("integer/huge wrong", boxed("1" * 59 + "2"), "1" * 60),
    # thousands separators
    ("thousands/removed", boxed("2125"), "2,125"),
    ("thousands/added", boxed("2,125"), "2125"),
    ("thousands/list with a space", boxed("32, 349"), "32349"),
    ("thousands/not a group", boxed("1,2345"), "12345"),
    ("thousands/decimal comma", boxed("0,5"), "0.5"),
    ("thousands/currency", boxed("32348"), r"\$32,348"),
    ("thousands/braces", boxed("14916"), "14{,}916"),
    # fractions and decimals
    ("fraction/dfrac", boxed(r"\dfrac{1}{2}"), r"\frac{1}{2}"),
    ("fraction/unreduced", boxed(r"\frac{2}{4}"), r"\frac{1}{2}"),
    ("fraction/short", boxed(r"\frac12"), r"\frac{1}{2}"),
    ("fraction/slash", boxed("3/56"), r"\frac{3}{56}"),
    ("fraction/negative", boxed(r"\frac{-1}{2}"), r"-\frac{1}{2}"),
    ("fraction/wrong", boxed(r"\frac{2}{3}"), r"\frac{1}{2}"),
    ("fraction/mixed number", boxed("1 1/2"), r"\frac{11}{2}"),
    ("fraction/mixed number", boxed(r"1\frac{1}{2}"), r"\frac{3}{2}"),
    ("fraction/decimal", boxed("0.5"), r"\frac12"),
    ("fraction/decimal", boxed("0.125"), r"\frac{1}{8}"),
    ("fraction/float approximation", boxed("0.0833333333333333"), r"\frac{1}{12}"),
    ("fraction/float approximation", boxed("0.333333"), r"\frac{1}{3}"),
    ("fraction/short approximation", boxed("0.33333"), r"\frac{1}{3}"),
    ("fraction/short approximation", boxed("0.0833"), r"\frac{1}{12}"),
    ("fraction/rounded differently", boxed("33.3"), r"\frac{100}{3}"),
    ("fraction/tuple of approximations", boxed("(1,4.5)"), r"(1,\frac{9}{2})"),
    ("fraction/interval of approximations", boxed("(0.6,2.6667]"), r"(\frac{3}{5},\frac{8}{3}]"),
    ("decimal/leading point", boxed("0.35625"), ".35625"),
    ("decimal/wrong", boxed("0.35626"), ".35625"),
    ("decimal/tiny", boxed("0.0000002"), "0.0000001"),
    ("decimal/near a power of ten", boxed("0.0999999999"), r"\frac{1}{10}"),
    ("decimal/large", boxed("1234567.5"), r"\frac{2469135}{2}"),
    # percentages
    ("percent/decimal", boxed("0.1"), r"10\%"),
    ("percent/number", boxed("10"), r"10\%"),
    ("percent/fraction", boxed(r"\frac{1}{10}"), r"10\%"),
    ("percent/both", boxed(r"10\%"), r"10\%"),
    ("percent/wrong", boxed("0.2"), r"10\%"),
    ("percent/gold decimal", boxed(r"28\%"), "0.28"),
    ("percent/gold number", boxed(r"28\%"), "28"),
    ("percent/word", boxed("28 percent"), r"28\%"),
    # assignments and equations
    ("assignment/to a number", boxed("x = 3"), "3"),
    ("assignment/gold", boxed("3"), "x=3"),
    ("assignment/other name", boxed("x=3"), "y=3"),
    ("assignment/other name", boxed("y = 2x+1"), "x = 2x+1"),
    ("assignment/same", boxed("y=2x+1"), "y = 2x + 1"),
    ("assignment/euler gold", boxed("2"), "e=2"),
    ("assignment/number first", boxed("2=x"), "2"),
    ("assignment/chain", boxed("x=y=2"), "2"),
    ("equation/rearranged", boxed("-34x-45y+20z-100=0"), "34x+45y-20z+100=0"),
    # expressions
    ("expression/sqrt", boxed(r"\frac{\sqrt{2}}{2}"), r"\frac{1}{\sqrt{2}}"),
    ("expression/reordered", boxed("1 + x^2"), "x^2 + 1"),
    ("expression/combined fraction", boxed(r"\frac{x}{7}+\frac{2}{7}"), r"\frac{x+2}{7}"),
    ("expression/identity", boxed(r"\sec^2(y)"), r"\tan^2(y)+1"),
    ("expression/missing term", boxed("x+1"), "x+2n+1"),
    ("expression/missing symbol", boxed("(+5)(b+2)"), "(a+5)(b+2)"),
    ("expression/pi", boxed(r"\pi 3"), r"3\pi"),
    ("expression/complex", boxed("6-5i"), "6 - 5i"),
    ("expression/wrong by one", boxed("p - q + 1"), "p - q"),
    ("expression/swapped", boxed("q - p"), "p - q"),
    ("expression/unreadable box", boxed(r"2\left((-\frac{1}{2}, \frac{7}{2})\right)"), r"(-\frac{1}{2}, \frac{7}{2})"),
    ("expression/unreadable box", boxed(r"2\left(x=5\right)"), "x=5"),
    ("exact/stray dollar", boxed("221,$8"), "221,$8"),
    ("exact/unreadable gold", boxed(r"m_{\max } = n^{2} - n - 1"), r"m_{\max }=n^{2}-n-1"),
    # arrows and symbols (the former fast path removed \left / \right by substring)
    ("symbol/arrows", boxed(r"\rightarrow"), r"\leftarrow"),
    ("symbol/arrows", boxed(r"\Rightarrow"), r"\Rightarrow"),
    ("text/word", boxed(r"\text{Evelyn}"), r"\text{Evelyn}"),
    ("text/word", boxed("Evelyn"), r"\text{Evelyn}"),
    ("text/choice", boxed(r"\text{(C)}"), r"\text{(C)}"),
    ("text/choice", boxed("(C)"), r"\text{(C)}"),
    ("text/other choice", boxed(r"\text{(D)}"), r"\text{(C)}"),
    # tuples, sets, intervals, matrices
    ("tuple/spacing", boxed(r"\left( 3, \frac{\pi}{2} \right)"), r"(3, \frac{\pi}{2})"),
    ("tuple/order", boxed("(2, 1)"), "(1, 2)"),
    ("set/order", boxed(r"\{2, 1\}"), r"\{1, 2\}"),
    ("interval/open end", boxed("[1, 2]"), "[1, 2)"),
    ("interval/union", boxed(r"(-\infty, 2) \cup (3, \infty)"), r"(-\infty,2)\cup(3,\infty)"),
    ("interval/gold with a stray dollar", boxed(r"(-\infty, 0) \cup \{1\}"), r"(-\infty, 0) \cup\{1\}$."),
    ("matrix/vector", boxed(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"), r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"),
    ("matrix/wrong entry", boxed(r"\begin{pmatrix} 1 \\ 3 \end{pmatrix}"), r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"),
    ("base/subscript", boxed("4210_{5}"), "4210_5"),
    # extraction: nested, fbox, decoys, unclosed boxes
    ("extraction/nested", r"\boxed{\boxed{3}}", "3"),
    ("extraction/fbox", r"\fbox{3}", "3"),
    ("extraction/decoy first", r"\boxed{3} is wrong; the answer is \boxed{4}.", "4"),
    ("extraction/decoy first", r"\boxed{3} is wrong; the answer is \boxed{4}.", "3"),
    ("extraction/unclosed after", r"So \boxed{4} and then \boxed{5", "4"),
    ("extraction/no box", "The answer is 42.", "42"),
]]


def reference_verdict(completion: str, gold: str) -> bool:
    """Plain math-verify, default settings: ``verify(parse("$" + gold + "$"), parse(completion))``."""
    from math_verify import parse, verify

    return bool(verify(parse("$" + gold + "$"), parse(completion)))


# --------------------------------------------------------------------------------------------------
# Where lapo and math-verify may disagree, and why (each one certainly right on lapo's side)

EXCEPTIONS = {
    "fbox": "lapo reads \\fbox{...} as a box; math-verify's patterns look for \\boxed{ only (True beyond it)",
    "gold spelling": "an answer spelled as the gold (up to \\dfrac, \\left(, spaces next to symbols) is right "
                     "even where math-verify cannot read the gold and compares strings (OlympiadBench's '221,$8', "
                     "'m_{\\max }=n^{2}-n-1'; True beyond it)",
    "boxes read as one number": "math-verify joins \\boxed{32},\\boxed{349} into '32,349' and reads one number, "
                                "32349; lapo joins the parts with ', ' and reads two (False where it says True)",
    "no box": "lapo credits a boxed final answer only (fallback='none', the prompt asks for a box); math-verify "
              "also reads unboxed text (False where it says True)",
    "unreadable box": "math-verify grades other text of the completion when the box cannot be parsed "
                      "(\\boxed{2\\left(x=5\\right)} read as 5); lapo grades the box (False where it says True)",
}
_THREE_DIGITS = re.compile(r"(\\!)?\d{3}")


def _box_is_unreadable(answer: str) -> bool:
    from math_verify import LatexExtractionConfig, parse
    from sympy import Basic, MatrixBase

    parsed = parse("\\boxed{" + answer + "}", [LatexExtractionConfig(try_extract_without_anchor=False)])
    return not any(isinstance(x, (Basic, MatrixBase)) for x in parsed)


def explain(case: Case, reference: bool, lapo: bool) -> str | None:
    """The name of the documented reason (``EXCEPTIONS``) for lapo's verdict differing from math-verify's."""
    from lapo.core.equivalence import same_spelling
    from lapo.core.extract import boxed_answers, extract_answer

    if lapo == reference:
        return None
    parts = boxed_answers(case.completion)
    if not parts and not lapo:
        return "no box"
    if lapo:
        if "\\fbox" in case.completion and "\\boxed" not in case.completion:
            return "fbox"
        return "gold spelling" if same_spelling(extract_answer(case.completion), case.gold.strip()) else None
    if len(parts) > 1 and all(_THREE_DIGITS.fullmatch(p) for p in parts[1:]):
        return "boxes read as one number"
    return "unreadable box" if parts and _box_is_unreadable(extract_answer(case.completion)) else None


# --------------------------------------------------------------------------------------------------
# Rewrites of benchmark gold answers

_INT = re.compile(r"-?\d+")
_FRAC = re.compile(r"(-?)\\d?frac\{(\d+)\}\{(\d+)\}")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\\?%")
_THOUSANDS_GOLD = r"\\?\$?\d{1,3}(,(\\!)?\d{3})+"  # one number, not a list (see the multi-box hand cases)
_PROSE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{4,}")  # words in a gold ("where $b$ is an integer") are not parts


def top_level_parts(answer: str) -> list[str]:
    """The answer split at commas outside brackets and braces (``(1,2), (3,4)`` -> two parts)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(answer):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(answer[start:i].strip())
            start = i + 1
    parts.append(answer[start:].strip())
    return [p.strip("$").strip() for p in parts]


def _integer_rewrites(g: str) -> list[tuple[str, str]]:
    n = int(g)
    out = [("integer/same", g), ("integer/x =", f"x = {g}"), ("integer/point zero", f"{g}.0"),
           ("integer/text", f"\\text{{{g}}}"), ("integer/wrong", str(n + 1)),
           ("integer/negated", str(-n) if n else "1")]
    if n >= 0:
        out.append(("integer/leading zero", f"0{g}"))
    if abs(n) >= 1000:
        out += [("integer/thousands", f"{n:,}"), ("integer/thousands spaced", f"{n:,}".replace(",", ", ")),
                ("integer/thousands thin", f"{n:,}".replace(",", ",\\!"))]
    out.append(("integer/degrees", f"{g}^\\circ"))
    if len(g.lstrip("-")) >= 2:
        digits = g.lstrip("-")
        out.append(("integer/digits split", ("-" if n < 0 else "") + digits[:1] + " " + digits[1:]))
    return out


def _fraction_rewrites(m: re.Match) -> list[tuple[str, str]]:
    sign, a, b = m.group(1), int(m.group(2)), int(m.group(3))
    value = Fraction(a, b) * (-1 if sign else 1)
    out = [("fraction/slash", f"{sign}{a}/{b}"), ("fraction/dfrac", f"{sign}\\dfrac{{{a}}}{{{b}}}"),
           ("fraction/unreduced", f"{sign}\\frac{{{2 * a}}}{{{2 * b}}}"),
           ("fraction/float approximation", repr(float(value))),
           ("fraction/short approximation", f"{float(value):.3f}"),
           ("fraction/numerator + 1", f"{sign}\\frac{{{a + 1}}}{{{b}}}"),
           ("fraction/reciprocal", f"{sign}\\frac{{{b}}}{{{a}}}" if a else "1")]
    if a >= 10:
        out.append(("fraction/mixed number", f"{sign}{str(a)[:-1]} {str(a)[-1]}/{b}"))
    return out


def _list_rewrites(parts: list[str], rng: random.Random) -> list[tuple[str, str]]:
    between = rng.choice([", ", " and ", r" \quad \text{and} \quad ", ","])
    out = [("multi-box/parts", boxes(parts, between)), ("list/reversed", ", ".join(parts[::-1])),
           ("multi-box/one missing", boxes(parts[:-1], between)),
           ("multi-box/one extra", boxes(parts + ["17"], between))]
    return out


def gold_rewrites(gold: str, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, rewritten answer or whole completion) for one gold answer: equal and different spellings."""
    g = gold.strip()
    out = [("exact", g), ("wrong/plus one", f"{g} + 1"), ("wrong/doubled", f"2\\left({g}\\right)")]
    if _INT.fullmatch(g):
        out += _integer_rewrites(g)
    elif re.fullmatch(r"-?\d{1,3}(,\d{3})+", g):
        out += [("thousands/removed", g.replace(",", "")), ("thousands/spaced", g.replace(",", ", "))]
    elif m := _FRAC.fullmatch(g):
        out += _fraction_rewrites(m)
    elif m := _PERCENT.fullmatch(g):
        v = Fraction(m.group(1)) / 100
        out += [("percent/decimal", str(float(v))), ("percent/number", m.group(1)),
                ("percent/wrong", str(float(v) * 2))]
    if "\\frac" in g:
        out.append(("latex/dfrac", g.replace("\\frac", "\\dfrac")))
    if re.search(r"[-+=]", g) and not _PROSE.search(g):
        out += [("latex/spaced", re.sub(r"\s*([-+=])\s*", r" \1 ", g).strip()), ("latex/unspaced", re.sub(r"\s+", "", g))]
    if "=" in g and re.match(r"^[a-z]\s*=", g):
        out.append(("assignment/other name", "w" + g.lstrip()[1:]))
    if "\\rightarrow" in g or "\\leftarrow" in g:
        swapped = g.replace("\\rightarrow", "\0").replace("\\leftarrow", "\\rightarrow").replace("\0", "\\leftarrow")
        out.append(("symbol/arrows", swapped))
    parts = top_level_parts(g)
    if len(parts) > 1 and all(parts) and not _PROSE.search(g) and not re.fullmatch(_THOUSANDS_GOLD, g):
        out += _list_rewrites(parts, rng)
    elif g.startswith("(") and g.endswith(")") and "\\left" not in g:
        out.append(("tuple/left right", "\\left" + g[:-1] + "\\right)"))
    return out


def rewritten_pairs(golds: list[str], seed: int = 0) -> list[Case]:
    """Every rewrite of every gold answer as a completion (a whole completion when the rewrite is one)."""
    rng = random.Random(seed)
    cases = []
    for gold in golds:
        for kind, answer in gold_rewrites(gold, rng):
            completion = answer if kind.startswith("multi-box") else boxed(answer)
            cases.append(Case(kind, completion, gold))
    return cases
