"""Tokens per second of `lapo eval`'s transformers backend against a bare `model.generate`.

    python benchmarks/generation_throughput.py --out benchmarks/results/generation_throughput.json
    python benchmarks/generation_throughput.py --tiny

Same model, prompts (the counting task's test split, plain prompt format), batch size, sampling settings
(temperature 0.6, top_p 0.95) and token limit. The backend adds per-row seeded sampling, EOS cutting and
its thread policy; the bare loop is `model.generate(do_sample=True)` on the same tokenized batch. The two
run in alternating rounds in one process; the figures are medians of generated tokens per second, and
the ratio backend / bare is the goal's figure (at least 0.95).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def load(model_name: str | None, hidden: int):
    from lapo.models.loading import load_model_and_tokenizer
    from lapo.models.tiny import build_char_tokenizer, build_tiny_model

    if model_name:
        return load_model_and_tokenizer(model_name)
    tokenizer = build_char_tokenizer()
    return build_tiny_model(tokenizer, hidden_size=hidden, num_layers=2), tokenizer


def bare_generate(model, tokenizer, prompts, args) -> int:
    """The reference: one `generate` call on the batch; returns generated tokens up to EOS."""
    import torch

    tokenizer.padding_side = "left"
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**enc, do_sample=True, temperature=0.6, top_p=0.95, max_new_tokens=args.max_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    new = out[:, enc["input_ids"].shape[1]:].tolist()
    return sum(row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row) for row in new)


def run(args) -> dict:
    import torch

    from lapo.data.problems import load_problems
    from lapo.data.prompts import PromptFormat, render_prompt
    from lapo.eval.generation import TransformersBackend
    from lapo.eval.settings import EvalSettings

    torch.set_num_threads(args.threads)
    model, tokenizer = load(args.model, args.hidden)
    problems = load_problems("counting", split="test", limit=args.batch)
    prompts = [render_prompt(p.problem, tokenizer, PromptFormat(kind="plain")) for p in problems]
    settings = EvalSettings(model="in-memory", dataset="counting", max_new_tokens=args.max_tokens)
    backend = TransformersBackend(model, tokenizer, settings)
    rates: dict[str, list[float]] = {"lapo_backend": [], "bare_generate": []}
    for r in range(args.rounds + 1):  # round 0 warms both up and is not counted
        torch.manual_seed(r)
        start = time.perf_counter()
        tokens = sum(len(g.token_ids) for g in backend.generate(prompts, [r * 10_000 + i for i in range(len(prompts))]))
        backend_rate = tokens / (time.perf_counter() - start)
        torch.manual_seed(r)
        with torch.inference_mode():
            start = time.perf_counter()
            tokens = bare_generate(model, tokenizer, prompts, args)
            bare_rate = tokens / (time.perf_counter() - start)
        if r:
            rates["lapo_backend"].append(backend_rate)
            rates["bare_generate"].append(bare_rate)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"settings": vars(args) | {"out": str(args.out) if args.out else None}, "tokens_per_s": rates,
            "median_tokens_per_s": med, "ratio_backend_to_bare": med["lapo_backend"] / med["bare_generate"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model path or alias (default: a tiny random model)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tiny", action="store_true", help="a few seconds: 1 round, 8 prompts, 16 tokens")
    p.add_argument("--out", type=Path)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.tiny:
        args.rounds, args.batch, args.max_tokens = 1, 8, 16
    result = run(args)
    med = result["median_tokens_per_s"]
    print("| generator | median tokens/s |\n|---|---:|")
    print(f"| lapo eval backend | {med['lapo_backend']:.0f} |\n| bare model.generate | {med['bare_generate']:.0f} |")
    print(f"ratio backend / bare: {result['ratio_backend_to_bare']:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
