"""The budget sentence of stage 2: "I will answer the question with N tokens."

LAPO writes each problem's target length into the reasoning context, right after the think-opening tag,
as if the model had planned it (arXiv 2507.15758, section 3.2). The sentence is part of the *prompt*: it
never counts towards the completion's length.
"""

from __future__ import annotations

import re

from lapo.errors import LapoError

DEFAULT_TEMPLATE = "I will answer the question with {n} tokens."
DEFAULT_THINK_TAG = "<think>"


def check_template(template: str) -> None:
    """A budget sentence template must hold ``{n}`` exactly once (a recipe's ``budget_template`` is checked with
    the rest of the recipe, not when stage 2 writes its first prompt)."""
    if template.count("{n}") != 1:
        raise LapoError(
            f"budget template {template!r} must contain the placeholder {{n}} exactly once, "
            f"e.g. {DEFAULT_TEMPLATE!r}."
        )


def budget_sentence(n: int, template: str = DEFAULT_TEMPLATE) -> str:
    """The sentence for a budget of ``n`` tokens (rounded to an int, at least 1)."""
    check_template(template)
    return template.replace("{n}", str(max(1, int(round(n)))))


def _pattern(template: str) -> re.Pattern[str]:
    check_template(template)
    head, tail = template.split("{n}")
    return re.compile(re.escape(head) + r"(\d{1,9})" + re.escape(tail))


def insert_budget(
    prompt: str, n: int, think_tag: str = DEFAULT_THINK_TAG, template: str = DEFAULT_TEMPLATE
) -> str:
    """The prompt with the budget sentence right after the last think-opening tag, else at its end.

    A budget sentence already in the prompt is replaced, so rewriting a prompt twice (online tightening)
    never stacks two budgets.
    """
    prompt = strip_budget(prompt, template)
    sentence = budget_sentence(n, template)
    if think_tag and think_tag in prompt:
        cut = prompt.rindex(think_tag) + len(think_tag)
        # Keep whatever the chat template put after the tag (usually a newline) after the sentence.
        return prompt[:cut] + _joiner(prompt[:cut]) + sentence + prompt[cut:]
    return prompt + _joiner(prompt) + sentence


def _joiner(before: str) -> str:
    """A space between text and the sentence, nothing after a tag or whitespace."""
    return "" if not before or before[-1].isspace() or before.endswith(">") else " "


def parse_budget(text: str, template: str = DEFAULT_TEMPLATE) -> int | None:
    """The N of the last budget sentence in ``text``, or None when there is none."""
    matches = _pattern(template).findall(text)
    return int(matches[-1]) if matches else None


def strip_budget(text: str, template: str = DEFAULT_TEMPLATE) -> str:
    """``text`` without its budget sentences and the space :func:`insert_budget` put before each.

    The inverse of :func:`insert_budget` for prompts that do not end in a space (``"Q " `` and ``"Q"`` give
    the same prompt with a budget); rewriting a budget is exact for every prompt.
    """
    check_template(template)
    head, tail = template.split("{n}")
    # Drop the joining space only where insert_budget would have added one (see _joiner).
    pattern = re.compile(r"(?:(?<=[^\s>]) )?" + re.escape(head) + r"\d{1,9}" + re.escape(tail))
    return pattern.sub("", text)
