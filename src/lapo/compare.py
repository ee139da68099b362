"""`lapo compare`: length-control methods trained from one base model under one harness, evaluated alike.

    lapo compare                                  # the default set on the embedded counting task
    lapo compare --methods plain,lapo-d,lapo-i    # a chosen set
    lapo compare --config RECIPE --steps 200      # any recipe
    lapo compare --smoke                          # a tiny model built on the spot, a few steps (the tests)
    lapo compare --sweep 20,40,80                 # also: produced against requested length of L1 and LAPO-I

Every method starts from the recipe's base model with the same optimizer steps, seed, batch and generation
settings; only its reward, its prompts (L1's budget sentence) and its schedule (ThinkPrune's caps) differ
(docs/METHODS.md). LAPO-D is stage 1 of one LAPO run and LAPO-I its stage 2 (the same steps again, from
LAPO-D). All models, the base included, are evaluated by `lapo eval`'s machinery on the same test problems
with the same samples per problem and seeds; L1 models with their budget sentence at a fixed N (``--budget``,
default the middle of their training range), every other model with the plain prompt. The report
(``<out>/compare.md``) holds a table shaped like the paper's Table 1 (Pass@1 per level, mean tokens, change
against the base), the efficiency frontier (``frontier.png``) and tokens per level beside the minimal length
(``levels.png``), with ``--sweep`` the budget models' produced against requested length (``sweep.png``);
``<out>/compare.json`` holds every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from lapo.errors import ArgumentParser, LapoError, command

DEFAULT_METHODS = ("plain", "l1-exact", "l1-max", "thinkprune", "kimi", "shorterbetter", "lapo-d", "lapo-i")
DEFAULT_STEPS = 12  # per method (and per LAPO stage): what the 2-core machine trains 8 methods in, in 15 minutes
DEFAULT_EVAL_PROBLEMS = 60
LABELS = {"plain": "plain GRPO", "l1-exact": "L1-Exact", "l1-max": "L1-Max", "thinkprune": "ThinkPrune",
          "kimi": "Kimi k1.5", "shorterbetter": "ShorterBetter", "arora-zanette": "Arora-Zanette",
          "dapo-overlong": "DAPO overlong", "lapo-d": "LAPO-D", "lapo-i": "LAPO-I"}
# --smoke: the quickstart's tiny settings; ThinkPrune's caps brought under its 24 generated tokens.
SMOKE_OVERRIDES = ["num_generations=4", "per_device_train_batch_size=8", "max_problems=16", "save_steps=1000",
                   "max_completion_length=24"]
SMOKE_CAPS = "method_args.caps=[24,16,12]"


@dataclass
class CompareSettings:
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    config: str = "counting"
    out: Path = Path("runs/compare")
    steps: int | None = None
    k: int = 2
    eval_problems: int | None = None
    seed: int = 0
    budget: int | None = None  # N of L1 models' prompts at evaluation (None: the middle of their budget range)
    smoke: bool = False
    threads: int = 1  # torch threads while training: the embedded model (1.4M parameters) is faster on one
    sweep: list[int] = field(default_factory=list)  # budgets N at which the budget-trained models are swept
    overrides: list[str] = field(default_factory=list)

    @property
    def train_steps(self) -> int:
        return self.steps or (2 if self.smoke else DEFAULT_STEPS)


def check_settings(s: CompareSettings) -> None:
    """What the flags alone can get wrong (before anything is built, trained or evaluated)."""
    from lapo.methods import registry

    if not s.methods:
        raise LapoError("--methods is empty; name at least one method, e.g. --methods plain,lapo-i.")
    for name in s.methods:
        registry.get(name)
    if len(set(s.methods)) != len(s.methods):
        raise LapoError(f"--methods {','.join(s.methods)} names a method twice; name each once.")
    for flag, value in (("--steps", s.steps), ("--k", s.k), ("--threads", s.threads), ("--eval-problems", s.eval_problems),
                        ("--budget", s.budget)):
        if value is not None and value < 1:
            raise LapoError(f"{flag} {value} must be at least 1.")
    if s.out.exists() and not s.out.is_dir():
        raise LapoError(f"--out {s.out} is a file; pass a folder for the runs, the evaluations and the report.")


def training_runs(s: CompareSettings) -> dict[str, str]:
    """{run name: training method}: LAPO-D and LAPO-I come from one LAPO run (stage 1, then stage 2)."""
    runs = {m: m for m in s.methods if m not in ("lapo-d", "lapo-i")}
    if "lapo-i" in s.methods:
        runs["lapo"] = "lapo"
    elif "lapo-d" in s.methods:
        runs["lapo-d"] = "lapo-d"
    return runs


def model_dirs(s: CompareSettings, runs: dict) -> dict[str, Path]:
    """Each compared method's final model in its run directory."""
    out = {}
    for m in s.methods:
        if m in ("lapo-d", "lapo-i"):
            run = "lapo" if "lapo" in runs else "lapo-d"
            out[m] = s.out / "runs" / run / ("discovery" if m == "lapo-d" else "internalization") / "final"
        else:
            out[m] = s.out / "runs" / m / "discovery" / "final"
    return out


