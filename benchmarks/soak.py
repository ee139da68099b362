"""Soak: many GRPO steps of the smoke configuration in one process; does memory keep growing?

    python benchmarks/soak.py --out benchmarks/results/soak.json      # 200 steps (about 10 min on 2 CPU cores)
    python benchmarks/soak.py --steps 5                                # the tiny mode tests/test_benchmarks.py runs

The smoke configuration is the shipped ``counting`` recipe with a tiny character-level Qwen2 built on the
spot (``lapo.models.tiny.build_char_tokenizer`` / ``build_tiny_model``, saved to a temporary folder), stage 1
(Discovery) only, ``max_completion_length`` 48, 4 completions for each of 4 prompts per step, and no
checkpoint before the end. Everything else is the recipe's, run through ``lapo.train`` exactly as
``lapo train`` runs it: rewards, length statistics, log history, metrics lines.

A ``TrainerCallback`` records at the end of every step the process's resident set size (psutil when
installed, else ``/proc/self/statm``), and with ``--tracemalloc`` the Python heap (tracemalloc slows the
run several times over), plus the sizes of what a run keeps: ``state.log_history`` and the length records.
Issue 6's goal: RSS at the last step at most 10% above RSS at step 20 (``--baseline-step``). Prints a
markdown summary; ``--out`` writes it and every step's figures as JSON. Results: benchmarks/soak.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

GOAL_PERCENT = 10.0


def rss_bytes() -> int:
    """The resident set size of this process (psutil, else Linux's /proc/self/statm)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_model(folder: Path) -> Path:
    """The tiny char-level Qwen2 of the smoke configuration, saved with its tokenizer."""
    from lapo.models.tiny import build_char_tokenizer, build_tiny_model

    tokenizer = build_char_tokenizer()
    build_tiny_model(tokenizer, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def smoke_overrides(model_dir: Path, run_dir: Path, steps: int) -> list[str]:
    """The ``counting`` recipe turned into the smoke configuration (one process, CPU, small batches)."""
    values = {
        "model_name_or_path": model_dir, "output_dir": run_dir, "max_steps": steps,
        "max_completion_length": 48, "num_generations": 4, "per_device_train_batch_size": 16,
        "generation_batch_size": "null", "steps_per_generation": "null", "gradient_accumulation_steps": 1,
        "save_steps": 100_000, "logging_steps": 1, "report_to": "none", "seed": 0, "answer_workers": 0,
    }
    return [f"{k}={v}" for k, v in values.items()]


def memory_callback(records: list[dict], heap: bool):
    from transformers import TrainerCallback

    class MemoryCallback(TrainerCallback):
        """One record per optimizer step: RSS, optionally the Python heap, and what the run keeps."""

        def on_step_end(self, args, state, control, **kwargs):
            record = {"step": state.global_step, "time_s": time.perf_counter(), "rss_bytes": rss_bytes(),
                      "log_history": len(state.log_history)}
            if heap:
                record["heap_bytes"] = tracemalloc.get_traced_memory()[0]
            records.append(record)

    return MemoryCallback()


def run_soak(steps: int, heap: bool, model: str | None = None) -> tuple[list[dict], dict]:
    """Train ``steps`` steps of the smoke configuration; every step's memory record and the run's result."""
    from lapo.train import run as train
    from lapo.train.config import load_run_config

    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="lapo-soak-") as tmp:
        model_dir = model or build_model(Path(tmp) / "model")
        run_cfg = load_run_config("counting", smoke_overrides(model_dir, Path(tmp) / "run", steps), stage="discovery")
        gc.collect()
        if heap:
            tracemalloc.start()
        started = time.perf_counter()
        result = train.run(run_cfg, callbacks=[memory_callback(records, heap)])
        for r in records:
            r["time_s"] = round(r["time_s"] - started, 2)
        return records, {"length_records": len(result["discovery"]), "seconds": round(time.perf_counter() - started, 1)}


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 for fewer than two."""
    if len(points) < 2:
        return 0.0
    mx, my = sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def summarize(records: list[dict], baseline_step: int, window: int = 10) -> dict:
    """RSS at the baseline step and at the last, the growth in percent, and two views that ignore noise.

    RSS swings by a few MiB from step to step (generation buffers come and go), so beside the two single
    readings the summary gives each one's floor (the smallest RSS of the ``window`` steps ending there) and
    the least-squares trend after the baseline, in KiB per step.
    """
    steps = [r["step"] for r in records]
    base_i = steps.index(min(baseline_step, steps[-1]))
    base, last = records[base_i], records[-1]

    def floor(i: int) -> float:
        return min(r["rss_bytes"] for r in records[max(0, i - window + 1) : i + 1])

    growth = 100.0 * (last["rss_bytes"] - base["rss_bytes"]) / base["rss_bytes"]
    summary = {
        "steps": last["step"], "baseline_step": base["step"], "window": window,
        "rss_first_mib": records[0]["rss_bytes"] / 2**20, "rss_baseline_mib": base["rss_bytes"] / 2**20,
        "rss_last_mib": last["rss_bytes"] / 2**20, "rss_max_mib": max(r["rss_bytes"] for r in records) / 2**20,
        "growth_percent": growth, "goal_percent": GOAL_PERCENT, "within_goal": growth <= GOAL_PERCENT,
        "floor_baseline_mib": floor(base_i) / 2**20, "floor_last_mib": floor(len(records) - 1) / 2**20,
        "trend_kib_per_step": _slope([(r["step"], r["rss_bytes"] / 1024) for r in records[base_i:]]),
    }
    summary["floor_growth_percent"] = 100.0 * (summary["floor_last_mib"] / summary["floor_baseline_mib"] - 1)
    if "heap_bytes" in last:
        summary["heap_baseline_mib"], summary["heap_last_mib"] = base["heap_bytes"] / 2**20, last["heap_bytes"] / 2**20
        summary["heap_trend_kib_per_step"] = _slope([(r["step"], r["heap_bytes"] / 1024) for r in records[base_i:]])
    return summary


def markdown(summary: dict, extra: dict) -> str:
    rows = [
        ("steps", f"{summary['steps']} ({extra['seconds']} s)"),
        ("RSS after step 1", f"{summary['rss_first_mib']:.1f} MiB"),
        (f"RSS after step {summary['baseline_step']}", f"{summary['rss_baseline_mib']:.1f} MiB"),
        (f"RSS after step {summary['steps']}", f"{summary['rss_last_mib']:.1f} MiB"),
        ("largest RSS", f"{summary['rss_max_mib']:.1f} MiB"),
        (f"growth after step {summary['baseline_step']}",
         f"{summary['growth_percent']:+.2f}% (goal <= {GOAL_PERCENT:.0f}%: {'met' if summary['within_goal'] else 'NOT met'})"),
        (f"RSS floor ({summary['window']} steps) at step {summary['baseline_step']} -> {summary['steps']}",
         f"{summary['floor_baseline_mib']:.1f} -> {summary['floor_last_mib']:.1f} MiB ({summary['floor_growth_percent']:+.2f}%)"),
        (f"RSS trend after step {summary['baseline_step']}", f"{summary['trend_kib_per_step']:+.1f} KiB/step"),
    ]
    if "heap_last_mib" in summary:
        rows.append(("Python heap (tracemalloc)", f"{summary['heap_baseline_mib']:.2f} -> {summary['heap_last_mib']:.2f} MiB "
                     f"({summary['heap_trend_kib_per_step']:+.2f} KiB/step)"))
    rows.append(("length records kept", str(extra["length_records"])))
    rows = list(dict(rows).items())  # a baseline at the last step is one row
    return "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="GRPO steps to run (default 200)")
    parser.add_argument("--baseline-step", type=int, default=20, help="growth is measured from this step (default 20)")
    parser.add_argument("--model", help="a model path or lapo alias instead of the tiny random Qwen2 built on the spot")
    parser.add_argument("--tracemalloc", action="store_true", help="also record the Python heap (slow)")
    parser.add_argument("--out", type=Path, help="write the summary and every step's figures as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    records, extra = run_soak(args.steps, args.tracemalloc, args.model)
    summary = summarize(records, args.baseline_step)
    print(markdown(summary, extra))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        machine = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
        payload = {"command": sys.argv, "machine": machine, "summary": summary, **extra, "records": records}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
