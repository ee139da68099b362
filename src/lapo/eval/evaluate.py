"""`lapo eval`: Pass@1 over k samples, completion tokens, per-level breakdown and budget adherence.

    lapo eval --model lapo-counting-base --dataset counting --k 4
    lapo eval --model runs/x/internalization/final --dataset math500 --data-dir ../shared/data \\
        --backend vllm --max-new-tokens 8192 --out evals/lapo-i/math500

Writes ``samples.jsonl`` (one line per sample, appended and flushed batch by batch, so an interrupted
evaluation resumes where it stopped) and ``summary.json`` (recomputed from every sample on disk).
This module holds the settings, the orchestration and the command line; the metrics are plain functions
in :mod:`lapo.core.metrics` (no torch import), budgets and the sample files are in :mod:`lapo.eval.samples`, and
torch, transformers and vLLM are imported only inside the backends of :mod:`lapo.eval.generation`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import asdict
from pathlib import Path

from lapo.core.io import read_json, slug, write_json
from lapo.core.metrics import mean, summarize
from lapo.errors import ArgumentParser, LapoError, command, one_line
from lapo.eval.generation import make_backend
from lapo.eval.results import EVAL_SCHEMA
from lapo.eval.samples import (
    SAMPLES_FILE,
    SUMMARY_FILE,
    append_samples,
    assign_budgets,
    exclusive,
    minimal_tokens,
    parse_budget_spec,
    prepare_out,
    read_samples,
    sample_record,
    sample_seed,
)
from lapo.eval.settings import EvalSettings
from lapo.models.loading import hub_options, load_tokenizer

# --------------------------------------------------------------------------------------------------
# Settings, output names, prompt format and problems


def benchmark_name(dataset: str) -> str:
    """A short name for a dataset: the file stem of a path, the last part of a hub id, else the name itself."""
    if dataset.endswith((".json", ".jsonl", ".parquet")):
        return Path(dataset).name.split(".")[0]
    return dataset.rstrip("/").split("/")[-1]


def default_label(model: str) -> str:
    """A readable model name: the path's last parts, skipping generic ones (final, model, checkpoint-N)."""
    parts = [p for p in Path(model).parts if p not in ("/", ".", "..")]
    meaningful = [p for p in parts if p not in ("final", "model", "merged") and not p.startswith("checkpoint-")]
    if not meaningful:
        return model
    # "runs/x/internalization/final" -> "x/internalization": the stage alone would not say which run.
    stages = ("discovery", "internalization", "warmstart")
    return "/".join(meaningful[-2:]) if meaningful[-1] in stages and len(meaningful) > 1 else meaningful[-1]


def default_out(settings: EvalSettings) -> Path:
    """``evals/<label>/<benchmark>[-<budget>]`` under the working directory."""
    name = benchmark_name(settings.dataset)
    if settings.budget != "none":
        name += "-" + ("targets" if settings.budget.startswith("targets:") else settings.budget.replace(":", ""))
    return Path("evals") / slug(settings.label or default_label(settings.model)) / slug(name)


def training_settings(model: str) -> dict | None:
    """The ``lapo`` section of the ``config.yaml`` of the training run a checkpoint comes from (the stage it
    belongs to: ``runs/x/internalization/final`` -> the internalization section), or None."""
    here = Path(model)
    if not here.exists():
        return None
    here = here.resolve()
    for folder in [here, *list(here.parents)[:3]]:
        path = folder / "config.yaml"
        if not path.is_file():
            continue
        data = _read_yaml(path)
        if isinstance(data, dict) and ("discovery" in data or "internalization" in data):
            stage = "internalization" if "internalization" in here.parts else "discovery"
            section = data.get(stage) or data.get("discovery") or {}
            return section.get("lapo") if isinstance(section.get("lapo"), dict) else None
    return None


def _read_yaml(path: Path):
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LapoError(f"{path} is not readable YAML ({one_line(error)}); the training run's saved configuration "
                        "is corrupt: restore it, or pass --prompt-format and --answer-fallback explicitly.") from None


