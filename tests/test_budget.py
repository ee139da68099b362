"""The stage-2 budget sentence: written into the reasoning context, parsed back, never stacked."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lapo.core.budget import budget_sentence, insert_budget, parse_budget, strip_budget


def test_sentence_is_the_papers():
    assert budget_sentence(512) == "I will answer the question with 512 tokens."


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("User: 1+1? Assistant: <think>", "User: 1+1? Assistant: <think>I will answer the question with 7 tokens."),
        ("<|im_start|>assistant\n<think>\n", "<|im_start|>assistant\n<think>I will answer the question with 7 tokens.\n"),
        ("Q: 1+1?", "Q: 1+1? I will answer the question with 7 tokens."),
        ("Q: 1+1?\n", "Q: 1+1?\nI will answer the question with 7 tokens."),
    ],
)
def test_insert_after_think_tag_else_at_end(prompt, expected):
    assert insert_budget(prompt, 7) == expected


def test_insert_replaces_an_existing_budget():
    once = insert_budget("A: <think>", 300)
    assert insert_budget(once, 200) == "A: <think>I will answer the question with 200 tokens."


def test_custom_template():
    prompt = insert_budget("<think>", 64, template="Budget: {n}.")
    assert parse_budget(prompt, template="Budget: {n}.") == 64


def test_template_without_placeholder_is_refused():
    with pytest.raises(ValueError, match="placeholder"):
        budget_sentence(5, template="no number here")


@given(st.text(max_size=60), st.integers(1, 100_000), st.booleans())
def test_parse_reads_back_inserted_budget(prompt, n, with_tag):
    prompt = prompt.replace("I will", "") + ("<think>" if with_tag else "")
    assert parse_budget(insert_budget(prompt, n)) == n


@given(st.text(max_size=60), st.integers(1, 100_000), st.integers(1, 100_000), st.booleans())
def test_rewriting_a_budget_equals_writing_it_once(prompt, n, m, with_tag):
    prompt = prompt.replace("I will", "") + ("<think>" if with_tag else "")
    assert insert_budget(insert_budget(prompt, n), m) == insert_budget(prompt, m)


@pytest.mark.parametrize("prompt", ["User: hi <think>", "<think>\n", "Q: 2+2?", "Q: 2+2?\n"])
def test_strip_inverts_insert(prompt):
    assert strip_budget(insert_budget(prompt, 42)) == prompt


def test_parse_without_budget_is_none():
    assert parse_budget("<think> no plan here") is None
