"""Shared fixtures: a character-level tokenizer and tiny models built in the test, never downloaded.

- ``char_tokenizer``: lapo's character-level tokenizer with a minimal chat template added.
- ``tiny_qwen2_dir`` / ``tiny_llama_dir``: randomly initialised 2-layer models (hidden 32) saved with it.
- ``warm_model_dir``: a tiny Qwen2 taught in a few seconds to answer ``P<i><think>`` prompts with
  ``xxx</think>\\boxed{7}`` (about 75% ``7``, otherwise ``3``) after 1-8 ``x``: correct and wrong answers
  of varied lengths, so LAPO's bands, medians and advantages are all non-trivial on CPU.
- ``toy_problems``: a JSONL file of such problems (gold answer ``7``).
- ``cpu_overrides``: the overrides that make any recipe run on CPU in a second per step.

Torch runs single-threaded: the test machine has two shared cores, where more threads only contend.
Hypothesis keeps no example database and writes nothing into the checkout.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a test that reaches for the hub fails instead of hanging
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Hypothesis writes nothing into the checkout: no example database, and its caches (unicode tables) in the
# system's temporary folder instead of ./.hypothesis.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "lapo-hypothesis"))

from hypothesis import settings  # noqa: E402

settings.register_profile("lapo", database=None)
settings.load_profile("lapo")

import torch  # noqa: E402

torch.set_num_threads(1)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
WARM_ANSWER = "7"


def make_char_tokenizer():
    from lapo.models.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_tiny_model(tokenizer, arch: str = "qwen2", seed: int = 0):
    """A random 2-layer model of ``arch`` (hidden 32), the shape of the recipe's real model."""
    from lapo.models.tiny import build_tiny_model

    return build_tiny_model(tokenizer, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                            num_kv_heads=1, max_position_embeddings=1024, seed=seed, architecture=arch)


def _save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def char_tokenizer():
    return make_char_tokenizer()


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory) -> Path:
    tokenizer = make_char_tokenizer()
    return _save(make_tiny_model(tokenizer, "qwen2"), tokenizer, tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    tokenizer = make_char_tokenizer()
    return _save(make_tiny_model(tokenizer, "llama"), tokenizer, tmp_path_factory.mktemp("tiny-llama"))


def _warm_example(rng: random.Random) -> tuple[str, str]:
    prompt = f"P{rng.randrange(10)}<think>"
    if rng.random() < 0.5:  # stage 2's prompts carry a budget sentence: keep the model on track after it
        prompt += f"I will answer the question with {rng.randrange(8, 40)} tokens."
    answer = WARM_ANSWER if rng.random() < 0.75 else "3"
    return prompt, "x" * rng.randint(1, 8) + "</think>\\boxed{" + answer + "}"


def train_warm_model(steps: int = 150, batch: int = 16, seed: int = 0):
    """About five seconds of supervised training on completions only (prompt tokens masked)."""
    rng = random.Random(seed)
    tokenizer = make_char_tokenizer()
    model = make_tiny_model(tokenizer, "qwen2", seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(steps):
        pairs = [_warm_example(rng) for _ in range(batch)]
        prompts = [tokenizer(p, add_special_tokens=False).input_ids for p, _ in pairs]
        answers = [tokenizer(c, add_special_tokens=False).input_ids + [tokenizer.eos_token_id] for _, c in pairs]
        width = max(len(p) + len(c) for p, c in zip(prompts, answers))
        ids = torch.full((batch, width), tokenizer.pad_token_id)
        labels = torch.full((batch, width), -100)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for i, (p, c) in enumerate(zip(prompts, answers)):
            n = len(p) + len(c)
            ids[i, :n], mask[i, :n], labels[i, len(p) : n] = torch.tensor(p + c), 1, torch.tensor(c)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return model, tokenizer


@pytest.fixture(scope="session")
def warm_model_dir(tmp_path_factory) -> Path:
    model, tokenizer = train_warm_model()
    return _save(model, tokenizer, tmp_path_factory.mktemp("warm-qwen2"))


def write_toy_problems(path: Path, n: int = 8) -> Path:
    rows = [{"id": f"toy-{i}", "problem": f"P{i}", "answer": WARM_ANSWER} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def toy_problems(tmp_path) -> Path:
    return write_toy_problems(tmp_path / "toy.jsonl")


def cpu_overrides(model_dir: Path, dataset: Path, output_dir: Path, **extra) -> list[str]:
    """Overrides that run any recipe on CPU with a tiny model: no vLLM, no bf16, tiny batches.

    Documented in docs/TRAINING.md ("Running a recipe on CPU"); the recipe tests apply exactly these.
    """
    values = {
        "model_name_or_path": str(model_dir),
        "dataset": str(dataset),
        "output_dir": str(output_dir),
        "use_cpu": "true",
        "use_vllm": "false",
        "bf16": "false",
        "dtype": "float32",
        "gradient_checkpointing": "false",
        "use_liger_kernel": "false",
        "deepspeed": "null",
        "report_to": "none",
        "max_completion_length": "24",
        "num_generations": "4",
        "per_device_train_batch_size": "8",
        "gradient_accumulation_steps": "1",
        "generation_batch_size": "null",
        "steps_per_generation": "null",
        "max_steps": "2",
        "save_steps": "1000",
        "logging_steps": "1",
        "learning_rate": "1e-3",
        "answer_workers": "0",
        "seed": "0",
        "ddp_find_unused_parameters": "false",
    }
    values.update({k: str(v) for k, v in extra.items()})
    return [f"{k}={v}" for k, v in values.items()]


def toy_overrides(model_dir: Path, dataset: Path, output_dir: Path, **extra) -> list[str]:
    """``cpu_overrides`` with the plain ``P<i><think>`` prompts the warm model was taught."""
    return cpu_overrides(model_dir, dataset, output_dir, prompt_kind="plain", plain_template="{problem}", **extra)
