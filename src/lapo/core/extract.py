"""Final-answer extraction: the last group of ``\\boxed{...}`` of a completion, or its last number.

Boxes are found in one linear pass with nested braces matched, so a megabyte of unbalanced ``\\boxed{``
costs milliseconds. The final answer is the box that closes last, together with the boxes just before it
that math-verify reads as parts of the same answer (a multi-part or multi-solution question answered
``\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}``). Pure: no torch, no math-verify.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_BOX_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*\{|\{|\}")
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACES = re.compile(r"[{}]")
_COMMANDS = ("\\boxed", "\\fbox")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")

# math-verify (latex2sympy2_extended's extract_boxed_content) reads the boxes before the last one as parts
# of the same answer when fewer than JOIN_GAP characters separate them, or fewer than JOIN_GAP_WORDS with
# "and", "or", "," or ";" between them and a content different from the box after.
JOIN_GAP = 10
JOIN_GAP_WORDS = 70
_JOIN_WORDS = re.compile(r"\b(?:and|or)\b|[,;]")
# Parts of one answer are joined with a comma and a space: "32, 349" is read as two numbers, where
# "32,349" (math-verify's own join) would be read as one with a thousands separator.
PART_SEPARATOR = ", "


class Box(NamedTuple):
    """One closed box: where its command starts, where its content starts, and where its closing brace is."""

    start: int
    content_start: int
    end: int

    def content(self, text: str) -> str:
        return text[self.content_start : self.end].strip()


def last_box(text: str) -> Box | None:
    """The box that closes last (for ``\\boxed{\\boxed{3}}`` the outer one); unclosed boxes are ignored.

    One pass with a stack, from the first box on: braces before it only ever sit below it on the stack,
    so they cannot change which brace closes a box (and long reasoning before the box costs nothing).
    """
    if not isinstance(text, str) or "box" not in text:
        return None
    first = _BOX_START.search(text)
    if first is None:
        return None
    stack: list[int | None] = []  # where the command starts for a box's brace, None for a plain brace
    best: tuple[int, int] | None = None
    for match in _BOX_TOKENS.finditer(text, first.start()):
        token = match.group()
        if token == "}":
            if stack and (opened := stack.pop()) is not None:
                best = (opened, match.start())
        elif token == "{":
            stack.append(None)
        else:
            stack.append(match.start())
    if best is None:
        return None
    return Box(best[0], _BOX_START.match(text, best[0]).end(), best[1])


def extract_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}``/``\\fbox{...}`` (:func:`last_box`); braces inside are matched."""
    box = last_box(text)
    return None if box is None else box.content(text)


def _box_before(text: str, limit: int, seen: dict[str, int]) -> Box | None:
    """The box whose command starts last before ``limit``, if it also closes before it (else None).

    math-verify's walk: the nearest ``\\boxed``/``\\fbox`` to the left, then its braces counted forward.
    ``seen`` keeps where each command was last found: the limit only moves left, so a command is searched
    for again only when the one found is no longer before it, and the whole walk stays linear in the text.
    """
    for command in _COMMANDS:
        if seen.get(command, limit) + len(command) > limit:
            seen[command] = text.rfind(command, 0, limit)
    start = max(seen.values())
    opening = _BOX_START.match(text, start) if start >= 0 else None
    if opening is None:
        return None
    depth = 1
    for brace in _BRACES.finditer(text, opening.end(), limit):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return Box(start, opening.end(), brace.start())
    return None


def _joins(text: str, earlier: Box, later_start: int, later_content: str) -> bool:
    """Whether math-verify reads box ``earlier`` as a part of the same answer as the box at ``later_start``."""
    gap = text[earlier.end + 1 : later_start]
    if len(gap) < JOIN_GAP:
        return True
    return len(gap) < JOIN_GAP_WORDS and earlier.content(text) != later_content and bool(_JOIN_WORDS.search(gap))


def boxed_answers(text: str) -> list[str]:
    """The final answer's parts: the last complete box and the boxes before it that belong to it.

    Walks left from the last box as math-verify does: the box just before the current one joins when
    :func:`_joins` says so, else the walk stops; a part equal to the one after it counts once.
    """
    current = last_box(text)
    if current is None:
        return []
    parts, seen = [current.content(text)], {}
    while (earlier := _box_before(text, current.start, seen)) is not None:
        if not _joins(text, earlier, current.start, parts[-1]):
            break
        if (content := earlier.content(text)) != parts[-1]:
            parts.append(content)
        current = earlier
    return parts[::-1]


def extract_answer(text: str, fallback: str = "none") -> str | None:
    """The final answer of a completion: its boxed parts joined, else (``fallback="last_number"``) the last number.

    The number fallback serves tasks whose answers are plain numbers (GSM8K-style); it looks after the
    think-closing tag when there is one, so numbers inside the reasoning do not count.
    """
    parts = boxed_answers(text)
    if parts or fallback == "none" or not isinstance(text, str):
        return PART_SEPARATOR.join(parts) if parts else None
    if fallback != "last_number":
        raise ValueError(f"unknown answer fallback {fallback!r}: use 'none' or 'last_number'.")
    tail = text.rsplit("</think>", 1)[-1]
    numbers = _NUMBER.findall(tail[-10_000:])
    return numbers[-1] if numbers else None
