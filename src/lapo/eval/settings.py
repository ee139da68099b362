"""The settings of one ``lapo eval`` run: every flag maps one to one onto a field of :class:`EvalSettings`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lapo.errors import LapoError
from lapo.eval.samples import parse_budget_spec

# What torch accepts as a device for the transformers backend (checked before any model loads).
_DEVICE = re.compile(r"auto|cpu|mps|(cuda|xpu|npu)(:\d+)?")


@dataclass
class EvalSettings:
    """Everything one evaluation needs; the CLI flags map one to one onto these fields."""

    model: str
    dataset: str
    data_dir: str | None = None
    split: str = "test"
    k: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 4096
    batch_size: int | None = None  # None: 64 prompts per generate() call, 1024 per vLLM chunk
    limit: int | None = None
    budget: str = "none"
    budget_tolerance: float = 0.1  # "off budget": |L - N| / N above this
    backend: str = "auto"
    out: str | None = None
    seed: int = 0
    data_seed: int = 0  # only generated tasks (counting) use it: which problems the split holds
    prompt_format: str = "auto"
    answer_fallback: str = "auto"  # auto: the training run's setting, else none
    label: str | None = None
    device: str = "auto"
    overwrite: bool = False
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    progress: bool = True

    def validate(self) -> None:
        """Reject impossible values with the fix, before anything is loaded."""
        checks = [
            (self.k >= 1, f"--k {self.k} must be at least 1"),
            (self.budget_tolerance > 0, f"--budget-tolerance {self.budget_tolerance} must be positive"),
            (self.temperature >= 0, f"--temperature {self.temperature} must be 0 (greedy) or more"),
            (0 < self.top_p <= 1, f"--top-p {self.top_p} must be in (0, 1]"),
            (self.max_new_tokens >= 1, f"--max-new-tokens {self.max_new_tokens} must be at least 1"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size {self.batch_size} must be at least 1"),
            (self.limit is None or self.limit >= 1, f"--limit {self.limit} must be at least 1"),
            (self.backend in ("auto", "transformers", "vllm"),
             f"--backend {self.backend!r} must be auto, transformers or vllm"),
            (self.answer_fallback in ("auto", "none", "last_number"),
             f"--answer-fallback {self.answer_fallback!r} must be auto, none or last_number"),
            (bool(_DEVICE.fullmatch(self.device)), f"--device {self.device!r} is not a device: use auto, cpu, cuda, "
             "cuda:N or mps"),
            (self.tensor_parallel_size >= 1, f"--tensor-parallel-size {self.tensor_parallel_size} must be at least 1"),
            (0 < self.gpu_memory_utilization <= 1,
             f"--gpu-memory-utilization {self.gpu_memory_utilization} must be in (0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise LapoError(message + ".")
        parse_budget_spec(self.budget)
