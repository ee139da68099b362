"""Problems and prompts: one loader for training, evaluation and the quickstart.

A *problem* is a question, its gold answer and a stable id (``Problem``). ``load_problems`` reads them from
a local JSON/JSONL/Parquet file, a benchmark name, any Hugging Face hub id, or the built-in ``counting`` task.
``render_prompt`` turns a problem into the exact string the policy sees: chat template (or plain text),
then the think-opening tag, then, in stage 2, LAPO's budget sentence "I will answer the question with N
tokens." right after the tag (arXiv 2507.15758, section 3.2).

Stage 2 reads targets that can move during training (online tightening), so its prompts are rendered when
a batch is fetched, not once at start-up: ``BudgetedPrompts`` is a ``datasets.Dataset.with_transform``
transform that reads the live target map. The reference read its map once at start-up, so its tightened
targets never reached a prompt (LAPO_SPEC section 1).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from lapo.budget import DEFAULT_TEMPLATE, insert_budget

logger = logging.getLogger(__name__)

LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")

# The reference's system text asks for the reasoning inside <think> </think> (LAPO_SPEC section 1).
DEFAULT_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process and then gives the user the answer. "
    "The reasoning process is enclosed within <think> </think> tags."
)
DEFAULT_USER_TEMPLATE = "{problem} Please think step by step and output the final answer within \\boxed{}."


@dataclass
class Problem:
    """One question with its gold answer; ``id`` is stable across runs (the id field or a text hash)."""

    id: str
    problem: str
    answer: str
    level: int | None = None
    subject: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class HubSpec:
    """Where a named benchmark lives on the hub and which of its columns mean what."""

    repo: str
    split: str | None  # None: use the caller's split (datasets that have train and test)
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str = "id"
    config: str | None = None
    local_name: str | None = None  # file stem under data_dir; "{split}" is filled in


def _gsm8k_answer(text: Any) -> Any:
    """GSM8K's hub answers end with '#### 72' after the worked solution; keep the number."""
    return str(text).rsplit("####", 1)[-1].strip().replace(",", "") if text is not None else text


BENCHMARKS: dict[str, HubSpec] = {
    "math500": HubSpec("HuggingFaceH4/MATH-500", "test", id_field="unique_id"),
    "aime24": HubSpec("HuggingFaceH4/aime_2024", "train"),
    "amc23": HubSpec("math-ai/amc23", "test", problem_field="question"),
    "olympiadbench": HubSpec(
        "Hothan/OlympiadBench", "train", "question", "final_answer", config="OE_TO_maths_en_COMP"
    ),
    "gsm8k": HubSpec("openai/gsm8k", None, "question", config="main", local_name="gsm8k_{split}"),
    # The paper's training set (10,000 problems after filtering, LAPO_SPEC section 1).
    "deepscaler": HubSpec("agentica-org/DeepScaleR-Preview-Dataset", "train"),
}
ANSWER_FIXES: dict[str, Callable[[Any], Any]] = {"gsm8k": _gsm8k_answer}


# ---------------------------------------------------------------- loading rows


def _read_local(path: Path) -> list[dict]:
    """Rows of a .jsonl / .json / .parquet file; a bad JSONL line is reported with its number."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq  # a dependency of `datasets`

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return json.loads(text)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number} is not valid JSON ({err.msg}); fix or remove that line.") from None
    return rows


def _read_hub(repo: str, split: str, config: str | None = None) -> list[dict]:
    import datasets

    return list(datasets.load_dataset(repo, config, split=split))


def _read_counting(split: str, limit: int | None, seed: int) -> list[dict]:
    from lapo.tasks import counting

    # The task draws problems: n is how many, so a limit draws exactly that many.
    return list(counting.load_split(split, seed=seed, **({"n": limit} if limit else {})))


def _read_sums(split: str, seed: int) -> list[dict]:
    from lapo.tasks import sums

    # A finite task: the whole split, levels in turn, so a limit (applied by the caller) keeps them balanced.
    return sums.load_split(split, seed=seed)


def _local_benchmark(name: str, spec: HubSpec, split: str, data_dir: str | os.PathLike) -> Path | None:
    stems = [spec.local_name.format(split=split)] if spec.local_name else []
    for stem in stems + [name]:
        path = Path(data_dir) / f"{stem}.jsonl"
        if path.exists():
            return path
    return None


def _resolve(
    source: str, split: str, data_dir: str | os.PathLike | None, seed: int, limit: int | None
) -> tuple[list[dict], dict[str, str]]:
    """The raw rows of ``source`` and the column names to use for it where they differ from the caller's."""
    if source == "counting":
        return _read_counting(split, limit, seed), {}
    if source == "sums":
        return _read_sums(split, seed), {}
    if source.endswith(LOCAL_SUFFIXES):
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"dataset file {path} does not exist; check the `dataset` path.")
        return _read_local(path), {}
    if source in BENCHMARKS:
        spec = BENCHMARKS[source]
        local = _local_benchmark(source, spec, split, data_dir) if data_dir else None
        if local is not None:  # local copies use the plain id/problem/answer fields
            return _read_local(local), {}
        if data_dir:
            logger.warning("no %s.jsonl under %s; loading %s from the hub", source, data_dir, spec.repo)
        fields = {"problem": spec.problem_field, "answer": spec.answer_field, "id": spec.id_field}
        return _read_hub(spec.repo, spec.split or split, spec.config), fields
    return _read_hub(source, split), {}