def resolve_prompt_format(spec: str, model: str, tokenizer):
    """The training prompt format: ``reference``/``chat``/``plain``, a JSON file of PromptFormat fields, or
    ``auto``: the format of the training run the model comes from (its ``config.yaml``), else chat when the
    tokenizer has a chat template, else plain (the format ``lapo warmstart`` trains the counting base model with)."""
    from lapo.data.prompts import PROMPT_KINDS, PromptFormat

    if spec in PROMPT_KINDS:
        return PromptFormat(kind=spec)
    if spec != "auto":
        return _format_from_file(Path(spec), PromptFormat)
    lapo = training_settings(model)
    if lapo and lapo.get("prompt_kind"):
        fields = ("system_prompt", "user_template", "plain_template", "think_tag", "budget_template")
        return PromptFormat(kind=lapo["prompt_kind"], **{k: lapo[k] for k in fields if k in lapo})
    return PromptFormat(kind="chat" if getattr(tokenizer, "chat_template", None) else "plain")


def resolve_answer_checking(settings: "EvalSettings") -> tuple[str, float]:
    """(fallback, timeout) of the answer checker: the training run's when ``auto`` finds one, else none, 1 s."""
    lapo = training_settings(settings.model) or {}
    fallback = settings.answer_fallback if settings.answer_fallback != "auto" else lapo.get("answer_fallback", "none")
    return fallback, float(lapo.get("answer_timeout", 1.0))


def _format_from_file(path: Path, cls):
    if not path.is_file():
        raise LapoError(f"--prompt-format {str(path)!r} is neither auto, reference, chat, plain nor an existing "
                        "JSON file.")
    fields = read_json(path, "--prompt-format file")
    if not isinstance(fields, dict):
        raise LapoError(f"--prompt-format file {path} holds a JSON {type(fields).__name__}; it must be an object of "
                        "PromptFormat fields (kind, system_prompt, user_template, ...).")
    try:
        return cls(**fields)
    except TypeError as err:
        raise LapoError(f"{path}: {err}; keep only PromptFormat fields (kind, system_prompt, user_template, "
                        "plain_template, think_tag, budget_template).") from None


def load_eval_problems(settings: EvalSettings) -> list:
    """The problems to evaluate; every way a dataset can be missing becomes one actionable line."""
    from lapo.data.problems import load_problems

    try:
        problems = load_problems(settings.dataset, split=settings.split, data_dir=settings.data_dir,
                                 limit=settings.limit, seed=settings.data_seed)
    except (FileNotFoundError, ValueError) as err:
        raise LapoError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - the hub raises many kinds; all mean "not reachable here"
        name = benchmark_name(settings.dataset)
        raise LapoError(f"could not load dataset {settings.dataset!r} ({type(err).__name__}: {err}); pass "
                        f"--data-dir DIR holding {name}.jsonl, or a local .jsonl/.json/.parquet file.") from None
    if not problems:
        raise LapoError(f"dataset {settings.dataset!r} (split {settings.split!r}) has no problem with a usable "
                        "answer; check --split and the file's answer field.")
    return problems


# --------------------------------------------------------------------------------------------------
# The evaluation


