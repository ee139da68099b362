"""The check to run when a GPU is lent: the tiny recipe's two stages on one GPU in bf16, then an evaluation.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json     # one GPU, under 8 minutes
    python benchmarks/gpu_check.py --smoke --out /tmp/gpu_check_smoke.json     # CPU, the test's mode

Runs the shipped ``counting`` recipe (the embedded base model ``lapo-counting-base``) through
``lapo.train.run`` exactly as ``lapo train`` does (in one process: no launcher), stage 1 then stage 2, with
``bf16=true`` on the GPU, and records each optimizer step's wall time (a trainer callback), then evaluates
stage 2's final model with ``lapo eval`` (vLLM when installed, else transformers) and records its generated
tokens per second. Writes JSON: device, versions, per-stage step times (median, all), eval throughput, and
the total wall time; it fails if the whole check takes longer than ``--budget-s`` (480 s).

``--smoke`` runs the same code on CPU in float32 with 1 step per stage, 1 prompt x 4 completions of up
to 32 tokens and 2 evaluation problems: it proves the script works; its figures are not GPU figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

GPU_OVERRIDES = ["use_cpu=false", "bf16=true", "dtype=float32", "discovery.max_steps=20", "internalization.max_steps=20",
                 "save_steps=1000", "report_to=none", "disable_tqdm=true"]
SMOKE_OVERRIDES = ["use_cpu=true", "bf16=false", "max_steps=1", "max_completion_length=32", "num_generations=4",
                   "per_device_train_batch_size=4", "save_steps=1000", "report_to=none", "max_problems=8",
                   "answer_workers=0", "disable_tqdm=true"]


def step_timer():
    """A TrainerCallback that records every optimizer step's wall time, per stage."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: dict[str, list[float]] = {}
            self._start = None

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            stage = Path(args.output_dir).name
            self.times.setdefault(stage, []).append(round(time.perf_counter() - self._start, 4))

    return StepTimer()


def train(run_dir: Path, smoke: bool) -> dict:
    from lapo.train import run as train_run
    from lapo.train.config import load_run_config

    overrides = (SMOKE_OVERRIDES if smoke else GPU_OVERRIDES) + [f"output_dir={run_dir}"]
    timer = step_timer()
    started = time.perf_counter()
    train_run.run(load_run_config("counting", overrides), callbacks=[timer])
    return {
        "overrides": overrides,
        "seconds": round(time.perf_counter() - started, 2),
        "step_seconds": timer.times,
        "median_step_seconds": {s: statistics.median(t) for s, t in timer.times.items()},
    }


def evaluate(model: Path, out: Path, smoke: bool) -> dict:
    from lapo.eval.evaluate import evaluate as run_eval
    from lapo.eval.settings import EvalSettings

    settings = EvalSettings(model=str(model), dataset="counting", k=1 if smoke else 4, limit=2 if smoke else 200,
                            max_new_tokens=32 if smoke else 160, out=str(out), backend="transformers" if smoke
                            else "auto", device="cpu" if smoke else "auto", progress=False)
    started = time.perf_counter()
    summary = run_eval(settings)
    return {"seconds": round(time.perf_counter() - started, 2), "throughput": summary["throughput"],
            "accuracy": summary.get("accuracy"), "k": settings.k, "limit": settings.limit}


def device_info() -> dict:
    import torch

    info = {"cuda": torch.cuda.is_available(), "torch": torch.__version__, "python": platform.python_version()}
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, 1 step per stage: proves the script runs")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--budget-s", type=float, default=480.0, help="fail if the whole check takes longer")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = device_info()
    if not args.smoke and not device["cuda"]:
        print("gpu_check: no CUDA GPU here; run with --smoke on CPU, or on a GPU machine.", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = {"mode": "smoke (CPU, not a GPU figure)" if args.smoke else "gpu", "device": device}
        result["train"] = train(Path(tmp) / "run", args.smoke)
        result["eval"] = evaluate(Path(tmp) / "run" / "internalization" / "final", Path(tmp) / "eval", args.smoke)
    result["total_seconds"] = round(time.perf_counter() - started, 2)
    result["within_budget"] = result["total_seconds"] <= args.budget_s
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("mode", "total_seconds", "within_budget")}))
    print("median step seconds:", result["train"]["median_step_seconds"], "| eval tokens/s:",
          result["eval"]["throughput"].get("tokens_per_s"))
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