# ---------------------------------------------------------------- rows -> problems


def problem_id(text: str) -> str:
    """A stable id from the problem text alone: the same problem gets the same id in every run."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _as_answer(value: Any) -> str:
    """Gold answers as strings: 27.0 -> '27', ['3'] -> '3' (OlympiadBench stores one-element lists)."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(_as_answer(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


def gold_is_checkable(answer: str, checker: Any = None) -> bool:
    """Whether any completion could ever be graded correct against the gold ``answer``.

    The gold must be a sane answer (``lapo.answers.is_valid_gold``: non-empty, of sane length)
    that comes back as itself from ``\\boxed{answer}`` and that the answer checker accepts against itself.
    ``\\frac{`` or ``}{`` unbalance the box and a gold of LaTeX noise normalises to nothing: no completion
    could match them, so their problem would only ever teach "never solved". With the round trip exact,
    the checker's fast path decides (no math-verify call); ``checker`` defaults to one without workers.
    """
    from lapo.answers import AnswerChecker, extract_boxed, is_valid_gold

    if not is_valid_gold(answer):
        return False
    boxed = "\\boxed{" + answer + "}"
    if extract_boxed(boxed) != answer.strip():
        return False
    if checker is None:
        with AnswerChecker(workers=0) as own:
            return own.check(boxed, answer)
    return checker.check(boxed, answer)


def _check_fields(rows: list[dict], source: str, problem_field: str, answer_field: str) -> None:
    """A missing problem/answer column is a configuration error: name it and the columns there are."""
    if not rows:
        return
    columns = sorted(rows[0])
    for role, name in (("problem", problem_field), ("answer", answer_field)):
        if name not in rows[0]:
            raise ValueError(
                f"dataset {source!r} has no {role} field {name!r} (its fields are {columns}); "
                f"set `{role}_field` to the column that holds the {role}."
            )


def _to_problem(row: Mapping, problem_field: str, answer_field: str, id_field: str, level_field: str) -> Problem:
    text = str(row[problem_field])
    raw_id = row.get(id_field)
    level = row.get(level_field)
    known = {problem_field, answer_field, id_field, level_field, "subject"}
    return Problem(
        id=str(raw_id) if raw_id not in (None, "") else problem_id(text),
        problem=text,
        answer=_as_answer(row[answer_field]),
        level=_as_level(level),
        subject=row.get("subject"),
        meta={k: v for k, v in row.items() if k not in known},
    )


def _as_level(value: Any) -> int | None:
    """MATH levels come as 3 or 'Level 3'; anything else is no level."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.split()[-1:] and value.split()[-1].isdigit():
        return int(value.split()[-1])
    return None


def check_unique_ids(problems: Iterable[Problem], source: str = "dataset") -> None:
    """Two problems under one id would share one length target: refuse, naming the ids."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for p in problems:
        if p.id in seen and p.id not in duplicates:
            duplicates.append(p.id)
        seen.add(p.id)
    if duplicates:
        shown = ", ".join(repr(d) for d in duplicates[:5]) + (" ..." if len(duplicates) > 5 else "")
        raise ValueError(
            f"{source} has {len(duplicates)} duplicate problem id(s): {shown}; make the id field unique "
            "or set `id_field` to a column that does not exist so ids come from the problem text."
        )