def generate_missing(backend, tokenizer, todo, prompts, budgets, settings, path: Path,
                     checking: tuple[str, float] = ("none", 1.0)) -> tuple[list[dict], dict]:
    """Generate, score and append every missing (problem, sample) pair; returns the new records and the
    throughput of generation alone. ``checking`` is the answer checker's (fallback, timeout)."""
    from tqdm.auto import tqdm

    from lapo.core.checker import AnswerChecker
    from lapo.core.extract import extract_answer
    from lapo.data.prompts import encode_prompts

    # Longest prompts first: similar lengths share a batch (less padding) and memory trouble shows at once.
    lengths = {pid: len(ids) for pid, ids in zip(prompts, encode_prompts(tokenizer, prompts.values()))}
    todo = sorted(todo, key=lambda unit: -lengths[unit[0].id])
    size = settings.batch_size or (1024 if backend.name == "vllm" else 64)
    new, generated, seconds = [], 0, 0.0
    bar = tqdm(total=len(todo), unit="sample", desc=f"eval {benchmark_name(settings.dataset)}",
               disable=not settings.progress, dynamic_ncols=True)
    fallback, timeout = checking
    with AnswerChecker(timeout_s=timeout, fallback=fallback) as checker, bar:
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            t0 = time.perf_counter()
            gens = backend.generate([prompts[p.id] for p, _ in chunk],
                                    [sample_seed(settings.seed, p.id, j) for p, j in chunk])
            seconds += time.perf_counter() - t0
            # Decode without the EOS; skip_special_tokens as TRL decodes completions in training.
            texts = tokenizer.batch_decode([g.token_ids[:-1] if not g.truncated else g.token_ids for g in gens],
                                           skip_special_tokens=True)
            verdicts = checker.check_many(texts, [p.answer for p, _ in chunk])
            records = [sample_record(p, j, g, t, ok, budgets[p.id], minimal_tokens(p, tokenizer),
                                     extract_answer(t, fallback))
                       for (p, j), g, t, ok in zip(chunk, gens, texts, verdicts)]
            append_samples(path, records)
            new += records
            generated += sum(r["tokens"] for r in records)
            bar.update(len(chunk))
            bar.set_postfix(acc=f"{mean([r['correct'] for r in new]):.1%}",
                            tok=f"{mean([r['tokens'] for r in new]):.0f}")
    throughput = {"generated_tokens": generated, "seconds": round(seconds, 3),
                  "tokens_per_s": round(generated / seconds, 1) if seconds > 0 else None, "backend": backend.name}
    return new, throughput


def run_config(settings: EvalSettings, fmt, answer_fallback: str) -> dict:
    """The settings as recorded in eval_config.json and in the summary, ``auto`` values resolved."""
    config = asdict(settings)
    config["prompt_format"] = asdict(fmt)
    config["answer_fallback"] = answer_fallback
    for key in ("out", "overwrite", "progress"):
        config.pop(key)
    return config


def evaluate(settings: EvalSettings, *, model=None, tokenizer=None, backend=None) -> dict:
    """Run (or resume) one evaluation and return its summary (also written to ``<out>/summary.json``).

    ``model``/``tokenizer`` may be passed in memory (the quickstart does), or a ready ``backend`` (any object
    with ``name`` and ``generate(prompts, seeds) -> list[Generation]``); otherwise they load from
    ``settings.model`` after every input has been checked.
    """
    settings.validate()
    if model is None and tokenizer is None and backend is None:
        hub_options(settings.model, "--model")  # a name that cannot load fails now, not after the problems
    problems = load_eval_problems(settings)
    budgets, missing = assign_budgets([p.id for p in problems], settings.budget)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(settings.model)
    fmt = resolve_prompt_format(settings.prompt_format, settings.model, tokenizer)
    checking = resolve_answer_checking(settings)
    config = run_config(settings, fmt, checking[0])
    out = Path(settings.out) if settings.out else default_out(settings)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        prepare_out(out, config, settings.overwrite)
        done = read_samples(out / SAMPLES_FILE)
        todo = [(p, j) for p in problems for j in range(settings.k) if (p.id, j) not in done]
        throughput = {"generated_tokens": 0, "seconds": 0.0, "tokens_per_s": None, "backend": None}
        if todo:
            if done:
                print(f"resuming {out}: {len(done)} samples on disk, {len(todo)} to go", file=sys.stderr)
            from lapo.data.prompts import render_prompt

            prompts = {p.id: render_prompt(p.problem, tokenizer, fmt, budget=budgets[p.id]) for p in problems}
            if backend is None:
                backend, tokenizer = make_backend(settings, model, tokenizer)
            new, throughput = generate_missing(backend, tokenizer, todo, prompts, budgets, settings,
                                               out / SAMPLES_FILE, checking)
            done.update({(r["problem_id"], r["sample"]): r for r in new})
        records = [done[(p.id, j)] for p in problems for j in range(settings.k) if (p.id, j) in done]
        summary = build_summary(records, settings, config, len(problems), missing, throughput)
        write_json(out / SUMMARY_FILE, summary)
    return {**summary, "out": str(out)}


