"""`lapo warmstart`: train the embedded default's overthinking base model with TRL's SFTTrainer, on CPU.

    lapo warmstart --out runs/counting-base --measure 4          # the shipped recipe (docs/EMBEDDED.md)
    lapo warmstart --out runs/counting-base --measure 4 --measure-only   # only the tables, of a saved model
    lapo warmstart --out /tmp/tiny --max-steps 2 --budget-steps 1 --hidden-size 16 --layers 2   # smoke

A tiny Qwen2 with a character-level tokenizer (lapo.models) learns, from scratch, the counting task's
traces *with* redundant re-checks (lapo.tasks.counting.overthinking_completion): the result answers
correctly most of the time and writes about twice the minimal number of tokens, as real reasoning models
overthink. That is the model LAPO then makes shorter (`lapo quickstart`).

Two phases, both SFT on the same kind of traces:

1. **plain** (``--max-steps`` at ``--learning-rate``): plain prompts, from a fresh model. Skipped when
   ``--init`` names a checkpoint to continue from.
2. **budget tolerance** (``--budget-steps`` at ``--budget-learning-rate``): a ``--budget-share`` of the prompts
   carry stage 2's budget sentence with a random N. A model this small, trained on plain prompts only, copies
   the sentence's letters into its count (accuracy 89% -> 30% with the sentence); trained with them from
   scratch it learned badly (19%). Taught after the plain phase, it keeps its accuracy with the sentence,
   so stage 2 starts from a model that can read its prompts (docs/EMBEDDED.md).

After training, ``--measure K`` runs `lapo eval`'s own evaluation on the model (K samples per test problem,
temperature 0.6, top_p 0.95, per-sample seeds; tokens up to and including EOS) and prints Pass@1, mean tokens,
minimal tokens and their ratio per level, on plain prompts and on prompts with a budget sentence
(:func:`measure`): the same figures `lapo eval` and `lapo quickstart` report.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lapo.errors import ArgumentParser, LapoError, command

logger = logging.getLogger(__name__)


@dataclass
class WarmstartConfig:
    """The recipe: model shape, data and schedule (defaults = the shipped base model's)."""

    out: str = "runs/counting-base"
    init: str = ""  # continue this checkpoint (path or lapo alias): skips the plain phase
    seed: int = 0
    hidden_size: int = 128
    layers: int = 3
    heads: int = 4
    intermediate_size: int = 256
    batch_size: int = 32
    weight_decay: float = 0.0
    # phase 1, plain prompts
    max_steps: int = 1200
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    # phase 2, budget tolerance
    budget_steps: int = 300
    budget_learning_rate: float = 1e-3
    budget_warmup_steps: int = 20
    budget_share: float = 0.5  # share of phase-2 prompts with a budget sentence of random N (see build_sft_rows)
    threads: int = 1  # a model this small runs faster on one thread than on two
    measure: int = 0  # samples per test problem for the table printed at the end (0: skip)
    measure_problems: int = 200
    measure_only: bool = False  # skip training: measure the model already in `out`


def build_sft_rows(problems, seed: int, budget_share: float = 0.0) -> dict[str, list[str]]:
    """Prompt/completion columns: each problem's plain prompt and one overthinking trace of it.

    A ``budget_share`` of the prompts carry stage 2's budget sentence with a random N, drawn independently
    of the trace's length: the model learns that such a sentence may appear in its reasoning context, not
    what it means (without it, the sentence's letters derail a model this small; stage 2 teaches the meaning).
    """
    from lapo.core.budget import insert_budget
    from lapo.data.prompts import PromptFormat, render_prompt
    from lapo.tasks import counting

    traces = random.Random(f"lapo-warmstart/{seed}")
    budgets = random.Random(f"lapo-warmstart-budget/{seed}")
    fmt = PromptFormat(kind="plain")
    rows: dict[str, list[str]] = {"prompt": [], "completion": []}
    for p in problems:
        prompt = render_prompt(p["problem"], None, fmt)
        if budgets.random() < budget_share:
            prompt = insert_budget(prompt, budgets.randint(p["min_tokens"], 4 * p["min_tokens"]))
        rows["prompt"].append(prompt)
        rows["completion"].append(counting.overthinking_completion(p, traces))
    return rows


def sft_config(cfg: WarmstartConfig, output_dir: str, *, steps: int, learning_rate: float, warmup_steps: int):
    """TRL's SFTConfig of one phase: CPU, completion-only loss, cosine schedule, nothing saved mid-run."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=output_dir,
        use_cpu=True,
        # TRL defaults to bf16 autocast and gradient checkpointing, even on CPU: both only slow a model this small.
        bf16=False,
        gradient_checkpointing=False,
        seed=cfg.seed,
        max_steps=steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=warmup_steps,
        weight_decay=cfg.weight_decay,
        completion_only_loss=True,
        # Not "group_by_length": batches of one length (all short or all long traces) slowed learning ~3x here.
        train_sampling_strategy="random",
        max_length=512,
        logging_steps=max(1, steps // 20),
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
    )


def train(cfg: WarmstartConfig):
    """Phase 1 (plain prompts, fresh model; skipped with ``init``), then phase 2 (budget tolerance);
    saves model and tokenizer to ``cfg.out``."""
    import torch

    from lapo.models.loading import load_model_and_tokenizer
    from lapo.models.tiny import build_char_tokenizer, build_tiny_model

    torch.set_num_threads(cfg.threads)
    if cfg.init:
        model, tokenizer = load_model_and_tokenizer(cfg.init, dtype=torch.float32)
    else:
        tokenizer = build_char_tokenizer()
        model = build_tiny_model(tokenizer, hidden_size=cfg.hidden_size, num_layers=cfg.layers,
                                 num_heads=cfg.heads, intermediate_size=cfg.intermediate_size, seed=cfg.seed)
        model = _sft(cfg, model, tokenizer, cfg.max_steps, cfg.learning_rate, cfg.warmup_steps, budget_share=0.0)
    if cfg.budget_steps:
        model = _sft(cfg, model, tokenizer, cfg.budget_steps, cfg.budget_learning_rate, cfg.budget_warmup_steps,
                     budget_share=cfg.budget_share)
    out = Path(cfg.out)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return model, tokenizer


def _sft(cfg: WarmstartConfig, model, tokenizer, steps: int, learning_rate: float, warmup_steps: int,
         budget_share: float):
    """One SFT phase with TRL's SFTTrainer; returns the trained model."""
    from datasets import Dataset
    from trl import SFTTrainer

    from lapo.tasks import counting

    logger.info("SFT: %d steps, lr %g, budget share %g", steps, learning_rate, budget_share)
    # One distinct problem per training sequence: more variety than epochs over a small set.
    problems = counting.load_split("train", seed=cfg.seed, n=steps * cfg.batch_size)
    dataset = Dataset.from_dict(build_sft_rows(problems, cfg.seed, budget_share))
    # The trainer's output_dir only receives logs (nothing is saved mid-run): keep it out of `out`.
    with tempfile.TemporaryDirectory(prefix="lapo-warmstart-") as scratch:
        args = sft_config(cfg, scratch, steps=steps, learning_rate=learning_rate, warmup_steps=warmup_steps)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        trainer.train()
    return trainer.model


@dataclass
class LevelFigures:
    """One difficulty level of the measurement table (tokens counted as `lapo eval` counts them, EOS included)."""

    level: int
    accuracy: float  # Pass@1
    mean_tokens: float
    min_tokens: float  # the minimal correct completion plus EOS
    ratio: float
    samples: int


def measure(model, tokenizer, folder: str | Path, *, samples: int = 4, problems: int = 200, seed: int = 0,
            temperature: float = 0.6, top_p: float = 0.95, max_new_tokens: int = 256,
            budgeted: bool = False) -> list[LevelFigures]:
    """Pass@1 and tokens per level on ``problems`` test problems of the counting task, ``samples`` each:
    `lapo eval` itself (:func:`lapo.eval.evaluate.evaluate`) on the model in memory, so the figures compare
    with every `lapo eval` and quickstart figure: seeded per-sample draws (:mod:`lapo.eval.generation`),
    tokens counted as eval counts them (the completion's ids up to and including EOS), answers graded by
    :mod:`lapo.core.checker`, means per level by :mod:`lapo.core.metrics`.

    ``budgeted``: every prompt carries stage 2's budget sentence with N drawn per problem in
    [minimal, 2 x minimal] (where stage 1's targets land), to check that the sentence does not derail the model
    before stage 2. The samples and summary stay in ``folder/measure-plain`` (or ``measure-budget``).
    """
    from lapo.eval.evaluate import evaluate

    summary = evaluate(measure_settings(folder, samples, problems, seed, temperature, top_p, max_new_tokens,
                                        budgeted), model=model, tokenizer=tokenizer)
    return [LevelFigures(int(level), m["pass_at_1"], m["mean_tokens"], m["minimal_tokens"],
                         m["mean_tokens"] / m["minimal_tokens"], m["num_samples"])
            for level, m in summary["by_level"].items()]


def measure_settings(folder: str | Path, samples: int, problems: int, seed: int, temperature: float, top_p: float,
                     max_new_tokens: int, budgeted: bool):
    """The EvalSettings of a measurement: what `lapo eval --model FOLDER --dataset counting --prompt-format plain
    --k SAMPLES --limit PROBLEMS --seed SEED --data-seed SEED ...` would run."""
    from lapo.eval.settings import EvalSettings

    folder = Path(folder)
    budget = f"targets:{measurement_budgets(folder, problems, seed)}" if budgeted else "none"
    return EvalSettings(
        model=str(folder), dataset="counting", split="test", k=samples, limit=problems, temperature=temperature,
        top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, data_seed=seed, budget=budget,
        prompt_format="plain", answer_fallback="none", label="warmstart", overwrite=True, progress=False,
        out=str(folder / ("measure-budget" if budgeted else "measure-plain")),
    )


def measurement_budgets(folder: Path, problems: int, seed: int) -> Path:
    """``folder/measure-budgets.json``: one N per test problem, uniform in [minimal, 2 x minimal] tokens."""
    from lapo.core.io import save_targets
    from lapo.tasks import counting

    rng = random.Random(f"lapo-measure-budget/{seed}")
    targets = {p["id"]: rng.randint(p["min_tokens"], 2 * p["min_tokens"])
               for p in counting.load_split("test", seed=seed, n=problems)}
    return save_targets(targets, folder / "measure-budgets.json")


def format_table(table: list[LevelFigures]) -> str:
    """A markdown table of the figures, with an 'all' row (levels weighted by their sample counts)."""
    lines = ["| level | accuracy | mean tokens | minimal tokens | ratio | samples |", "|---|---|---|---|---|---|"]
    for f in table:
        lines.append(f"| {f.level} | {f.accuracy:.3f} | {f.mean_tokens:.1f} | {f.min_tokens:.1f} | {f.ratio:.2f} | {f.samples} |")
    n = sum(f.samples for f in table)
    acc = sum(f.accuracy * f.samples for f in table) / n
    tok = sum(f.mean_tokens * f.samples for f in table) / n
    low = sum(f.min_tokens * f.samples for f in table) / n
    lines.append(f"| all | {acc:.3f} | {tok:.1f} | {low:.1f} | {tok / low:.2f} | {n} |")
    return "\n".join(lines)


HELP = {
    "out": "folder for the trained model, its tokenizer and lapo_warmstart.json",
    "init": "continue this checkpoint (path or lapo alias) instead of a fresh model; skips the plain phase",
    "seed": "seed of the model's initialisation, the problems, the traces and the budgets",
    "hidden_size": "model width (fresh models only)",
    "layers": "transformer layers (fresh models only)",
    "heads": "attention heads (fresh models only)",
    "intermediate_size": "MLP width (fresh models only)",
    "batch_size": "traces per SFT step (each a distinct problem)",
    "weight_decay": "AdamW weight decay, both phases",
    "max_steps": "SFT steps of phase 1 (plain prompts)",
    "learning_rate": "peak learning rate of phase 1 (cosine schedule)",
    "warmup_steps": "warm-up steps of phase 1",
    "budget_steps": "SFT steps of phase 2 (budget tolerance); 0 skips it",
    "budget_learning_rate": "peak learning rate of phase 2 (cosine schedule)",
    "budget_warmup_steps": "warm-up steps of phase 2",
    "budget_share": "share of phase-2 prompts that carry a budget sentence with a random N",
    "threads": "torch threads (a model this small runs fastest on one)",
    "measure": "after training, sample this many completions per test problem and print the tables (0: skip)",
    "measure_problems": "test problems to measure",
    "measure_only": "skip training: measure the model already in --out",
}


def parse_args(argv) -> WarmstartConfig:
    defaults = WarmstartConfig()
    parser = ArgumentParser(prog="lapo warmstart", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for name, value in asdict(defaults).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true", default=value, help=HELP[name])
        else:
            parser.add_argument(flag, type=type(value), default=value, help=HELP[name])
    cfg = WarmstartConfig(**vars(parser.parse_args(argv)))
    if cfg.max_steps < 1 and not cfg.init and not cfg.measure_only:
        raise LapoError(f"--max-steps {cfg.max_steps}: a fresh model needs at least 1 plain step; "
                        "give --init CHECKPOINT to start from a trained model instead.")
    if not 0.0 <= cfg.budget_share <= 1.0:
        raise LapoError(f"--budget-share {cfg.budget_share}: a share of prompts, between 0 and 1.")
    negative = [n for n, v in asdict(cfg).items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0]
    if negative:
        name = negative[0]
        raise LapoError(f"--{name.replace('_', '-')} {getattr(cfg, name)} must be 0 or more.")
    _check_paths(cfg)
    return cfg


def _check_paths(cfg: WarmstartConfig) -> None:
    """The model folders the run reads, checked before anything is built or trained."""
    from lapo.models.loading import hub_options

    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise LapoError(f"--out {cfg.out} is a file; pass a folder for the model.")
    if cfg.measure_only and not (out / "config.json").is_file():
        raise LapoError(f"--measure-only measures the model in --out, but {cfg.out} holds none (no config.json); "
                        "train it first (without --measure-only) or pass --out FOLDER of a saved model.")
    if cfg.init:
        hub_options(cfg.init, "--init")


@command("warmstart")
def main(argv: list[str]) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    record_path = Path(cfg.out, "lapo_warmstart.json")
    if cfg.measure_only:
        record = _read_record(record_path) if record_path.exists() else {"config": asdict(cfg)}
        model, tokenizer = _load(cfg)
    else:
        start = time.time()
        model, tokenizer = train(cfg)
        record = {"config": asdict(cfg), "train_seconds": round(time.time() - start, 1)}
        print(f"trained in {record['train_seconds']:.0f} s; saved to {cfg.out}")
    if cfg.measure:
        record["measure"] = _measure_and_print(cfg, model, tokenizer)
    record_path.write_text(json.dumps(record, indent=2))
    return 0


def _read_record(path: Path) -> dict:
    """The record a training run wrote beside its model (the measurement is added to it)."""
    from lapo.core.io import read_json

    record = read_json(path, "warm-start record")
    if not isinstance(record, dict):
        raise LapoError(f"warm-start record {path} is not a JSON object; remove it (it is rewritten).")
    return record


def _load(cfg: WarmstartConfig):
    import torch

    from lapo.models.loading import load_model_and_tokenizer

    torch.set_num_threads(cfg.threads)
    return load_model_and_tokenizer(cfg.out)


def _measure_and_print(cfg: WarmstartConfig, model, tokenizer) -> dict:
    start = time.time()
    runs = {}
    for budgeted, key, title in ((False, "levels", "plain prompts"),
                                 (True, "budgeted_levels", "prompts with a budget sentence, N in [minimal, 2 x minimal]")):
        runs[key] = measure(model, tokenizer, cfg.out, samples=cfg.measure, problems=cfg.measure_problems,
                            seed=cfg.seed, budgeted=budgeted)
        print(f"{title}\n" + format_table(runs[key]))
    settings = {"samples_per_problem": cfg.measure, "problems": cfg.measure_problems, "temperature": 0.6,
                "top_p": 0.95, "seed": cfg.seed, "seconds": round(time.time() - start, 1),
                "tokens": "completion ids up to and including EOS (as lapo eval counts them)",
                "evaluations": ["measure-plain", "measure-budget"]}
    return {"settings": settings, **{key: [asdict(f) for f in table] for key, table in runs.items()}}
