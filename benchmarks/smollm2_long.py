"""LAPO (both stages) against plain GRPO on SmolLM2-135M-Instruct, same steps and settings, on the sums task.

    python benchmarks/smollm2_long.py --steps 100 --out benchmarks/results/smollm2_long.json   # hours on 2 cores
    python benchmarks/smollm2_long.py --tiny --out /tmp/long.json                              # the test's mode

Hours of CPU: the run can be stopped and continued. ``--resume`` continues each training run from its newest
checkpoint (``--save-steps``, default every 10 steps; ``lapo train --resume`` semantics: a finished stage is
skipped) and each evaluation from the samples already on disk (``lapo eval`` resumes by itself).

What it runs, one after the other, all from the shipped ``smollm2-135m`` recipe (``lapo.train.run``, exactly as
``lapo train`` runs it) and evaluated with the quickstart's evaluation (held-out test split, ``--k`` samples per
problem, temperature 0.6, top_p 0.95, the recipe's prompt format, answer fallback and completion limit):

1. the base model;
2. LAPO: stage 1 (Discovery, LAPO-D reward) for ``--steps`` steps, the hand-off, stage 2 (Internalization,
   LAPO-I reward) for ``--steps`` more; LAPO-D (stage 1's final model) and LAPO-I are evaluated;
3. plain GRPO: lapo's ``plain`` method (reward = correctness, no length signal; docs/METHODS.md) with the same
   recipe and settings, for ``2 x --steps`` steps, so it trains as many steps on the same problems as LAPO's two
   stages together; evaluated at the end (``GRPO``).

Both runs read the first ``2 x --steps`` training problems (``max_problems``; each stage-1 step reads 2 problems,
so stage 1 sees each once and every stage-2 problem has a target of its own), capped at the 252 the task has.
Prints a table per model and per difficulty level (Pass@1, mean tokens) and writes them, the wall time of each
phase and the machine's load average to ``--out``. ``--tiny``: a tiny random model built on the spot (plain
prompts: its character-level tokenizer has no chat template), 2 steps per stage, 10 test problems x 2 samples.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

SUMS_TRAIN_PROBLEMS = 252  # lapo.tasks.sums: 252 train, 148 test problems
LABELS = ("base", "LAPO-D", "LAPO-I", "GRPO")
TINY_OVERRIDES = ["prompt_kind=plain", "plain_template={problem}"]


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def settings(args):
    """The quickstart's settings (its evaluation and run folders) for this benchmark."""
    from lapo.quickstart import QuickstartSettings

    problems = min(2 * args.steps, SUMS_TRAIN_PROBLEMS)
    common = [f"max_problems={problems}", f"save_steps={args.save_steps}", "save_total_limit=1", "report_to=none"]
    common += TINY_OVERRIDES if args.tiny else []
    return QuickstartSettings(out=args.work, model="smollm2-135m-instruct", smoke=args.tiny, k=args.k,
                              eval_problems=args.eval_problems, seed=args.seed, overrides=common)


def lapo_config(s, base: str, steps: int, resume: bool = False):
    """Both stages of the recipe, ``steps`` steps each, in the quickstart's run folder."""
    import dataclasses

    from lapo.quickstart import run_config

    cfg = run_config(dataclasses.replace(s, overrides=[*s.overrides, f"max_steps={steps}"]), base)
    return dataclasses.replace(cfg, resume=resume)


def grpo_config(s, base: str, steps: int, resume: bool = False):
    """Plain GRPO (the ``plain`` method: see the module's docstring), twice as many steps, its own run folder."""
    from lapo.quickstart import SMOKE_OVERRIDES
    from lapo.train.config import load_run_config

    overrides = [f"output_dir={s.out / 'grpo-run'}", f"model_name_or_path={base}", f"seed={s.seed}"]
    overrides += (SMOKE_OVERRIDES if s.smoke else []) + s.overrides
    overrides += [f"max_steps={2 * steps}", "method=plain"]
    return load_run_config(s.preset["recipe"], overrides, stage="discovery", resume=resume)


def brief(summary: dict) -> dict:
    by_level = {level: {"pass_at_1": row.get("pass_at_1"), "mean_tokens": row.get("mean_tokens")}
                for level, row in (summary.get("by_level") or {}).items()}
    return {"pass_at_1": summary.get("pass_at_1"), "mean_tokens": summary.get("mean_tokens"),
            "truncation_rate": summary.get("truncation_rate"), "minimal_tokens": summary.get("minimal_tokens"),
            "by_level": by_level}


