"""Final-answer extraction: the last ``\\boxed{...}`` of a completion, or its last number.

Extraction takes the *last* ``\\boxed{...}`` (or ``\\fbox{...}``) with nested braces matched, in one
linear pass, so a megabyte of unbalanced ``\\boxed{`` costs milliseconds. Pure: no torch, no math-verify.
"""

from __future__ import annotations

import re

_BOX_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*\{|\{|\}")
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")

# --------------------------------------------------------------------------------------------------
# Extraction


def extract_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}``/``\\fbox{...}``; braces inside are matched.

    "Last" means the box that closes last, so for ``\\boxed{\\boxed{3}}`` it is the outer one. Unclosed
    boxes are ignored. One pass over the text with a stack: linear in its length whatever it holds.
    The pass starts at the first box: braces before it only ever sit below it on the stack, so they
    cannot change which brace closes a box (and long reasoning before the box costs nothing).
    """
    if not isinstance(text, str) or "box" not in text:
        return None
    first = _BOX_START.search(text)
    if first is None:
        return None
    stack: list[int | None] = []  # content start for a box's brace, None for a plain brace
    best: tuple[int, int] | None = None
    for match in _BOX_TOKENS.finditer(text, first.start()):
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