def build_summary(records, settings: EvalSettings, config: dict, num_problems: int, missing: list[str],
                  throughput: dict) -> dict:
    """summary.json: metrics from the records, plus what was evaluated and how."""
    from lapo import __version__

    return {
        "schema": EVAL_SCHEMA,
        "label": settings.label or default_label(settings.model),
        "model": settings.model,
        "benchmark": benchmark_name(settings.dataset),
        "dataset": settings.dataset,
        "split": settings.split,
        "k": settings.k,
        "complete": len(records) == num_problems * settings.k,
        **summarize(records, settings.budget_tolerance),
        "budget_missing": len(missing),
        "throughput": throughput,
        "settings": config,
        "lapo_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --------------------------------------------------------------------------------------------------
# Command line


def format_summary(summary: dict) -> str:
    """A few readable lines for the terminal."""
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    def num(x):
        return "n/a" if x is None else f"{x:.0f}"

    lines = [f"{summary['label']} on {summary['benchmark']}: Pass@1 {pct(summary['pass_at_1'])} over "
             f"{summary['num_problems']} problems x k={summary['k']}, mean {num(summary['mean_tokens'])} tokens "
             f"(median {num(summary['median_tokens'])}), truncated {pct(summary['truncation_rate'])}"]
    for level, m in summary["by_level"].items():
        minimal = f", minimal {num(m['minimal_tokens'])}" if m.get("minimal_tokens") is not None else ""
        lines.append(f"  level {level}: Pass@1 {pct(m['pass_at_1'])}, mean {num(m['mean_tokens'])} tokens{minimal}")
    adh = summary.get("budget_adherence")
    if adh:
        rho = "n/a" if adh["spearman"] is None else f"{adh['spearman']:.3f}"
        lines.append(f"  budget: mean |L-N|/N {adh['mean_rel_error']:.3f}, signed mean (L-N)/N "
                     f"{adh['signed_rel_error']:+.3f}, off by more than {adh['tolerance']:.0%}: "
                     f"{pct(adh['off_budget'])}, Spearman rho {rho}, within 10% {pct(adh['within_10pct'])}")
    if not summary["complete"]:
        lines.append("  (incomplete: run the same command again to finish)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="lapo eval", description="Pass@1 over k samples, completion tokens, "
                                "per-level breakdown and budget adherence of one model on one dataset.")
    add = p.add_argument
    add("--model", required=True,
        help="checkpoint folder, hub id, or alias (lapo-counting-base, smollm2-135m-instruct)")
    add("--dataset", required=True, help="math500, aime24, amc23, olympiadbench, gsm8k, counting, a hub id, "
        "or a .jsonl/.json/.parquet file")
    add("--data-dir", help="folder with <benchmark>.jsonl files (e.g. ../shared/data); else benchmarks load "
        "from the hub")
    add("--split", default="test", help="split of hub datasets and of counting (default: test)")
    add("--k", type=int, default=4, help="samples per problem; Pass@1 is their mean accuracy (default: 4)")
    add("--temperature", type=float, default=0.6, help="0 = greedy (default: 0.6)")
    add("--top-p", type=float, default=0.95, help="nucleus sampling mass (default: 0.95)")
    add("--max-new-tokens", type=int, default=4096, help="completion length cap (default: 4096)")
    add("--batch-size", type=int, help="samples per generate() call (default 64) or per vLLM chunk (1024); "
        "results are saved after each")
    add("--limit", type=int, help="evaluate only the first N problems")
    add("--budget", default="none", help="none (the paper's plain prompt), targets:PATH (a stage-1 "
        "targets.json or its run dir), fixed:N, or sweep:N1,N2,... (one evaluation per N, and a plot of produced "
        "against requested length)")
    add("--budget-tolerance", type=float, default=0.1, help="a sample is off budget when |L-N|/N exceeds this "
        "(default: 0.1)")
    add("--backend", default="auto", choices=["auto", "transformers", "vllm"],
        help="auto: vLLM when installed with a GPU, else transformers")
    add("--out", help="output folder (default: evals/<model>/<dataset>); an existing one is resumed")
    add("--seed", type=int, default=0, help="sampling seed; a sample's draws depend only on (seed, problem, index)")
    add("--data-seed", type=int, default=0, help="seed of generated tasks (counting): which problems it holds")
    add("--prompt-format", default="auto", help="auto (the training run's format, else chat if the tokenizer "
        "has a chat template, else plain), reference (the paper code's plain text), chat, plain, or a JSON file of "
        "PromptFormat fields")
    add("--answer-fallback", default="auto", choices=["auto", "none", "last_number"], help="without a "
        "\\boxed{} answer: none (wrong) or the last number (GSM8K); auto: the training run's, else none")
    add("--label", help="model name in summaries and reports (default: from the model path)")
    add("--device", default="auto", help="transformers backend device: auto, cpu, cuda, cuda:1 ...")
    add("--overwrite", action="store_true", help="discard samples already in --out instead of resuming")
    add("--tensor-parallel-size", type=int, default=1, help="vLLM: GPUs per model")
    add("--gpu-memory-utilization", type=float, default=0.85, help="vLLM: share of GPU memory to use")
    add("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


@command("eval")
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = EvalSettings(**vars(args))
    if settings.budget.startswith("sweep:"):
        return _sweep_main(settings)
    try:
        summary = evaluate(settings)  # bad input raises LapoError: one line, exit 2 (lapo.errors.command)
    except KeyboardInterrupt:
        out = settings.out or default_out(settings)
        print(f"\nlapo eval: interrupted; finished samples are in {out}/{SAMPLES_FILE}. Run the same command "
              "again to resume.", file=sys.stderr)
        return 130
    print(format_summary(summary))
    print(f"wrote {summary['out']}/{SUMMARY_FILE} and {SAMPLES_FILE}")
    return 0


def run_sweep(settings: EvalSettings, budgets: list[int] | None = None) -> tuple[list[dict], Path]:
    """One evaluation per requested N (``--budget sweep:N1,N2,...``), each in its own ``fixed<N>`` folder;
    writes ``sweep.json`` (requested N, produced mean tokens, adherence, Pass@1) and ``sweep.png`` beside them."""
    from lapo.core.io import write_json
    from lapo.eval.plots import plot_sweep

    settings.validate()
    if budgets is None:
        budgets = parse_budget_spec(settings.budget)[1]
    root = Path(settings.out) if settings.out else default_out(settings)
    summaries = []
    for n in budgets:
        one = dataclasses.replace(settings, budget=f"fixed:{n}", out=str(root / f"fixed{n}"))
        summaries.append(evaluate(one))
    write_json(root / "sweep.json", sweep_points(summaries))
    plot_sweep({summaries[0]["label"]: sweep_points(summaries)}, root / "sweep.png")
    return summaries, root


def sweep_points(summaries: list[dict]) -> list[dict]:
    """Per requested N: the produced mean tokens, L1's adherence figures and Pass@1."""
    points = []
    for s in summaries:
        a = s["budget_adherence"] or {}
        points.append({"requested": a.get("mean_budget"), "produced": s["mean_tokens"], "pass_at_1": s["pass_at_1"],
                       "mean_rel_error": a.get("mean_rel_error"), "signed_rel_error": a.get("signed_rel_error"),
                       "off_budget": a.get("off_budget")})
    return points


def _sweep_main(settings: EvalSettings) -> int:
    summaries, root = run_sweep(settings)
    for summary in summaries:
        print(format_summary(summary))
    print(f"wrote {root}/sweep.json and sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