def markdown(models: dict[str, dict]) -> str:
    lines = ["| model | Pass@1 | mean tokens | tokens vs base |", "|---|---:|---:|---:|"]
    base_tokens = models.get("base", {}).get("mean_tokens")
    for label, m in models.items():
        ratio = f"{m['mean_tokens'] / base_tokens - 1:+.0%}" if base_tokens and label != "base" else "-"
        lines.append(f"| {label} | {m['pass_at_1']:.1%} | {m['mean_tokens']:.1f} | {ratio} |")
    levels = sorted({lv for m in models.values() for lv in m["by_level"]}, key=float)
    lines += ["", "| level | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for level in levels:
        cells = []
        for m in models.values():
            row = m["by_level"].get(level) or {}
            cells.append(f"{row['mean_tokens']:.1f} ({row['pass_at_1']:.1%})" if row else "-")
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lapo_i_vs_grpo(models: dict[str, dict]) -> dict:
    lapo, grpo = models["LAPO-I"], models["GRPO"]
    return {"pass_at_1_points": round((lapo["pass_at_1"] - grpo["pass_at_1"]) * 100, 2),
            "tokens_ratio": round(lapo["mean_tokens"] / grpo["mean_tokens"], 3) if grpo["mean_tokens"] else None}


def run(args) -> dict:
    from lapo.quickstart import build_smoke_model, evaluate_model, grading, starting_model
    from lapo.train.run import run as train

    s = settings(args)
    base = starting_model(s)
    lapo_cfg = lapo_config(s, base, args.steps, args.resume)  # both checked before anything trains
    grpo_cfg = grpo_config(s, base, args.steps, args.resume)
    s.out.mkdir(parents=True, exist_ok=True)
    if s.smoke:
        build_smoke_model(Path(base))
    how = grading(lapo_cfg, s.out)
    # Wall time per phase, summed over every invocation of a resumed benchmark (kept in the work folder).
    ledger = s.out / "seconds.json"
    seconds = json.loads(ledger.read_text()) if args.resume and ledger.is_file() else {}
    summaries = {}

    def timed(phase, fn, *a):
        start = time.perf_counter()
        print(f"[{phase}]", flush=True)
        try:
            return fn(*a)
        finally:
            seconds[phase] = round(seconds.get(phase, 0.0) + time.perf_counter() - start, 1)
            ledger.write_text(json.dumps(seconds, indent=1) + "\n")

    summaries["base"] = timed("eval base", evaluate_model, s, base, "base", how)
    timed("train LAPO (both stages)", train, lapo_cfg)
    for label, stage in (("LAPO-D", "discovery"), ("LAPO-I", "internalization")):
        summaries[label] = timed(f"eval {label}", evaluate_model, s, str(lapo_cfg.run_dir / stage / "final"), label, how)
    timed("train GRPO", train, grpo_cfg)
    summaries["GRPO"] = timed("eval GRPO", evaluate_model, s, str(grpo_cfg.run_dir / "discovery" / "final"), "GRPO", how)
    models = {label: brief(summaries[label]) for label in LABELS}
    return {"models": models, "lapo_i_vs_grpo": lapo_i_vs_grpo(models), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model built on the spot; a minute or two")
    parser.add_argument("--steps", type=int, help="steps per LAPO stage (plain GRPO: twice); default 100, tiny 2")
    parser.add_argument("--k", type=int, default=4, help="samples per test problem (default 4; tiny 2)")
    parser.add_argument("--eval-problems", type=int, default=148, help="test problems (default all 148; tiny 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-steps", type=int, default=10, help="checkpoint every N steps (default 10)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the runs and evaluations found in --work instead of refusing them")
    parser.add_argument("--work", type=Path, default=Path("runs/smollm2-long"), help="runs and evaluations")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    args.steps = args.steps or (2 if args.tiny else 100)
    if args.steps < 1:
        parser.error(f"--steps {args.steps} must be at least 1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_before, started = _load_average(), time.perf_counter()
    result = run(args)
    print(markdown(result["models"]))
    print("LAPO-I vs GRPO:", json.dumps(result["lapo_i_vs_grpo"]))
    if args.out:
        import torch

        args.out.parent.mkdir(parents=True, exist_ok=True)
        machine = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                   "torch": torch.__version__, "load_average_before": load_before, "load_average_after": _load_average()}
        payload = {"command": sys.argv, "machine": machine, "steps_per_stage": args.steps, "k": args.k,
                   "resumed": args.resume,
                   "eval_problems": args.eval_problems, "tiny": args.tiny,
                   "seconds_total": round(time.perf_counter() - started, 1), **result}
        args.out.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