def run_configs(s: CompareSettings, base: str) -> dict:
    """Every training run parsed first (nothing loads): a bad method, knob or override fails before any training."""
    from lapo.train.config import load_run_config

    configs = {}
    for run, method in training_runs(s).items():
        overrides = [f"output_dir={s.out / 'runs' / run}", f"model_name_or_path={base}", f"seed={s.seed}",
                     f"method={method}", f"max_steps={s.train_steps}"]
        if s.smoke:
            overrides += SMOKE_OVERRIDES + ([SMOKE_CAPS] if method == "thinkprune" else [])
        configs[run] = load_run_config(s.config, [*overrides, *s.overrides])
    return configs


def recipe_model(s: CompareSettings) -> str:
    """The base model every method starts from: the recipe's (after the overrides)."""
    from lapo.train.config import load_run_config

    return load_run_config(s.config, s.overrides).stages["discovery"].model.model_name_or_path


def eval_budget(s: CompareSettings, spec) -> int | None:
    """The N an L1 model is evaluated with: --budget, else the middle of the range it trained with."""
    if not spec.method.needs_budget:
        return None
    return s.budget or (spec.knobs["budget_low"] + spec.knobs["budget_high"]) // 2


def eval_settings(s: CompareSettings, label: str, model: str, how, dataset: str, budget_sentence=None,
                  budget=None):
    """`lapo eval`'s settings for one model on the recipe's test split (same problems, k, seeds and sampling)."""
    from lapo.eval.settings import EvalSettings

    fmt = how.prompt_format
    if budget_sentence:
        data = json.loads(Path(fmt).read_text())
        fmt = str(s.out / f"prompt_format-{label}.json")
        Path(fmt).write_text(json.dumps({**data, "budget_template": budget_sentence}, indent=1))
    problems = 10 if s.smoke else (s.eval_problems or DEFAULT_EVAL_PROBLEMS)
    return EvalSettings(
        model=model, dataset=dataset, k=s.k, limit=problems, max_new_tokens=how.max_new_tokens,
        out=str(s.out / "eval" / label), label=label, seed=s.seed, prompt_format=fmt,
        answer_fallback=how.answer_fallback, budget=f"fixed:{budget}" if budget else "none", progress=False,
    )


def evaluate_method(s: CompareSettings, *args) -> dict:
    """`lapo eval` of one model (:func:`eval_settings`)."""
    from lapo.eval.evaluate import evaluate

    return evaluate(eval_settings(s, *args))


