"""What reports read: ``lapo eval`` summaries and ``lapo train`` run directories, and the grid of (model,
benchmark) cells that the tables (:mod:`lapo.eval.report`) and the plots (:mod:`lapo.eval.plots`) are drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from lapo.core.io import TARGETS_FILE, load_targets, read_json, read_jsonl_lenient
from lapo.errors import LapoError

EVAL_SCHEMA = "lapo.eval/1"
LOG_FILE = "log_history.jsonl"  # lapo.train.rundir writes them (eval never imports train)
RUN_CONFIG_FILE = "config.yaml"
STAGES = ("discovery", "internalization")
SUMMARY_FIELDS = ("benchmark", "pass_at_1", "mean_tokens")  # what every table of the report reads
# Display names and the paper's column order (docs/METHOD.md, section 6); other benchmarks follow by name.
BENCHMARK_NAMES = {
    "math500": "MATH-500", "aime24": "AIME24", "amc23": "AMC23", "olympiadbench": "OlympiadBench",
    "gsm8k": "GSM8K", "gsm8k_test": "GSM8K", "counting": "Counting",
}


@dataclass
class Run:
    """What a training run directory holds for the report."""

    name: str
    path: Path
    targets: dict[str, int] | None = None
    sentinel: int | None = None
    logs: dict[str, list[dict]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Reading inputs


def find_summaries(path: Path) -> list[Path]:
    """Every evaluation summary at or under ``path``, in a stable order."""
    if path.is_file():
        return [path]
    direct = path / "summary.json"
    return [direct] if direct.is_file() else sorted(path.rglob("summary.json"))


def load_summary(path: Path) -> dict | None:
    """A ``lapo eval`` summary, or None for any other summary.json (e.g. a training one); a corrupt file is an
    error naming it (it is not the same as a missing one)."""
    data = read_json(path, "evaluation summary")
    if not (isinstance(data, dict) and data.get("schema") == EVAL_SCHEMA):
        return None
    missing = [k for k in SUMMARY_FIELDS if k not in data]
    if missing:
        raise LapoError(f"evaluation summary {path} lacks {', '.join(missing)}; the file is incomplete: run the same "
                        "`lapo eval` again to rewrite it, or remove it.")
    return data


def load_run(path: Path) -> Run | None:
    """The run at ``path`` when it has a target map or a stage log, else None."""
    if not path.is_dir():
        return None
    logs = {s: read_jsonl_lenient(path / s / LOG_FILE) for s in STAGES if (path / s / LOG_FILE).is_file()}
    target_file = next((p for p in (path / TARGETS_FILE, path / "discovery" / TARGETS_FILE) if p.is_file()), None)
    if not logs and target_file is None:
        return None
    targets = load_targets(target_file) if target_file is not None else None
    return Run(name=path.resolve().name, path=path, targets=targets, sentinel=find_sentinel(path), logs=logs)


def find_sentinel(run_dir: Path) -> int | None:
    """The never-solved target of a run (fallback_target, else stage 1's max_completion_length) from the
    ``config.yaml`` that ``lapo train`` writes, so the target histogram can leave those problems out; None
    when the run has none."""
    path = run_dir / RUN_CONFIG_FILE
    if not path.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise LapoError(f"{path} is not readable YAML ({error}); the run's saved configuration is corrupt.") from None
    section = data.get("discovery") if isinstance(data, dict) else None
    flat = _flatten(section) if isinstance(section, dict) else {}
    for key in ("fallback_target", "max_completion_length"):
        if isinstance(flat.get(key), int):
            return flat[key]
    return None


def _flatten(data: dict) -> dict:
    """Nested config sections merged into one level (first occurrence of a key wins)."""
    out: dict = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for k, v in _flatten(value).items():
                out.setdefault(k, v)
        else:
            out.setdefault(key, value)
    return out


def collect(paths: Sequence[str | Path]) -> tuple[list[dict], list[Run]]:
    """(evaluation summaries, runs) from the command-line paths, in the order given."""
    evals: list[dict] = []
    runs: list[Run] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise LapoError(f"{path} does not exist: pass an eval folder (with summary.json) or a run directory.")
        run = load_run(path)
        if run is not None:
            runs.append(run)
        found = [(p, load_summary(p)) for p in find_summaries(path)]
        found = [{**s, "_path": str(p)} for p, s in found if s is not None]
        evals += found
        if run is None and not found:
            raise LapoError(f"{path} holds no lapo eval summary.json and no run logs or targets.json: "
                              "run `lapo eval --out` into it, or pass a `lapo train` run directory.")
    return evals, runs



# --------------------------------------------------------------------------------------------------
# Names and the grid


def model_name(summary: dict) -> str:
    """The row name of an evaluation: its label, plus the budget mode when one was given."""
    budget = (summary.get("settings") or {}).get("budget", "none")
    label = summary.get("label") or summary.get("model", "?")
    return label if budget in (None, "none") else f"{label} [{budget.split(':')[0]}{_budget_value(budget)}]"


def _budget_value(budget: str) -> str:
    return ":" + budget.split(":", 1)[1] if budget.startswith("fixed:") else ""


def benchmark_display(name: str) -> str:
    return BENCHMARK_NAMES.get(name, name)


def grid(evals: Sequence[dict]) -> tuple[list[str], list[str], dict[tuple[str, str], dict]]:
    """(models in the order seen, benchmarks in the paper's order, {(model, benchmark): summary}).
    A later summary for the same model and benchmark replaces an earlier one."""
    models: list[str] = []
    cells: dict[tuple[str, str], dict] = {}
    for e in evals:
        name = model_name(e)
        if name not in models:
            models.append(name)
        cells[(name, e["benchmark"])] = e
    order = list(BENCHMARK_NAMES)
    benches = sorted({b for _, b in cells}, key=lambda b: (order.index(b) if b in order else len(order), b))
    return models, benches, cells


def level_key(level: str):
    return (0, float(level)) if level.replace(".", "", 1).lstrip("-").isdigit() else (1, level)