def load_problems(
    source: str,
    *,
    split: str = "train",
    problem_field: str = "problem",
    answer_field: str = "answer",
    id_field: str = "id",
    level_field: str = "level",
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[Problem]:
    """Load problems from a local file, a benchmark name, a hub id or the built-in ``counting`` task.

    Rows whose gold answer is empty or cannot be checked are left out (their count is logged) so they are
    never rewarded as correct; duplicate ids raise. ``seed`` only matters for generated tasks (``counting``).
    """
    rows, fields = _resolve(source, split, data_dir, seed, limit)
    names = {role: fields.get(role, given) for role, given in (("problem", problem_field), ("answer", answer_field),
                                                                ("id", id_field), ("level", level_field))}
    _check_fields(rows, source, names["problem"], names["answer"])
    fix = ANSWER_FIXES.get(source) if fields else None
    problems, empty, unparseable = _usable_problems(rows, names, fix)
    if empty or unparseable:
        _log_left_out(source, len(rows), empty, unparseable)
    check_unique_ids(problems, repr(source))
    return problems[:limit] if limit is not None else problems


def _usable_problems(rows: list[dict], names: dict[str, str], fix: Callable | None) -> tuple[list, int, list]:
    """(problems, rows with an empty problem or answer, problems whose gold answer cannot be checked)."""
    from lapo.answers import AnswerChecker

    problems, empty, unparseable = [], 0, []
    with AnswerChecker(workers=0) as checker:  # golds are decided by its fast path: no worker is needed
        for row in rows:
            if row.get(names["problem"]) is None or row.get(names["answer"]) is None:
                empty += 1
                continue
            if fix is not None:
                row = {**row, names["answer"]: fix(row[names["answer"]])}
            problem = _to_problem(row, names["problem"], names["answer"], names["id"], names["level"])
            if not problem.problem.strip() or not problem.answer:
                empty += 1
            elif not gold_is_checkable(problem.answer, checker):
                unparseable.append(problem)
            else:
                problems.append(problem)
    return problems, empty, unparseable


def _log_left_out(source: str, total: int, empty: int, unparseable: list[Problem]) -> None:
    """One warning: how many rows were left out, why, and which problems had an unusable gold answer."""
    shown = ", ".join(f"{p.id!r} ({_short(p.answer)})" for p in unparseable[:3]) + (" ..." if len(unparseable) > 3 else "")
    logger.warning(
        "%s: left out %d of %d rows (%d with an empty problem or gold answer, %d whose gold answer cannot be "
        "checked%s); they would never be graded correct",
        source, empty + len(unparseable), total, empty, len(unparseable), f": {shown}" if unparseable else "",
    )


def _short(text: str, limit: int = 30) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... {len(text)} characters"


# ---------------------------------------------------------------- prompts


@dataclass
class PromptFormat:
    """How a problem becomes a prompt: a chat template or plain text, ending with the think tag."""

    kind: str = "chat"  # "chat" applies the tokenizer's chat template; "plain" uses plain_template
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    user_template: str = DEFAULT_USER_TEMPLATE
    plain_template: str = "{problem}"
    think_tag: str = "<think>"  # "" = no think tag; the budget sentence then goes at the prompt's end
    budget_template: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        if self.kind not in ("chat", "plain"):
            raise ValueError(f"prompt kind {self.kind!r} is not known; use 'chat' or 'plain'.")
        for name in ("user_template", "plain_template"):
            if "{problem}" not in getattr(self, name):
                raise ValueError(f"{name} {getattr(self, name)!r} must contain {{problem}}; add it where the question goes.")


def _fill(template: str, problem_text: str) -> str:
    # str.replace, not str.format: templates carry LaTeX braces such as \boxed{}.
    return template.replace("{problem}", problem_text)


def _chat(problem_text: str, tokenizer: Any, fmt: PromptFormat) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"the tokenizer {type(tokenizer).__name__} has no chat template; set the prompt kind to 'plain' "
            "or use a tokenizer that has one."
        )
    messages = [{"role": "system", "content": fmt.system_prompt}] if fmt.system_prompt else []
    messages.append({"role": "user", "content": _fill(fmt.user_template, problem_text)})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _ends_with_tag(text: str, tag: str) -> bool:
    # Some chat templates (DeepSeek-R1-Distill) already open the think block, with a newline after it.
    return text.rstrip().endswith(tag)


def render_prompt(problem_text: str, tokenizer: Any, fmt: PromptFormat, budget: int | None = None) -> str:
    """The full prompt string: template, then the think tag, then the budget sentence when ``budget`` is given."""
    text = _chat(problem_text, tokenizer, fmt) if fmt.kind == "chat" else _fill(fmt.plain_template, problem_text)
    if fmt.think_tag and not _ends_with_tag(text, fmt.think_tag):
        text += fmt.think_tag
    if budget is not None:
        text = insert_budget(text, int(budget), think_tag=fmt.think_tag, template=fmt.budget_template)
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
    tightened target reaches every later batch of its problem (see ``lapo.train.LapoGRPOTrainer``).
    """

    def __init__(self, targets: Mapping[str, int], fallback: int, fmt: PromptFormat):
        self.targets = targets
        self.fallback = int(fallback)
        self.think_tag = fmt.think_tag
        self.template = fmt.budget_template

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
