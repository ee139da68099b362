"""A fixed corpus of hostile completions, kept in the tests (see tests/test_fuzz.py).

Every case is built here rather than stored, so megabyte strings, NUL bytes and lone surrogates need no
data file. Each case says what the checker must answer:

- ``expected=False``: the completion has no answer, a wrong one, or one that cannot be checked in time;
  judging it correct would reward garbage.
- ``expected=True``: a correct answer in hostile surroundings (it must survive them).
- ``expected=None``: either verdict is acceptable; the case only must not raise or hold up a call.

``slow=True`` marks LaTeX that makes sympy work for minutes (or recurse until it fails): with the default
limit of one second these must come back wrong, within the limit. Some of them are *right* answers
(``right_but_slow``): a check that runs past its limit counts as wrong even then.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MB = 1_000_000


@dataclass(frozen=True)
class Nasty:
    name: str
    completion: str
    gold: str
    expected: bool | None
    slow: bool = False
    fallback: str = "none"

    def __repr__(self) -> str:  # pytest ids and failure messages: never print a megabyte
        return f"Nasty({self.name})"


def _boxed(answer: str, before: str = "", after: str = "") -> str:
    return before + "\\boxed{" + answer + "}" + after


# LaTeX that sympy evaluates for minutes, or parses by deep recursion. Wrong against "1".
SYMPY_MONSTERS = {
    "tower_of_nines": r"9^{9^{9^{9^{9}}}}",
    "tower_of_tens": r"10^{10^{10^{10}}}",
    "tower_of_twos": r"2^{2^{2^{2^{2^{2^{2}}}}}}",
    "factorial_of_power": r"(10^{10})!",
    "factorial_of_factorial": r"((10^{6})!)!",
    "million_factorial": r"1000000!",
    "huge_binomial": r"\binom{10^{9}}{5 \cdot 10^{8}}",
    "nested_fractions": "\\frac{1}{x+" * 120 + "1" + "}" * 120,
    "double_integral_monster": r"\int_0^\infty \int_0^\infty e^{-x^{x^x} y^{y^y}} \sin(x^y) \, dx \, dy",
    "symbolic_integral": r"\int \frac{x^{17} \sin(x^{3}) e^{\sqrt{x}}}{\log(x^{x}+1)} dx",
    "sum_to_trillion": r"\sum_{k=1}^{10^{12}} k^{k}",
    "product_to_billion": r"\prod_{k=1}^{10^{9}} (k^{2}+1)",
    "trinomial_expansion": r"(x+y+z)^{10000}",
    "deep_parentheses": "(" * 900 + "1" + ")" * 900,
    "deep_braces": "{" * 900 + "1" + "}" * 900,
    "exponent_tower_of_x": "x^{" * 300 + "x" + "}" * 300,
    "power_tower_mod": r"7^{7^{7^{7}}} \mod 10",
    "sine_of_huge": r"\sin(10^{10^{5}})",
    "rational_power": r"\left(\frac{123456789}{987654321}\right)^{123456789}",
    "nested_roots": "\\sqrt{" * 250 + "2" + "}" * 250,
}
# Right answers whose check cannot finish in a second: past the limit they count as wrong.
RIGHT_BUT_SLOW = ("nested_fractions", "deep_parentheses", "exponent_tower_of_x", "rational_power", "double_integral_monster")


def corpus() -> list[Nasty]:
    rng = random.Random(6)
    random_bytes = bytes(rng.randrange(256) for _ in range(MB))
    cases = [
        # empty and blank
        Nasty("empty", "", "1", False),
        Nasty("blank", " \n\t\r" * 1000, "1", False),
        Nasty("empty_box", "\\boxed{}", "1", False),
        Nasty("blank_box", "\\boxed{ \\, \\! }", "1", False),
        Nasty("empty_gold", _boxed("1"), "", False),
        Nasty("noise_only_gold", _boxed("\\,"), "$", False),
        Nasty("noise_only_both", _boxed("."), "\\%", False),
        Nasty("huge_gold", _boxed("1" * 3000), "1" * 3000, False),
        # one megabyte
        Nasty("mb_text_then_box", "a" * MB + _boxed("42"), "42", True),
        Nasty("mb_text_no_box", "a" * MB, "42", False),
        Nasty("mb_digits_no_box", "4" * MB, "4" * MB, False),
        Nasty("mb_box_content", _boxed("7" * MB), "7", False),
        Nasty("mb_of_box_word", "box" * (MB // 3), "1", False),
        Nasty("mb_of_backslashes", "\\" * MB + _boxed("5"), "5", True),
        Nasty("mb_think_tags", "</think><think>" * (MB // 15) + _boxed("5"), "5", True),
        # nested and unbalanced boxes
        Nasty("mb_of_open_boxes", "\\boxed{" * (MB // 7), "1", False),
        Nasty("open_boxes_then_closed", "\\boxed{" * 5000 + _boxed("2"), "2", True),
        Nasty("nested_boxes_closed", "\\boxed{" * 5000 + "1" + "}" * 5000, "1", None),
        Nasty("nested_boxes_shallow", "\\boxed{" * 3 + "1" + "}" * 3, "1", None),
        Nasty("box_then_mb_of_closers", _boxed("1") + "}" * MB, "1", True),
        Nasty("closers_then_box", "}" * MB + _boxed("3"), "3", True),
        Nasty("openers_then_box", "{" * MB + _boxed("3"), "3", True),
        Nasty("unclosed_last_box", _boxed("3") + "\\boxed{4", "3", True),
        Nasty("unclosed_gold_after_wrong", _boxed("3") + "\\boxed{4", "4", False),
        Nasty("many_boxes_last_wrong", _boxed("3") * 5000 + _boxed("4"), "3", False),
        Nasty("many_boxes_last_right", _boxed("4") * 5000 + _boxed("3", " I was wrong before. "), "3", True),
        # boxes side by side are the parts of one answer, as math-verify reads them: "4, 3" is not 3
        Nasty("many_boxes_side_by_side", _boxed("4") * 5000 + _boxed("3"), "3", False),
        Nasty("fbox_and_boxed_mix", "\\fbox{" * 2000 + _boxed("9") + " Then instead: \\fbox{8}", "8", True),
        Nasty("fbox_and_boxed_side_by_side", "\\fbox{" * 2000 + _boxed("9") + "\\fbox{8}", "9, 8", True),
        Nasty("boxed_with_spaces", "\\boxed   {6}", "6", True),
        Nasty("brace_soup", "".join(rng.choice("{}") for _ in range(MB)) + _boxed("1"), "2", False),
        Nasty("box_soup", "".join(rng.choice(["\\boxed{", "}", "{", "x"]) for _ in range(200_000)), "1", None),
        # invalid UTF-8 decoded with errors="replace"
        Nasty("mb_random_bytes", random_bytes.replace(b"\\", b"").decode("utf-8", errors="replace"), "1", False),
        Nasty("all_bytes_then_box", (bytes(range(256)) * 4096).decode("utf-8", errors="replace") + _boxed("5"), "5", True),
        Nasty("replacement_in_box", _boxed(b"5\xc3".decode("utf-8", errors="replace")), "5", False),
        Nasty("overlong_encodings", b"\xc0\xaf\xe0\x80\xaf\xf8\x88\x80\x80\xaf".decode("utf-8", errors="replace") + _boxed("5"), "5", True),
        Nasty("truncated_multibyte", (b"\xe2\x82" * 1000).decode("utf-8", errors="replace") + _boxed("\\frac{1}{2}"), "0.5", True),
        # NUL bytes, lone surrogates, direction marks and other invisible characters
        Nasty("nul_bytes_around", "\x00" * 1000 + _boxed("3") + "\x00" * 1000, "3", True),
        Nasty("nul_in_box", _boxed("3\x00"), "4", False),
        Nasty("nul_gold", _boxed("\x00"), "\x00", None),
        Nasty("lone_surrogates_around", "\ud800" * 1000 + _boxed("3") + "\udfff" * 1000, "3", True),
        Nasty("lone_surrogate_in_box", _boxed("\udc80"), "3", False),
        Nasty("lone_surrogate_gold", _boxed("3"), "\ud800", False),
        Nasty("surrogate_both", _boxed("\ud800"), "\ud800", None),
        Nasty("rtl_override_around", "\u202e" * 1000 + _boxed("3") + "\u202c\u200f", "3", True),
        Nasty("rtl_in_box_wrong", _boxed("\u202e" + "21"), "12", False),
        Nasty("rtl_isolates", "\u2067\u2066\u2069" * 10_000 + _boxed("\\frac{1}{2}"), "\\frac{1}{2}", True),
        Nasty("bom_and_zero_width", "\ufeff\u200b\u200d" * 10_000 + _boxed("3"), "3", True),
        Nasty("combining_marks", "e\u0301" * 100_000 + _boxed("3\u0301"), "4", False),
        Nasty("emoji_and_cjk", "😀数学" * 50_000 + _boxed("3"), "3", True),
        # numbers with thousands of digits
        Nasty("digits_2000_right", _boxed("7" * 1999), "7" * 1999, True),
        Nasty("digits_2000_wrong_last", _boxed("7" * 1998 + "8"), "7" * 1999, False),
        Nasty("digits_2000_wrong_first", _boxed("8" + "7" * 1998), "7" * 1999, False),
        Nasty("digits_5000", _boxed("9" * 5000), "9" * 5000, False),
        Nasty("digits_4301_vs_small", _boxed("1" * 4301), "1", False),
        Nasty("decimal_2000_digits", _boxed("0." + "3" * 1990), "0.4", False),
        Nasty("fraction_of_huge_numbers", _boxed("\\frac{" + "9" * 900 + "}{" + "7" * 900 + "}"), "1", False),
        Nasty("power_of_ten_vs_digits", _boxed("10^{1000}"), "1" + "0" * 999, False),
        Nasty("scientific_overflow", _boxed("1e999999999"), "1", False),
        Nasty("thousands_separators_mb", ",".join(["123"] * 200_000), "123", False, fallback="last_number"),
        Nasty("mb_digits_fallback", "9" * MB, "9", False, fallback="last_number"),
        Nasty("number_after_think_fallback", "<think>" + "1 " * 100_000 + "</think> so 42", "42", True, fallback="last_number"),
        Nasty("number_in_think_only_fallback", "<think>" + "42 " * 1000 + "</think> done", "42", False, fallback="last_number"),
    ]
    for name, latex in SYMPY_MONSTERS.items():
        cases.append(Nasty(f"sympy_{name}", _boxed(latex, "Let me compute. "), "1", False, slow=True))
    for name in RIGHT_BUT_SLOW:
        latex = SYMPY_MONSTERS[name]
        cases.append(Nasty(f"right_but_slow_{name}", _boxed(latex), latex + "+0", False, slow=True))
    return cases


def fast_cases() -> list[Nasty]:
    """The corpus without the sympy monsters (for runs that need no time limit to pass)."""
    return [c for c in corpus() if not c.slow]