def sweep_methods(s: CompareSettings, specs: dict, dirs: dict, how, dataset: str) -> dict[str, list[dict]]:
    """``--sweep N1,N2``: each budget-trained model (L1, LAPO-I) evaluated at every N with its own sentence;
    {method: points of produced against requested length}, plotted together in ``sweep.png``."""
    from lapo.eval.evaluate import run_sweep, sweep_points
    from lapo.eval.plots import plot_sweep

    out = {}
    for m in s.methods:
        sentence = specs[m].budget_template
        if not sentence:
            continue
        _say(f"sweeping {LABELS[m]} over N = {', '.join(map(str, s.sweep))}")
        settings = eval_settings(s, f"{LABELS[m]}-sweep", str(dirs[m]), how, dataset, sentence)
        summaries, _ = run_sweep(settings, list(s.sweep))
        out[m] = sweep_points(summaries)
    if out:
        plot_sweep({LABELS[m]: points for m, points in out.items()}, s.out / "sweep.png")
    return out


def run_compare(s: CompareSettings) -> dict:
    """Train every method, evaluate every model and the base, write the report; returns compare.json's data."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(s.threads)  # 2 threads made a training step of the embedded model ~10x slower on 2 busy cores
    try:
        return _run_compare(s)
    finally:
        torch.set_num_threads(before)


def _run_compare(s: CompareSettings) -> dict:
    from lapo.quickstart import build_smoke_model, grading
    from lapo.train.run import run

    start = time.monotonic()
    check_settings(s)
    base = str(s.out / "smoke-base") if s.smoke else recipe_model(s)
    configs = run_configs(s, base)  # every run parsed before anything is built, trained or evaluated
    s.out.mkdir(parents=True, exist_ok=True)
    if s.smoke:
        build_smoke_model(Path(base))
    first = next(iter(configs.values()))
    how = grading(first, s.out)
    dataset = first.stages["discovery"].lapo.dataset
    timings, summaries = {}, {}
    _say(f"evaluating the base model {base}")
    summaries["base"] = _timed(timings, "eval base", evaluate_method, s, "base", base, how, dataset)
    for name, config in configs.items():
        _say(f"training {name} ({s.train_steps} steps{' per stage' if name == 'lapo' else ''})")
        _timed(timings, f"train {name}", run, config)
    dirs = model_dirs(s, configs)
    specs = {m: _spec(configs, m) for m in s.methods}
    for m in s.methods:
        budget = eval_budget(s, specs[m]) if m != "lapo-i" else None
        sentence = specs[m].budget_template if budget else None
        _say(f"evaluating {LABELS[m]}" + (f" with the budget sentence at N={budget}" if budget else ""))
        summaries[m] = _timed(timings, f"eval {m}", evaluate_method, s, LABELS[m], str(dirs[m]), how, dataset,
                              sentence, budget)
    sweep = _timed(timings, "sweep", sweep_methods, s, specs, dirs, how, dataset) if s.sweep else {}
    data = compare_data(s, summaries, specs, timings, time.monotonic() - start)
    data["training"] = {m: training_curve(path.parent) for m, path in dirs.items()}
    data["sweep"] = sweep
    write_report(s, data, summaries)
    return data


def _spec(configs: dict, method: str):
    from lapo.methods.registry import MethodSpec

    run = "lapo" if method in ("lapo-d", "lapo-i") and "lapo" in configs else method
    spec = configs[run].method
    if spec.name == "lapo":  # both stages: each compared model keeps its own stage's constants
        return MethodSpec(method, spec.knobs[method])
    return spec


def _timed(timings: dict, what: str, fn, *args):
    t0 = time.monotonic()
    try:
        return fn(*args)
    finally:
        timings[what] = round(time.monotonic() - t0, 1)


def training_curve(stage_dir: Path) -> dict:
    """The training log's accuracy and mean length at the stage's first and last step (how it started and ended)."""
    from lapo.core.io import read_jsonl_lenient
    from lapo.train.rundir import LOG_FILE

    path = stage_dir / LOG_FILE
    steps = [e for e in read_jsonl_lenient(path) if "lapo/accuracy" in e] if path.is_file() else []
    if not steps:
        return {}
    pick = {"accuracy": "lapo/accuracy", "mean_length": "lapo/mean_length"}
    return {f"{when}_{k}": steps[i].get(v) for when, i in (("first", 0), ("last", -1)) for k, v in pick.items()}


def brief(summary: dict) -> dict:
    keys = ("pass_at_1", "mean_tokens", "minimal_tokens", "truncation_rate", "budget_adherence")
    out = {k: summary.get(k) for k in keys}
    out["by_level"] = {lv: {k: v.get(k) for k in ("pass_at_1", "mean_tokens", "minimal_tokens")}
                       for lv, v in (summary.get("by_level") or {}).items()}
    return out


def compare_data(s: CompareSettings, summaries: dict, specs: dict, timings: dict, wall: float) -> dict:
    steps = {m: (2 * s.train_steps if m == "lapo-i" else s.train_steps) for m in s.methods}
    return {
        "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(s).items()},
                     "train_steps": s.train_steps},
        "methods": {m: {"label": LABELS[m], "constants": specs[m].knobs, "steps": steps[m],
                        "eval_budget": (eval_budget(s, specs[m]) if m != "lapo-i" else None)} for m in s.methods},
        "summaries": {k: brief(v) for k, v in summaries.items()},
        "timings_s": timings,
        "wall_s": round(wall, 1),
    }


# ============================================================================================ report


def table1(data: dict) -> str:
    """Pass@1 per level, mean Pass@1 and tokens, and their change against the base: the paper's Table 1 shape
    (levels of the task standing where the paper has benchmarks)."""
    rows = data["summaries"]
    base = rows["base"]
    levels = sorted(base["by_level"], key=float) if base["by_level"] else []
    head = ["model", "steps", *[f"L{lv}" for lv in levels], "Pass@1", "#tok", "Δ Pass@1", "Δ #tok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, r in rows.items():
        steps = "0" if key == "base" else str(data["methods"][key]["steps"])
        label = "base" if key == "base" else data["methods"][key]["label"]
        cells = [_pct(r["by_level"].get(lv, {}).get("pass_at_1")) for lv in levels]
        d_acc = "" if key == "base" else f"{100 * (r['pass_at_1'] - base['pass_at_1']):+.1f}"
        d_tok = "" if key == "base" else f"{100 * (r['mean_tokens'] / base['mean_tokens'] - 1):+.1f}%"
        lines.append("| " + " | ".join([label, steps, *cells, _pct(r["pass_at_1"]), f"{r['mean_tokens']:.1f}",
                                         d_acc, d_tok]) + " |")
    return "\n".join(lines)


def tokens_table(data: dict) -> str:
    """Mean tokens per level per model, beside the task's minimal correct length (where the task knows it)."""
    rows = data["summaries"]
    levels = sorted(rows["base"]["by_level"], key=float) if rows["base"]["by_level"] else []
    head = ["model", *[f"L{lv}" for lv in levels], "all", "x minimal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    minimal = rows["base"].get("minimal_tokens")
    if minimal:
        per = [rows["base"]["by_level"][lv].get("minimal_tokens") for lv in levels]
        lines.append("| " + " | ".join(["minimal", *[_num(v) for v in per], _num(minimal), "1.00"]) + " |")
    for key, r in rows.items():
        label = "base" if key == "base" else data["methods"][key]["label"]
        ratio = f"{r['mean_tokens'] / minimal:.2f}" if minimal else ""
        cells = [_num(r["by_level"].get(lv, {}).get("mean_tokens")) for lv in levels]
        lines.append("| " + " | ".join([label, *cells, _num(r["mean_tokens"]), ratio]) + " |")
    return "\n".join(lines)


def sweep_table(data: dict) -> str:
    """Per budget-trained model and requested N: produced tokens, L1's signed error, off-budget share, Pass@1."""
    lines = ["| model | N | produced | (L-N)/N | \\|L-N\\|/N | off by >10% | Pass@1 |", "|---|---|---|---|---|---|---|"]
    for m, points in data["sweep"].items():
        for p in points:
            lines.append(f"| {LABELS[m]} | {p['requested']:.0f} | {p['produced']:.1f} | {p['signed_rel_error']:+.3f} | "
                         f"{p['mean_rel_error']:.3f} | {_pct(p['off_budget'])} | {_pct(p['pass_at_1'])} |")
    return "\n".join(lines)


def _pct(value) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _num(value) -> str:
    return "" if value is None else f"{value:.1f}"


def write_report(s: CompareSettings, data: dict, summaries: dict) -> Path:
    from lapo.core.io import atomic_write_text, write_json
    from lapo.eval.plots import plot_frontier, plot_levels

    evals = [{**v, "label": "base" if k == "base" else LABELS[k]} for k, v in summaries.items()]
    plots = [p for p in (plot_frontier(evals, s.out / "frontier.png"), plot_levels(evals, s.out / "levels.png")) if p]
    budgets = [f"{data['methods'][m]['label']} N={data['methods'][m]['eval_budget']}"
               for m in s.methods if data["methods"][m]["eval_budget"]]
    text = [
        "# lapo compare", "",
        f"Recipe `{s.config}`, {s.train_steps} optimizer steps per method (LAPO-I: LAPO-D's run, then as many "
        f"stage-2 steps), seed {s.seed}; evaluated on the same test problems, k = {s.k} samples each, "
        "temperature 0.6, top_p 0.95" + (f"; budget sentence at evaluation: {', '.join(budgets)}" if budgets else "")
        + ".", "",
        "## Pass@1 (%) per level and overall, mean tokens, change against the base", "", table1(data), "",
        "## Mean tokens per level beside the minimal correct length", "", tokens_table(data), "",
        "## Constants", "",
        *[f"- {data['methods'][m]['label']}: {json.dumps(data['methods'][m]['constants'])}" for m in s.methods], "",
        *[f"![{p.stem}]({p.name})" for p in plots], "",
        *(["## Budget adherence (--sweep)", "", sweep_table(data), "", "![sweep](sweep.png)", ""] if data.get("sweep")
          else []),
        f"Wall time: {data['wall_s'] / 60:.1f} min.", "",
    ]
    write_json(s.out / "compare.json", data)
    path = s.out / "compare.md"
    atomic_write_text(path, "\n".join(text))
    return path


def _say(text: str) -> None:
    print(text, flush=True)


def parse_args(argv: list[str]) -> CompareSettings:
    p = ArgumentParser(prog="lapo compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated methods (default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--config", default="counting", help="the recipe every method trains with (default: counting)")
    p.add_argument("--out", type=Path, default=Path("runs/compare"), help="output folder")
    p.add_argument("--steps", type=int, help=f"optimizer steps per method (default {DEFAULT_STEPS}; --smoke: 2)")
    p.add_argument("--k", type=int, default=2, help="samples per test problem")
    p.add_argument("--eval-problems", type=int, help=f"test problems (default {DEFAULT_EVAL_PROBLEMS}; --smoke: 10)")
    p.add_argument("--budget", type=int, help="N of L1 models' budget sentence at evaluation (default: the middle "
                                              "of their training range)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads while training (default 1: the embedded "
                                                         "model trains faster on one thread than on two)")
    p.add_argument("--smoke", action="store_true", help="tiny model built on the spot, 2 steps per method")
    p.add_argument("--sweep", default="", help="comma-separated budgets N: also evaluate the budget-trained models "
                                              "(L1, LAPO-I) at each N and plot produced against requested length")
    p.add_argument("overrides", nargs="*", help="recipe overrides for every run, e.g. learning_rate=5e-5")
    a = p.parse_args(argv)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    sweep = [v.strip() for v in a.sweep.split(",") if v.strip()]
    if not all(v.isdigit() and int(v) > 0 for v in sweep):
        raise LapoError(f"--sweep {a.sweep!r} must be positive whole numbers separated by commas, e.g. 20,40,80.")
    return CompareSettings(methods, a.config, a.out, a.steps, a.k, a.eval_problems, a.seed, a.budget, a.smoke,
                           a.threads, [int(v) for v in sweep], list(a.overrides))


@command("compare")
def main(argv: list[str]) -> int:
    data = run_compare(parse_args(argv))
    _say(f"report: {Path(data['settings']['out']) / 'compare.md'}")
    return 0
