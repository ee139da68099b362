"""Problems from files, benchmark names, hub ids and the built-in task; prompts; stage-2 budgets."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from lapo.core.budget import parse_budget
from lapo.data import problems as data
from lapo.data import sources
from lapo.data.problems import Problem, load_problems
from lapo.data.prompts import BudgetedPrompts, PromptFormat, render_prompt
from lapo.errors import LapoError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROWS = [
    {"id": "a", "problem": "1+1?", "answer": "2", "level": 1, "subject": "arith", "solution": "1+1=2"},
    {"id": "b", "problem": "2+2?", "answer": 4.0, "level": "Level 3"},
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ loading


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_local_files(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    if suffix == ".jsonl":
        _write_jsonl(path, ROWS)
    elif suffix == ".json":
        path.write_text(json.dumps(ROWS))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([{**r, "answer": str(r["answer"]), "level": str(r["level"])} for r in ROWS]), path)
    problems = load_problems(str(path))
    assert [p.id for p in problems] == ["a", "b"]
    assert problems[0] == Problem("a", "1+1?", "2", 1, "arith", {"solution": "1+1=2"})
    assert problems[1].answer in ("4", "4.0") and problems[1].level == 3


def test_ids_fall_back_to_a_stable_text_hash(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1?", "answer": "2"}])
    first, second = load_problems(str(path)), load_problems(str(path))
    assert first[0].id == second[0].id == data.problem_id("1+1?")
    assert first[0].id.startswith("sha256:")


def test_custom_fields(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"uid": "q1", "question": "3+4?", "final": 7}])
    (p,) = load_problems(str(path), problem_field="question", answer_field="final", id_field="uid")
    assert (p.id, p.problem, p.answer) == ("q1", "3+4?", "7")


def test_rows_without_a_usable_answer_are_left_out_and_counted(tmp_path, caplog):
    rows = [*ROWS, {"id": "c", "problem": "x", "answer": ""}, {"id": "d", "problem": "y", "answer": None},
            {"id": "e", "problem": "z", "answer": "9" * 5000}]
    path = _write_jsonl(tmp_path / "d.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="lapo.data"):
        problems = load_problems(str(path))
    assert [p.id for p in problems] == ["a", "b"]
    assert "left out 3 of 5 rows" in caplog.text


UNPARSEABLE_GOLDS = ["\\frac{", "}{", "\\boxed{", "a}{b", "\\left\\{ x \\right.", "9" * 5000]


@pytest.mark.parametrize("gold", UNPARSEABLE_GOLDS, ids=lambda g: g[:12])
def test_rows_with_an_unparseable_gold_are_left_out_and_named(tmp_path, caplog, gold):
    path = _write_jsonl(tmp_path / "d.jsonl", [*ROWS, {"id": "bad", "problem": "z", "answer": gold}])
    with caplog.at_level(logging.WARNING, logger="lapo.data"):
        problems = load_problems(str(path))
    assert [p.id for p in problems] == ["a", "b"]
    assert "left out 1 of 3 rows" in caplog.text and "1 whose gold answer cannot be checked: 'bad'" in caplog.text


@pytest.mark.parametrize(
    "gold, checkable",
    [("7", True), ("\\frac{1}{2}", True), ("\\{1, 2\\}", True), ("(-\\infty, 2)", True), ("x^2 + 1", True),
     ("\\text{east}", True), ("1" * 2000, True), ("", False), ("   ", False),
     *[(g, False) for g in UNPARSEABLE_GOLDS]],
    ids=lambda v: str(v)[:12],
)
def test_gold_is_checkable(gold, checkable):
    assert data.gold_is_checkable(gold) is checkable


def test_duplicate_ids_raise_with_their_names(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [*ROWS, {"id": "a", "problem": "other", "answer": "1"}])
    with pytest.raises(ValueError, match="duplicate problem id.*'a'"):
        load_problems(str(path))


def test_corrupt_jsonl_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"d\.jsonl:2 is not valid JSON"):
        load_problems(str(path))


def test_limit(tmp_path):
    assert len(load_problems(str(_write_jsonl(tmp_path / "d.jsonl", ROWS)), limit=1)) == 1


def test_counting_task_is_built_in():
    problems = load_problems("counting", split="train", limit=5, seed=3)
    assert len(problems) == 5 and problems == load_problems("counting", limit=5, seed=3)
    assert all(p.id.startswith("counting-") and p.answer.isdigit() and p.level for p in problems)
    assert "min_tokens" in problems[0].meta


@pytest.mark.skipif(not (SHARED_DATA / "math500.jsonl").exists(), reason="needs ../shared/data")
def test_benchmark_names_read_local_copies_from_data_dir():
    math500 = load_problems("math500", data_dir=SHARED_DATA)
    assert len(math500) == 500 and math500[0].level is not None
    gsm8k = load_problems("gsm8k", split="test", data_dir=SHARED_DATA)
    assert len(gsm8k) == 1319


def test_benchmark_names_map_hub_columns(monkeypatch):
    """The hub path, with the download replaced: GSM8K's '#### 72' answers and its question column."""
    calls = []

    def fake_hub(repo, split, config=None, instead_of=""):
        calls.append((repo, split, config))
        return [{"question": "Janet has 3 ducks...", "answer": "3 + 4 = 7\n#### 1,072"}]

    monkeypatch.setattr(sources, "_read_hub", fake_hub)
    (p,) = load_problems("gsm8k", split="test")
    assert calls == [("openai/gsm8k", "test", "main")]
    assert (p.problem, p.answer) == ("Janet has 3 ducks...", "1072")


