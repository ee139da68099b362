"""Reward throughput: LAPO's discovery and internalization rewards against a plain math-verify loop.

Builds completions with MATH-500-style answers (from ``--data``, default ``../shared/data/math500.jsonl``
beside the checkout; a small built-in answer list when that file is absent), in groups of ``--group`` per
problem, with a realistic mix: correct answers in the gold's own spelling and in other spellings, wrong
answers, answers left unboxed, completions cut off before their box, and reasoning text of a few hundred to
a dozen thousand characters before the box.

Three ways of scoring the same rows are timed, paired in one process and repeated ``--rounds`` times (the
order alternates between rounds):

- ``plain``: one process, per completion ``verify(parse(gold), parse(completion))`` with math-verify's
  default settings (what a reward function written from math-verify's README does);
- ``discovery`` / ``internalization``: ``lapo.score.score_rows`` (answer check, grouping, LAPO-D band
  reward or LAPO-I Gaussian reward) with an ``AnswerChecker`` of ``--workers`` worker processes, called on
  batches of ``--batch`` completions;
- ``trl_discovery`` / ``trl_internalization``: the TRL reward callables ``lapo.train.rewards.DiscoveryReward`` /
  ``InternalizationReward`` (what ``lapo train`` hands to ``GRPOTrainer``), called as TRL 1.16 calls them on
  batches of ``--batch`` completions in one process (when ``lapo.train.rewards`` is importable).

Prints a markdown table (median completions per second, ratio to the plain loop) and writes JSON to
``--out``. Each run also reports how the verdicts compare with the labels the rows were built with, so a
speed-up that loosens the check would show.

    python benchmarks/reward_throughput.py --out benchmarks/results/reward_throughput.json
    python benchmarks/reward_throughput.py --tiny          # a few seconds: the test of this script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "math500.jsonl"

# Used when no data file is at hand (the tiny mode must run anywhere): answers in MATH-500's styles.
BUILTIN_ANSWERS = [
    "46", "63", ".35625", "6", "0", "720", "(6,31,-1)", "\\frac{1}{8}", "\\frac{\\sqrt{21}}{5}", "\\frac{16}{5}",
    "17", "\\sqrt{51}", "p - q", "(-\\sqrt{3}, \\sqrt{3})", "288 \\pi", "\\dfrac{17}{50}", "6 - 5i", "\\frac{3}{56}",
    "\\left( 3, \\frac{\\pi}{2} \\right)", "2,125", "-2", "\\text{(C)}", "x^2 + 7x + 10", "[-2, 7]", "90^\\circ",
    "3\\sqrt{2}", "\\$32,348", "10\\%", "\\frac{9}{4}", "1, 2, 3",
]
FILLER = [
    "Let me think about this step by step.",
    "Wait, let me double-check that computation.",
    "Hmm, that does not look right; I will redo the last step.",
    "So far the algebra is consistent.",
    "Substituting back, both sides agree.",
    "Alternatively, we can verify this with a quick estimate.",
    "Let $x$ be the unknown and write the equation $2x + 3 = 11$, so $x = 4$.",
    "Then $\\frac{a}{b} = \\frac{3}{4}$ and $a + b = 7$.",
]
CATEGORIES = (  # (name, share of the completions)
    ("correct_exact", 0.30),
    ("correct_respelled", 0.25),
    ("wrong", 0.30),
    ("unboxed", 0.10),
    ("truncated", 0.05),
)


# --------------------------------------------------------------------------------------------------
# Building the rows


def load_problems(path: Path | None) -> tuple[list[dict], str]:
    """(problems with id, answer and reasoning material, description of the source)."""
    if path is not None and path.is_file():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        problems = [
            {"id": str(r.get("id", i)), "answer": str(r["answer"]), "solution": str(r.get("solution") or r.get("problem", ""))}
            for i, r in enumerate(rows)
            if str(r.get("answer", "")).strip()
        ]
        return problems, str(path)
    problems = [{"id": f"builtin-{i}", "answer": a, "solution": " ".join(FILLER)} for i, a in enumerate(BUILTIN_ANSWERS)]
    return problems, f"built-in list of {len(problems)} answers ({path} absent)"


def respell(gold: str, rng: random.Random) -> str:
    """An equivalent spelling of a gold answer (a model's other way of writing the same value)."""
    g = gold.strip()
    if re.fullmatch(r"-?\d+", g):
        return rng.choice([f"x = {g}", f"{g}.0", f"$ {g} $", f"\\text{{{g}}}", f"0{g}" if not g.startswith("-") else f"{g}.00"])
    if re.fullmatch(r"\d{1,3}(,\d{3})+", g):
        return g.replace(",", "")
    if m := re.fullmatch(r"(-?)\\d?frac\{(\d+)\}\{(\d+)\}", g):
        sign, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        value = Fraction(a, b)
        choices = [f"{sign}{a}/{b}", f"{sign}\\frac{{{2 * a}}}{{{2 * b}}}", f"{sign}\\dfrac{{{a}}}{{{b}}}"]
        if 10**6 % value.denominator == 0:
            choices.append(f"{sign}{float(value)!r}")
        return rng.choice(choices)
    if m := re.fullmatch(r"\\frac\{\\sqrt\{(\d+)\}\}\{(\d+)\}", g):
        return f"\\frac{{1}}{{{m.group(2)}}}\\sqrt{{{m.group(1)}}}"  # needs math-verify
    if g.startswith("(") and g.endswith(")") and "\\left" not in g:
        return "\\left" + g[:-1].replace(",", ", ") + " \\right)"
    if "\\dfrac" in g:
        return g.replace("\\dfrac", "\\frac")
    if "\\frac" in g:
        return g.replace("\\frac", "\\dfrac")
    if " " in g:
        return g.replace(" ", "")
    return f" {g} "


def wrong_answer(gold: str, other: str, rng: random.Random) -> str:
    """An answer that is not equal to the gold one."""
    g = gold.strip().replace(",", "")
    if re.fullmatch(r"-?\d+", g):
        return str(int(g) + rng.choice([1, 2, -1, 10]))
    if m := re.fullmatch(r"(-?)\\d?frac\{(\d+)\}\{(\d+)\}", gold.strip()):
        return f"{m.group(1)}\\frac{{{int(m.group(2)) + 1}}}{{{m.group(3)}}}"
    return rng.choice([f"{gold} + 1", f"2\\left({gold}\\right)"]) if other.strip() == gold.strip() else other


def reasoning(problem: dict, rng: random.Random, chars: int) -> str:
    """Reasoning text of about ``chars`` characters: the solution without its boxes, with re-checks."""
    source = problem["solution"].replace("\\boxed", "").replace("\\fbox", "")
    parts: list[str] = []
    while sum(len(p) for p in parts) < chars:
        parts.append(source if rng.random() < 0.5 else rng.choice(FILLER))
    return "\n\n".join(parts)[:chars]


def build_rows(problems: list[dict], n: int, group: int, seed: int, max_reasoning: int) -> list[dict]:
    """``n`` completions in groups of ``group`` per problem, each with its category label."""
    rng = random.Random(seed)
    names, weights = zip(*CATEGORIES)
    rows: list[dict] = []
    for g in range((n + group - 1) // group):
        problem = problems[g % len(problems)]
        pid = f"{problem['id']}#{g // len(problems)}"
        gold = problem["answer"]
        for _ in range(min(group, n - len(rows))):
            category = rng.choices(names, weights)[0]
            text = reasoning(problem, rng, int(rng.uniform(0.05, 1.0) * max_reasoning))
            if category == "correct_exact":
                completion = f"{text}\n</think>\nThe final answer is $\\boxed{{{gold}}}$."
            elif category == "correct_respelled":
                completion = f"{text}\n</think>\nThe final answer is $\\boxed{{{respell(gold, rng)}}}$."
            elif category == "wrong":
                other = problems[rng.randrange(len(problems))]["answer"]
                completion = f"{text}\n</think>\nThe final answer is $\\boxed{{{wrong_answer(gold, other, rng)}}}$."
            elif category == "unboxed":
                completion = f"{text}\n</think>\nThe final answer is ${gold}$."
            else:
                completion = text[: max(1, len(text) // 2)]
            rows.append({
                "problem_id": pid, "completion": completion, "answer": gold, "category": category,
                "num_tokens": max(1, len(completion) // 4),
            })
    return rows


def targets_for(rows: list[dict], seed: int) -> dict[str, int]:
    """A stage-1 target map covering half the problems (the others use their group's median)."""
    rng = random.Random(seed + 1)
    pids = sorted({r["problem_id"] for r in rows})
    return {pid: rng.randint(100, 3000) for pid in pids if rng.random() < 0.5}


# --------------------------------------------------------------------------------------------------
# The three ways of scoring


def run_plain(rows: list[dict]) -> list[bool]:
    """math-verify once per completion, default settings, in this process."""
    from math_verify import parse, verify

    verdicts = []
    for row in rows:
        gold = parse("$" + row["answer"] + "$")
        verdicts.append(bool(verify(gold, parse(row["completion"]))))
    return verdicts


def run_lapo(rows: list[dict], stage: str, checker, batch: int, targets: dict[str, int]) -> list[bool]:
    """``lapo.score.score_rows`` on batches of ``batch`` completions (whole groups per batch)."""
    from lapo.score import score_rows

    verdicts: list[bool] = []
    for start in range(0, len(rows), batch):
        scored = score_rows(rows[start : start + batch], stage, checker, targets=targets)
        verdicts.extend(r["correct"] for r in scored)
    return verdicts


def run_trl(rows: list[dict], stage: str, checker, batch: int, group: int, targets: dict[str, int]) -> list[bool]:
    """The TRL reward callables, called with the keywords GRPOTrainer passes (one process, no gather cost)."""
    from lapo.core.stats import LengthStats
    from lapo.train.rewards import DiscoveryReward, InternalizationReward

    stats = LengthStats()
    if stage == "discovery":
        reward = DiscoveryReward(group, stats, checker)
    else:
        reward = InternalizationReward(group, stats, checker, dict(targets))
    verdicts: list[bool] = []
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        columns = {}
        if stage == "internalization":
            columns = {"budget": [targets.get(r["problem_id"], 4096) for r in part],
                       "budget_fallback": [r["problem_id"] not in targets for r in part]}
        reward(
            prompts=["P"] * len(part), completions=[r["completion"] for r in part],
            completion_ids=[range(r["num_tokens"]) for r in part], problem_id=[r["problem_id"] for r in part],
            answer=[r["answer"] for r in part], trainer_state=None, log_metric=lambda name, value: None,
            log_extra=lambda name, values: verdicts.extend(values) if name == "correct" else None, **columns,
        )
    return verdicts


def agreement(rows: list[dict], verdicts: list[bool]) -> dict:
    """Verdicts per category: how many judged correct, and how many of them should not have been."""
    out: dict[str, dict] = {}
    for row, ok in zip(rows, verdicts):
        entry = out.setdefault(row["category"], {"rows": 0, "judged_correct": 0})
        entry["rows"] += 1
        entry["judged_correct"] += int(ok)
    wrong_judged_correct = sum(ok for row, ok in zip(rows, verdicts) if row["category"] in ("wrong", "truncated"))
    return {"by_category": out, "wrong_or_truncated_judged_correct": int(wrong_judged_correct)}


def measure(args: argparse.Namespace, rows: list[dict], targets: dict[str, int]) -> dict:
    from lapo.core.checker import AnswerChecker

    modes = ["plain", "discovery", "internalization"]
    if args.trl:
        import accelerate.utils  # noqa: F401 - imported before any clock starts
        from accelerate import PartialState

        PartialState()
        modes += ["trl_discovery", "trl_internalization"]
    times: dict[str, list[float]] = {m: [] for m in modes}
    verdicts: dict[str, list[bool]] = {}
    for round_index in range(args.rounds):
        order = modes if round_index % 2 == 0 else list(reversed(modes))
        for mode in order:
            if mode == "plain":
                start = time.perf_counter()
                result = run_plain(rows)
                times[mode].append(time.perf_counter() - start)
            else:
                # A fresh checker per run (cold gold caches), started before the clock like a trainer's.
                with AnswerChecker(timeout_s=args.timeout, workers=args.workers) as checker:
                    checker.check("\\boxed{\\sqrt{2}}", "\\sqrt{2}+0")
                    start = time.perf_counter()
                    if mode.startswith("trl_"):
                        result = run_trl(rows, mode[4:], checker, args.batch, args.group, targets)
                    else:
                        result = run_lapo(rows, mode, checker, args.batch, targets)
                    times[mode].append(time.perf_counter() - start)
            verdicts[mode] = result
            print(f"round {round_index + 1}/{args.rounds} {mode:>15}: {len(rows) / times[mode][-1]:9.1f} completions/s",
                  file=sys.stderr, flush=True)
    n = len(rows)
    results: dict[str, dict] = {}
    for mode in modes:
        rates = [n / t for t in times[mode]]
        results[mode] = {
            "seconds": times[mode], "completions_per_s": rates, "median_completions_per_s": statistics.median(rates),
            "agreement": agreement(rows, verdicts[mode]),
        }
    for mode in modes[1:]:
        paired = [p / m for p, m in zip(times["plain"], times[mode])]  # same round: time ratio = speed ratio
        results[mode]["ratio_to_plain_per_round"] = paired
        results[mode]["median_ratio_to_plain"] = statistics.median(paired)
    same = sum(a == b for a, b in zip(verdicts["plain"], verdicts["discovery"]))
    results["verdicts_equal_plain_vs_lapo"] = same / n
    return results


def markdown(results: dict, n: int) -> str:  # noqa: D103
    lines = [
        f"| scorer ({n} completions) | median completions/s | per round | median ratio to plain |",
        "|---|---:|---|---:|",
    ]
    for mode in [m for m in results if isinstance(results[m], dict) and "seconds" in results[m]]:
        r = results[mode]
        per_round = ", ".join(f"{x:.0f}" for x in r["completions_per_s"])
        ratio = f"{r['median_ratio_to_plain']:.2f}x" if "median_ratio_to_plain" in r else "1.00x"
        lines.append(f"| {mode} | {r['median_completions_per_s']:.1f} | {per_round} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MATH-500 JSONL (id, answer, solution)")
    p.add_argument("--n", type=int, default=10_000, help="completions (default 10,000)")
    p.add_argument("--group", type=int, default=8, help="completions per problem")
    p.add_argument("--batch", type=int, default=1024, help="completions per reward call (whole groups)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="math-verify worker processes of the AnswerChecker")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds per answer check")
    p.add_argument("--max-reasoning", type=int, default=12_000, help="longest reasoning text in characters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-trl", dest="trl", action="store_false", help="leave out the TRL reward callables")
    p.add_argument("--tiny", action="store_true", help="64 completions, 1 round: checks that the script runs")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.trl:
        try:
            import lapo.train.rewards  # noqa: F401
        except ImportError:
            print("lapo.train.rewards is not importable: the TRL reward callables are left out.", file=sys.stderr)
            args.trl = False
    if args.tiny:
        args.n, args.rounds, args.max_reasoning = 64, 1, 2_000
    if args.batch % args.group:
        p.error(f"--batch {args.batch} must be a multiple of --group {args.group} so no group is split.")

    problems, source = load_problems(args.data)
    rows = build_rows(problems, args.n, args.group, args.seed, args.max_reasoning)
    targets = targets_for(rows, args.seed)
    results = measure(args, rows, targets)
    table = markdown(results, len(rows))
    print(table)
    print(f"\nverdicts equal (plain loop vs LAPO checker): {results['verdicts_equal_plain_vs_lapo']:.1%}; "
          f"wrong/truncated judged correct: plain {results['plain']['agreement']['wrong_or_truncated_judged_correct']}, "
          f"LAPO {results['discovery']['agreement']['wrong_or_truncated_judged_correct']}")
    if args.out:
        from importlib.metadata import version

        import math_verify  # noqa: F401 - for its version

        payload = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "data": source,
            "completions": len(rows),
            "categories": {name: sum(r["category"] == name for r in rows) for name, _ in CATEGORIES},
            "mean_completion_chars": statistics.mean(len(r["completion"]) for r in rows),
            "machine": {
                "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                "math_verify": version("math-verify"), "loadavg_after": os.getloadavg(),
            },
            "results": results,
            "table": table,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
