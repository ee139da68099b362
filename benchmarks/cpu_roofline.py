"""How fast can a SmolLM2-135M GRPO step be on this CPU at all? Matrix-multiply throughput times the step's work.

    python benchmarks/cpu_roofline.py --step-results benchmarks/results/smollm2_step_idle.json \
        --out benchmarks/results/cpu_roofline.json

1. Measures this CPU's float32 matrix-multiply throughput (GFLOP/s) with torch, at the shapes of the model's
   MLP over one step's tokens (the largest products of a forward pass), with ``--threads`` threads.
2. Counts the multiply-adds of one step of the ``smollm2-135m`` recipe from the model's config and the step's
   token counts: prompts rendered by lapo from the task's training problems with the real tokenizer (TRL pads a
   batch to its longest prompt and longest completion), completion lengths from ``--step-results`` (what
   ``benchmarks/smollm2_step.py`` measured) or ``--completion-tokens``.
3. Prints, per part of the step, the work and the time it cannot go below at the measured throughput, beside
   the time measured. The floor is generous to the step: it counts only the linear layers (no attention
   scores, softmax, norms, optimizer) and assumes every product runs at the throughput of the best one.

Counted per token, with N the linear weights of the 30 layers (q, k, v, o, gate, up, down) and H the LM head
(576 x 49,152): a forward is 2N FLOPs at every position plus 2H at each completion token (lapo projects only
completion positions on CPU); backward is twice a forward; activation checkpointing runs the layers' forward
once more; generation is a prefill of the prompts plus one position per sequence per decoded token, with the LM
head at every decoded position.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def matmul_gflops(tokens: int, hidden: int, inner: int, threads: int, repeats: int = 15) -> float:
    """Median float32 GFLOP/s of [tokens, hidden] @ [hidden, inner] and [tokens, inner] @ [inner, hidden]."""
    import torch

    torch.set_num_threads(threads)
    x = torch.randn(tokens, hidden)
    up, down = torch.randn(hidden, inner), torch.randn(inner, hidden)
    for _ in range(3):  # warm-up: thread pool, allocator
        (x @ up) @ down
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        (x @ up) @ down
        rates.append(2 * 2 * tokens * hidden * inner / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def prompt_lengths(fmt, model: str, prompts_per_step: int) -> tuple[float, float]:
    """Mean prompt tokens, and the mean over steps of the longest prompt of a step (what TRL pads to)."""
    from transformers import AutoTokenizer

    from lapo.data.prompts import encode_prompts, render_prompt
    from lapo.tasks.sums import load_split

    tokenizer = AutoTokenizer.from_pretrained(model)
    texts = [render_prompt(p["problem"], tokenizer, fmt) for p in load_split("train")]
    lengths = [len(ids) for ids in encode_prompts(tokenizer, texts)]
    batches = [lengths[i : i + prompts_per_step] for i in range(0, len(lengths), prompts_per_step)]
    return statistics.mean(lengths), statistics.mean(max(b) for b in batches)


def linear_weights(config) -> tuple[int, int]:
    """(multiply-adds per token of the layers' linear weights, of the LM head)."""
    head_dim = config.hidden_size // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    h, i = config.hidden_size, config.intermediate_size
    per_layer = h * h + 2 * h * kv + h * h + 3 * h * i  # q, k, v, o; gate, up, down
    return per_layer * config.num_hidden_layers, h * config.vocab_size


def step_work(n: int, head: int, sequences: int, prompt_max: float, completion_mean: float,
              completion_max: float, checkpointing: bool) -> dict[str, float]:
    """GFLOP of each part of one GRPO step (see the module docstring for what is counted)."""
    positions = sequences * (prompt_max + completion_max)  # padded batch
    scored = sequences * completion_mean  # completion tokens: the LM head's positions
    forward = 2 * n * positions + 2 * head * scored
    return {
        "generate": (2 * n * sequences * prompt_max + 2 * (n + head) * sequences * completion_max) / 1e9,
        "ref_forward": forward / 1e9,
        "policy_forward": forward / 1e9,
        "backward": (2 * forward + (2 * n * positions if checkpointing else 0)) / 1e9,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step-results", type=Path, help="JSON of benchmarks/smollm2_step.py (lengths, times)")
    parser.add_argument("--variant", default="after", help="the variant of --step-results to compare (default after)")
    parser.add_argument("--completion-tokens", type=float, default=None, help="mean completion tokens (else from results)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from transformers import AutoConfig

    from lapo.models.loading import model_path
    from lapo.train.config import load_run_config

    stage = load_run_config("smollm2-135m").stages["discovery"]
    sequences = stage.grpo.per_device_train_batch_size * stage.grpo.gradient_accumulation_steps
    prompts_per_step = sequences // stage.grpo.num_generations
    model = model_path("smollm2-135m-instruct")
    config = AutoConfig.from_pretrained(model)
    n, head = linear_weights(config)
    prompt_mean, prompt_max = prompt_lengths(stage.lapo.prompt_format(), model, prompts_per_step)

    measured: dict = {}
    if args.step_results:
        summary = json.loads(args.step_results.read_text())["summary"][args.variant]
        measured = summary.get("parts_median_s", {})
        completion_mean = args.completion_tokens or summary.get("mean_tokens")
    else:
        completion_mean = args.completion_tokens
    if completion_mean is None:
        sys.exit("cpu_roofline: give --completion-tokens, or --step-results with mean tokens recorded")
    completion_max = stage.grpo.max_completion_length  # some sample of 16 nearly always reaches the cap
    tokens = round(sequences * (prompt_max + completion_max))
    gflops = matmul_gflops(tokens, config.hidden_size, config.intermediate_size, args.threads)
    work = step_work(n, head, sequences, prompt_max, completion_mean, completion_max,
                     bool(stage.grpo.gradient_checkpointing))
    floor = {part: gflop / gflops for part, gflop in work.items()}
    result = {
        "threads": args.threads, "matmul_gflops": gflops, "sequences": sequences, "prompt_tokens_mean": prompt_mean,
        "prompt_tokens_padded": prompt_max, "completion_tokens_mean": completion_mean,
        "completion_tokens_padded": completion_max, "linear_macs_per_token": n, "lm_head_macs_per_token": head,
        "gflop": work, "floor_s": floor, "floor_total_s": sum(floor.values()), "measured_s": measured,
        "command": " ".join(["python", "benchmarks/cpu_roofline.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    print(f"float32 matmul, {args.threads} threads, [{tokens} x {config.hidden_size}] @ [{config.hidden_size} x "
          f"{config.intermediate_size}] and back: {gflops:.1f} GFLOP/s")
    print(f"{sequences} sequences, prompts {prompt_mean:.1f} tokens (padded {prompt_max:.1f}), completions "
          f"{completion_mean:.1f} tokens (padded {completion_max})\n")
    print("| part | GFLOP | floor s | measured s |\n|---|---:|---:|---:|")
    for part in work:
        seen = measured.get(part)
        print(f"| {part} | {work[part]:.0f} | {floor[part]:.1f} | {seen:.1f} |" if seen is not None
              else f"| {part} | {work[part]:.0f} | {floor[part]:.1f} | - |")
    print(f"| total | {sum(work.values()):.0f} | {sum(floor.values()):.1f} | "
          f"{sum(measured.get(p, 0) for p in work):.1f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
