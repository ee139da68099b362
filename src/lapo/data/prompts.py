"""Prompts: the exact string the policy sees, in training and in evaluation alike.

:func:`render_prompt` turns a problem into one of three kinds of text, then the think-opening tag, then, in
stage 2, LAPO's budget sentence "I will answer the question with N tokens." right after the tag
(arXiv 2507.15758, section 3.2; docs/METHOD.md):

- ``reference``: the plain text the paper's code trained with (no chat template): its system text, then
  ``User: {problem} Please think step by step and output the final answer within \\boxed{}. Assistant: <think>``;
  the paper recipes use it (docs/PAPER_RECIPES.md);
- ``chat``: the tokenizer's chat template with a system message and the same request;
- ``plain``: any text of yours (``plain_template``).

Stage 2 reads targets that can move during training (online tightening), so its prompts are rendered when a
batch is fetched, not once at start-up: :class:`BudgetedPrompts` is a ``datasets.Dataset.with_transform``
transform that reads the live target map. The reference read its map once at start-up, so its tightened
targets never reached a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from lapo.core.budget import DEFAULT_TEMPLATE, check_template, insert_budget
from lapo.errors import LapoError

if TYPE_CHECKING:
    from lapo.data.problems import Problem

# A shorter form of the reference's system text (REFERENCE_SYSTEM_PROMPT below): reasoning inside <think> </think>.
DEFAULT_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process and then gives the user the answer. "
    "The reasoning process is enclosed within <think> </think> tags."
)
DEFAULT_USER_TEMPLATE = "{problem} Please think step by step and output the final answer within \\boxed{}."

# The reference code's prompt, verbatim (its PromptDataset, without --apply_chat_template): system text, a space,
# "User: ", the request, " Assistant: ", then the think tag. Its stage 2 appended the budget sentence after the
# tag with a space (" I will answer ..."), which the reference kind reproduces (PromptFormat.sentence_template).
REFERENCE_SYSTEM_PROMPT = (
    "You are a helpful assistant. A conversation between User and Assistant. The user asks a question, and the "
    "Assistant solves it. The Assistant first thinks about the reasoning process in the mind and then provides "
    "the user with the answer. The reasoning process is enclosed within <think> </think> tags, respectively, "
    "i.e., <think> reasoning process here </think> answer here ."
)
REFERENCE_TEMPLATE = REFERENCE_SYSTEM_PROMPT + " User: " + DEFAULT_USER_TEMPLATE + " Assistant: "
PROMPT_KINDS = ("reference", "chat", "plain")


@dataclass
class PromptFormat:
    """How a problem becomes a prompt: the reference's text, a chat template or plain text, then the think tag.

    ``system_prompt`` and ``user_template`` shape chat prompts, ``plain_template`` plain ones; the reference
    kind's text is fixed (write it as a ``plain_template`` to change it).
    """

    kind: str = "chat"  # "reference": REFERENCE_TEMPLATE; "chat": the tokenizer's chat template; "plain": plain_template
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    user_template: str = DEFAULT_USER_TEMPLATE
    plain_template: str = "{problem}"
    think_tag: str = "<think>"  # "" = no think tag; the budget sentence then goes at the prompt's end
    budget_template: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        if self.kind not in PROMPT_KINDS:
            raise LapoError(f"prompt kind {self.kind!r} is not known; use one of {', '.join(PROMPT_KINDS)}.")
        for name in ("user_template", "plain_template"):
            if "{problem}" not in getattr(self, name):
                raise LapoError(f"{name} {getattr(self, name)!r} must contain {{problem}}; add it where the question goes.")
        check_template(self.budget_template)

    @property
    def sentence_template(self) -> str:
        """The budget sentence's template as inserted after the think tag: the reference wrote a space first."""
        return " " + self.budget_template if self.kind == "reference" else self.budget_template


def _fill(template: str, problem_text: str) -> str:
    # str.replace, not str.format: templates carry LaTeX braces such as \boxed{}.
    return template.replace("{problem}", problem_text)


