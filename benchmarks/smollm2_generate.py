"""SmolLM2-135M decoding cost per token on CPU: float32 against bf16 autocast, one torch thread against two.

    python benchmarks/smollm2_generate.py --out benchmarks/results/smollm2_generate.json   # a few minutes
    python benchmarks/smollm2_generate.py --tiny                                          # seconds: the test's mode

Generation is most of a GRPO step of the ``smollm2-135m`` recipe (benchmarks/smollm2_step.md). This times
``model.generate`` alone, as GRPO samples (16 sequences, ``do_sample``, a fixed number of new tokens), for each
setting in turn, ``--rounds`` times in alternating order, and reports the median milliseconds per decoded token
(wall clock and this process's CPU time: CPU time well above wall time means threads spinning while they wait).
``bf16`` runs the whole generation inside one bfloat16 autocast region, as training with ``bf16: true`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

SETTINGS = ("fp32-threads1", "bf16-threads1", "fp32-threads2", "bf16-threads2")


def load(tiny: bool):
    if tiny:
        from lapo.models.tiny import build_char_tokenizer, build_tiny_model

        tokenizer = build_char_tokenizer()
        return build_tiny_model(tokenizer, hidden_size=32, num_layers=2), tokenizer
    from lapo.models.loading import load_model_and_tokenizer

    return load_model_and_tokenizer("smollm2-135m-instruct")


def time_one(model, inputs, setting: str, tokens: int) -> dict:
    import torch

    dtype, threads = setting.split("-threads")
    torch.set_num_threads(int(threads))
    region = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    with torch.no_grad(), region:
        wall, cpu = time.perf_counter(), time.process_time()
        model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_ms_per_token": 1000 * wall / tokens, "cpu_ms_per_token": 1000 * cpu / tokens}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model built on the spot; seconds")
    parser.add_argument("--tokens", type=int, default=16, help="new tokens per generate call (default 16)")
    parser.add_argument("--batch", type=int, default=16, help="sequences per call (default 16, a GRPO step's)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all settings (order alternates)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    if unknown := [s for s in names if s not in SETTINGS]:
        parser.error(f"unknown settings {unknown}; use {', '.join(SETTINGS)}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_before = os.getloadavg()
    model, tokenizer = load(args.tiny)
    model.eval()
    inputs = tokenizer(["What is 3 + 5? Think it over, then answer."] * args.batch, return_tensors="pt")
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for rnd in range(args.rounds):
        for name in names if rnd % 2 == 0 else names[::-1]:
            runs[name].append(time_one(model, inputs, name, args.tokens))
            print(f"round {rnd + 1} {name}: " + ", ".join(f"{k} {v:.0f}" for k, v in runs[name][-1].items()), flush=True)
    summary = {name: {key: round(statistics.median(r[key] for r in rs), 1) for key in rs[0]} for name, rs in runs.items()}
    print("| setting | wall ms/token | CPU ms/token |\n|---|---:|---:|")
    for name, s in summary.items():
        print(f"| {name} | {s['wall_ms_per_token']:.0f} | {s['cpu_ms_per_token']:.0f} |")
    if args.out:
        import torch

        args.out.parent.mkdir(parents=True, exist_ok=True)
        machine = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                   "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "load_average_before": [round(x, 2) for x in load_before],
                   "load_average_after": [round(x, 2) for x in os.getloadavg()]}
        payload = {"command": sys.argv, "machine": machine, "tokens": args.tokens, "batch": args.batch,
                   "summary": summary, "runs": runs}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
