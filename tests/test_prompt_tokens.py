"""A prompt is the same tokens in training and in evaluation, with one BOS where the tokenizer adds one.

The case that went wrong: a DeepSeek-R1-Distill-style tokenizer, whose chat template writes ``{{ bos_token }}``
and whose post-processor adds BOS too. TRL 1.16 encodes the rendered prompt string with special tokens
(``processing_class(text=prompts)``), so training saw two BOS, while evaluation (no special tokens) saw one.
"""

from __future__ import annotations

import pytest

from conftest import CHAT_TEMPLATE
from lapo.data.problems import Problem
from lapo.data.prompts import BudgetedPrompts, PromptFormat, encode_prompts, prompt_rows, render_prompt
from lapo.eval.generation import prompt_batch


def _tokenizer(adds_bos: bool, template_bos: bool):
    """The char-level test tokenizer with a BOS token, added by a post-processor or not, and a chat template
    that writes ``{{ bos_token }}`` or not."""
    from tokenizers import AddedToken
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    from lapo.models.tiny import build_char_tokenizer

    base = build_char_tokenizer()
    backend = base.backend_tokenizer
    backend.add_special_tokens([AddedToken("<s>", special=True, normalized=False)])
    if adds_bos:
        bos = backend.token_to_id("<s>")
        backend.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token=base.eos_token,
                                        pad_token=base.pad_token, unk_token=base.unk_token, padding_side="left")
    tokenizer.chat_template = ("{{ bos_token }}" if template_bos else "") + CHAT_TEMPLATE
    return tokenizer


def _training_ids(tokenizer, fmt, problems, budgets=None):
    """What TRL 1.16's GRPOTrainer encodes: the dataset's prompt strings, ``processing_class(text=prompts)``."""
    rows = prompt_rows(problems, tokenizer, fmt)
    if budgets is not None:
        rows = budgets(rows)
    return tokenizer(text=rows["prompt"])["input_ids"]


def _evaluation_ids(tokenizer, fmt, problems, budgets=None):
    """What `lapo eval` feeds both backends: vLLM's token ids and the transformers backend's padded batch."""
    texts = [render_prompt(p.problem, tokenizer, fmt, budget=None if budgets is None else budgets.budget(p.id)[0])
             for p in problems]
    batch = prompt_batch(tokenizer, texts)
    unpadded = [[t for t, m in zip(row, mask) if m] for row, mask in zip(batch["input_ids"].tolist(),
                                                                          batch["attention_mask"].tolist())]
    assert unpadded == encode_prompts(tokenizer, texts)  # the two eval backends agree
    return unpadded


PROBLEMS = [Problem(id="a", problem="count b in abcb", answer="2"), Problem(id="b", problem="x", answer="0")]


@pytest.mark.parametrize("adds_bos, template_bos", [(True, True), (True, False), (False, True), (False, False)])
@pytest.mark.parametrize("kind", ["chat", "plain"])
def test_training_and_evaluation_encode_a_prompt_alike_with_one_bos(adds_bos, template_bos, kind):
    tokenizer = _tokenizer(adds_bos, template_bos)
    fmt = PromptFormat(kind=kind)
    budgets = BudgetedPrompts({"a": 30, "b": 40}, 4096, fmt)
    for stage_budgets in (None, budgets):  # stage 1's prompts, stage 2's with the budget sentence
        train = _training_ids(tokenizer, fmt, PROBLEMS, stage_budgets)
        assert train == _evaluation_ids(tokenizer, fmt, PROBLEMS, stage_budgets)
        bos = tokenizer.bos_token_id
        expected = int(adds_bos or (kind == "chat" and template_bos))
        assert all(ids.count(bos) == expected and (ids[0] == bos) == bool(expected) for ids in train)