def test_any_other_name_is_a_hub_id(monkeypatch):
    monkeypatch.setattr(sources, "_read_hub", lambda repo, split, config=None: [{"problem": repo, "answer": split}])
    (p,) = load_problems("someone/some-dataset", split="validation")
    assert (p.problem, p.answer) == ("someone/some-dataset", "validation")


# ------------------------------------------------------------------------------------------------ prompts


def test_plain_prompt_ends_with_the_think_tag():
    fmt = PromptFormat(kind="plain", plain_template="Q: {problem} A:")
    assert render_prompt("1+1?", None, fmt) == "Q: 1+1? A:<think>"
    assert render_prompt("1+1?<think>", None, PromptFormat(kind="plain")) == "1+1?<think>"  # never doubled


def test_budget_goes_right_after_the_think_tag():
    prompt = render_prompt("1+1?", None, PromptFormat(kind="plain"), budget=120)
    assert prompt == "1+1?<think>I will answer the question with 120 tokens."
    assert parse_budget(prompt) == 120


def test_no_think_tag_puts_the_budget_at_the_end():
    prompt = render_prompt("1+1?", None, PromptFormat(kind="plain", think_tag=""), budget=7)
    assert prompt == "1+1? I will answer the question with 7 tokens."


def test_chat_prompt_uses_the_template_and_keeps_latex_braces(char_tokenizer):
    prompt = render_prompt("What is $\\frac{1}{2}$?", char_tokenizer, PromptFormat(system_prompt="Be brief."))
    assert prompt == (
        "<|system|>Be brief.\n<|user|>What is $\\frac{1}{2}$? Please think step by step and output the final "
        "answer within \\boxed{}.\n<|assistant|><think>"
    )


def test_chat_template_that_opens_the_think_block_is_not_doubled(char_tokenizer):
    char_tokenizer.chat_template = char_tokenizer.chat_template.replace("<|assistant|>", "<|assistant|><think>\n")
    prompt = render_prompt("1+1?", char_tokenizer, PromptFormat(system_prompt=None), budget=50)
    assert prompt.endswith("<|assistant|><think>I will answer the question with 50 tokens.\n")
    assert prompt.count("<think>") == 1


def test_chat_without_a_template_says_what_to_do(char_tokenizer):
    char_tokenizer.chat_template = None
    with pytest.raises(ValueError, match="set the prompt kind to 'plain'"):
        render_prompt("1+1?", char_tokenizer, PromptFormat())


@pytest.mark.parametrize("kwargs, message", [({"kind": "html"}, "prompt kind 'html' is not known"),
                                             ({"user_template": "no placeholder"}, "must contain {problem}")])
def test_bad_prompt_formats(kwargs, message):
    with pytest.raises(LapoError, match=re.escape(message)):
        PromptFormat(**kwargs)


# ------------------------------------------------------------------------------------------------ budgets


def _batch(pids):
    return {"prompt": [f"{p}<think>" for p in pids], "problem_id": list(pids), "answer": ["7"] * len(pids)}


def test_budgeted_prompts_show_the_live_target_and_mark_the_fallback():
    targets = {"a": 120, "b": 4096}
    budgets = BudgetedPrompts(targets, fallback=4096, fmt=PromptFormat(kind="plain"))
    out = budgets(_batch(["a", "b", "c"]))
    assert out["budget"] == [120, 4096, 4096] and out["budget_fallback"] == [False, True, True]
    assert [parse_budget(p) for p in out["prompt"]] == [120, 4096, 4096]
    targets["a"] = 90  # online tightening writes into the same dict
    assert parse_budget(budgets(out)["prompt"][0]) == 90  # re-rendering replaces, never stacks
    assert budgets(out)["prompt"][0].count("I will answer") == 1


def test_budgeted_dataset_renders_when_rows_are_read():
    from datasets import Dataset

    targets = {"a": 100}
    dataset = Dataset.from_dict(_batch(["a"])).with_transform(BudgetedPrompts(targets, 4096, PromptFormat(kind="plain")))
    assert dataset[0]["budget"] == 100
    targets["a"] = 60
    assert dataset[0]["budget"] == 60 and parse_budget(dataset[0]["prompt"]) == 60
