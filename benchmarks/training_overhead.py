"""What LAPO's rewards cost a GRPO step: LAPO-D and LAPO-I against plain GRPO with a correctness reward.

    python benchmarks/training_overhead.py --out benchmarks/results/training_overhead.json
    python benchmarks/training_overhead.py --model lapo-counting-base --rounds 3 --steps 4   # embedded size
    python benchmarks/training_overhead.py --tiny                                           # seconds

Same model, data, seeds and generation settings for every variant; the variants run in alternating
chunks of steps in one process (A B C A B C ...) so the machine's noise hits all of them alike, and the
figures are medians of per-step times with ratios to plain GRPO. The plain reward uses the same answer
checker, so the difference is LAPO's own work: gathering groups, band/Gaussian scoring, recording lengths,
and (stage 2) rendering budgets from the live target map.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build_model(folder: Path, hidden: int) -> str:
    from lapo.models.tiny import build_char_tokenizer, build_tiny_model

    tokenizer = build_char_tokenizer()
    build_tiny_model(tokenizer, hidden_size=hidden, num_layers=2).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


class PlainCorrectness:
    """Plain GRPO's reward: 1 for a correct answer, else 0 (same checker as LAPO)."""

    __name__ = "plain_correctness"

    def __init__(self, checker):
        self.checker = checker

    def __call__(self, completions, answer, **_):
        return [float(ok) for ok in self.checker.check_many(list(completions), list(answer))]


def make_variants(cfg, generations: int, problems, fmt):
    """name -> (reward function, dataset transform or None)."""
    from lapo.core.checker import AnswerChecker
    from lapo.core.stats import LengthStats
    from lapo.data.prompts import BudgetedPrompts
    from lapo.train import rewards

    targets = {p.id: 60 for p in problems}  # any fixed budgets will do: this measures cost, not learning
    return {
        "plain": (PlainCorrectness(AnswerChecker(workers=0)), None),
        "lapo_d": (rewards.discovery_reward(cfg, generations, LengthStats()), None),
        "lapo_i": (rewards.internalization_reward(cfg, generations, LengthStats(), targets),
                   BudgetedPrompts(targets, fallback=10_000, fmt=fmt)),
        # plain GRPO on the same budgeted prompts as LAPO-I, so prompt length is not what differs
        "plain_budgeted": (PlainCorrectness(AnswerChecker(workers=0)), BudgetedPrompts(targets, 10_000, fmt)),
    }


def make_trainer(model_path: str, reward, transform, rows, args, out: str):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    dataset = Dataset.from_dict(rows)
    if transform is not None:
        dataset = dataset.with_transform(transform)
    config = GRPOConfig(
        output_dir=out, use_cpu=True, bf16=False, report_to="none", seed=0, max_steps=10_000,
        num_generations=args.generations, per_device_train_batch_size=args.generations * args.prompts,
        max_completion_length=args.max_tokens, temperature=0.6, top_p=0.95, learning_rate=1e-5, beta=1e-4,
        loss_type="grpo", logging_steps=10_000, save_strategy="no", dataloader_num_workers=0, data_seed=0,
        disable_tqdm=True, remove_unused_columns=False,
    )
    return GRPOTrainer(model=model, reward_funcs=[reward], args=config, train_dataset=dataset,
                       processing_class=tokenizer)


class StepTimer:
    """Wall time of each optimizer step (generation, rewards, loss, backward, update), via trainer callbacks."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, *_, **__):
        self._start = time.perf_counter()

    def on_step_end(self, *_, **__):
        self.times.append(time.perf_counter() - self._start)

    def __getattr__(self, name):  # every other TrainerCallback event: nothing to do
        return lambda *_, **__: None


def time_steps(model_path, reward, transform, rows, args, out) -> list[float]:
    """Step times of a fresh trainer run for 1 + ``args.steps`` steps; the first (warm-up) is dropped."""
    trainer = make_trainer(model_path, reward, transform, rows, args, out)
    trainer.args.max_steps = args.steps + 1
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    return timer.times[1:]


def run(args) -> dict:
    import torch

    from lapo.data.problems import load_problems
    from lapo.data.prompts import PromptFormat, render_prompt
    from lapo.models.loading import resolve_alias
    from lapo.train.config import LapoConfig

    torch.set_num_threads(args.threads)
    scratch = tempfile.mkdtemp(prefix="lapo-overhead-")
    model = resolve_alias(args.model) if args.model else build_model(Path(scratch) / "tiny", args.hidden)
    problems = load_problems("counting", split="train", limit=args.prompts * (args.rounds * args.steps + 2) * 2)
    fmt = PromptFormat(kind="plain")
    rows = {"prompt": [render_prompt(p.problem, None, fmt) for p in problems],
            "problem_id": [p.id for p in problems], "answer": [p.answer for p in problems],
            "budget_fallback": [False] * len(problems)}
    cfg = LapoConfig(dataset="counting", answer_workers=0, band_decay=10.0, sigma=12.0)
    variants = make_variants(cfg, args.generations, problems, fmt)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):  # A B C D, A B C D, ...: the machine's noise falls on every variant alike
        for name, (reward, transform) in variants.items():
            times[name] += time_steps(model, reward, transform, rows, args, f"{scratch}/{name}")
    return summarize(times, args)


def summarize(times: dict[str, list[float]], args) -> dict:
    med = {name: statistics.median(t) for name, t in times.items()}
    return {
        "settings": {k: getattr(args, k) for k in ("model", "hidden", "generations", "prompts", "max_tokens",
                                                    "rounds", "steps", "threads")},
        "median_step_s": med,
        "ratio_lapo_d_to_plain": med["lapo_d"] / med["plain"],
        "ratio_lapo_i_to_plain_budgeted": med["lapo_i"] / med["plain_budgeted"],
        "steps_per_variant": {name: len(t) for name, t in times.items()},
    }


def markdown(result: dict) -> str:
    m = result["median_step_s"]
    return "\n".join([
        "| variant | median s/step | ratio |", "|---|---:|---:|",
        f"| plain GRPO (correctness) | {m['plain']:.3f} | 1.00 |",
        f"| LAPO-D (stage 1) | {m['lapo_d']:.3f} | {result['ratio_lapo_d_to_plain']:.3f} |",
        f"| plain GRPO on budgeted prompts | {m['plain_budgeted']:.3f} | 1.00 |",
        f"| LAPO-I (stage 2) | {m['lapo_i']:.3f} | {result['ratio_lapo_i_to_plain_budgeted']:.3f} |",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a model path or alias (default: a tiny random model, the smoke size)")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4, help="steps per variant per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tiny", action="store_true", help="a few seconds: 1 round of 1 step, 16 tokens")
    p.add_argument("--out", type=Path)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.tiny:
        args.rounds, args.steps, args.max_tokens, args.generations, args.prompts = 1, 1, 16, 4, 2
    result = run(args)
    print(markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