def _chat(problem_text: str, tokenizer: Any, fmt: PromptFormat) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise LapoError(
            f"the tokenizer {type(tokenizer).__name__} has no chat template; set the prompt kind to 'plain' "
            "or use a tokenizer that has one."
        )
    messages = [{"role": "system", "content": fmt.system_prompt}] if fmt.system_prompt else []
    messages.append({"role": "user", "content": _fill(fmt.user_template, problem_text)})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos) and adds_bos(tokenizer):
        # A template that writes {{ bos_token }} (DeepSeek-R1-Distill) for a tokenizer that adds BOS itself:
        # encoding the text (as TRL does, with special tokens) would start with two BOS. One is the tokenizer's.
        text = text[len(bos):]
    return text


def adds_bos(tokenizer: Any) -> bool:
    """Whether encoding text puts the BOS token in front of it (a post-processor or ``add_bos_token``)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return bos is not None and tokenizer("x")["input_ids"][:1] == [bos]


def encode_prompts(tokenizer: Any, prompts: Iterable[str]) -> list[list[int]]:
    """The token ids of rendered prompts, made as TRL 1.16's GRPOTrainer makes them in training
    (``processing_class(text=prompts)``: the tokenizer's special tokens added): the one encoding of a prompt,
    in training, in prompt-length checks and in evaluation."""
    return tokenizer(list(prompts))["input_ids"]


def _ends_with_tag(text: str, tag: str) -> bool:
    # Some chat templates (DeepSeek-R1-Distill) already open the think block, with a newline after it.
    return text.rstrip().endswith(tag)


def render_prompt(problem_text: str, tokenizer: Any, fmt: PromptFormat, budget: int | None = None) -> str:
    """The full prompt string: template, then the think tag, then the budget sentence when ``budget`` is given."""
    if fmt.kind == "chat":
        text = _chat(problem_text, tokenizer, fmt)
    else:
        text = _fill(REFERENCE_TEMPLATE if fmt.kind == "reference" else fmt.plain_template, problem_text)
    if fmt.think_tag and not _ends_with_tag(text, fmt.think_tag):
        text += fmt.think_tag
    if budget is not None:
        text = insert_budget(text, int(budget), think_tag=fmt.think_tag, template=fmt.sentence_template)
    return text


# ---------------------------------------------------------------- TRL datasets


def prompt_rows(problems: Iterable[Problem], tokenizer: Any, fmt: PromptFormat) -> dict[str, list]:
    """Columns for a TRL dataset: the rendered prompt (no budget), the problem id and the gold answer.

    Every column reaches the reward functions as a keyword argument (TRL passes dataset columns through).
    """
    problems = list(problems)
    return {
        "prompt": [render_prompt(p.problem, tokenizer, fmt) for p in problems],
        "problem_id": [p.id for p in problems],
        "answer": [p.answer for p in problems],
        "level": [p.level if p.level is not None else -1 for p in problems],
    }


class BudgetedPrompts:
    """Writes each stage-2 prompt's *current* budget into it, from the live target map.

    ``targets`` maps problem id -> target tokens and is the same dict the stage-2 reward lowers during
    training (online tightening). A problem whose target is ``fallback`` (the reference's sentinel, stage
    1's max generation length: never solved) or that has no target shows ``fallback`` and is marked
    ``budget_fallback=True``, which tells the reward to score against the group's median correct length.

    Use it as a ``Dataset.with_transform`` transform: prompts are rendered when a batch is fetched, so a
    tightened target reaches every later batch of its problem (see ``lapo.train.trainer.LapoGRPOTrainer``).
    """

    def __init__(self, targets: Mapping[str, int], fallback: int, fmt: PromptFormat):
        self.targets = targets
        self.fallback = int(fallback)
        self.think_tag = fmt.think_tag
        self.template = fmt.sentence_template

    def budget(self, pid: str) -> tuple[int, bool]:
        """(N shown in the prompt, whether N is the never-solved sentinel)."""
        value = self.targets.get(pid)
        if value is None or int(value) == self.fallback:
            return self.fallback, True
        return int(value), False

    def _render(self, prompt: str, n: int) -> str:
        # insert_budget replaces a budget already in the prompt, so re-rendering never stacks two.
        return insert_budget(prompt, n, think_tag=self.think_tag, template=self.template)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        budgets = [self.budget(pid) for pid in batch["problem_id"]]
        out = dict(batch)
        out["prompt"] = [self._render(p, n) for p, (n, _) in zip(batch["prompt"], budgets)]
        out["budget"] = [n for n, _ in budgets]
        out["budget_fallback"] = [fb for _, fb in budgets]
        return out
