"""`lapo report`: markdown tables and PNG plots from evaluation results and training run directories.

    lapo report evals/base evals/lapo-d evals/lapo-i runs/counting --base base --out report

Each argument is an evaluation folder (one ``summary.json``), a folder holding several (found at any
depth), or a run directory (``targets.json``, ``discovery/log_history.jsonl``,
``internalization/log_history.jsonl``). Writes ``report.md`` (also printed) and, where the inputs allow,
the plots of :mod:`lapo.plots` (``frontier.png``, ``levels.png``, ``targets.png``, ``training-<run>.png``).

Tables are plain functions of the summaries (tested on fixed values); matplotlib is imported only to plot.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

EVAL_SCHEMA = "lapo.eval/1"
STAGES = ("discovery", "internalization")
# Display names and the paper's column order (LAPO_SPEC section 2); other benchmarks follow by name.
BENCHMARK_NAMES = {
    "math500": "MATH-500", "aime24": "AIME24", "amc23": "AMC23", "olympiadbench": "OlympiadBench",
    "gsm8k": "GSM8K", "gsm8k_test": "GSM8K", "counting": "Counting",
}


class ReportError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


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
    """A ``lapo eval`` summary, or None for any other summary.json (e.g. a training one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == EVAL_SCHEMA else None


def read_jsonl(path: Path) -> list[dict]:
    """The dict lines of a JSONL file; unreadable lines (a run killed mid-write) are skipped."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def load_run(path: Path) -> Run | None:
    """The run at ``path`` when it has a target map or a stage log, else None."""
    if not path.is_dir():
        return None
    logs = {s: read_jsonl(path / s / "log_history.jsonl") for s in STAGES if (path / s / "log_history.jsonl").is_file()}
    target_file = next((p for p in (path / "targets.json", path / "discovery" / "targets.json") if p.is_file()), None)
    if not logs and target_file is None:
        return None
    targets = None
    if target_file is not None:
        raw = json.loads(target_file.read_text(encoding="utf-8"))
        targets = {str(k): int(v) for k, v in (raw.get("targets", raw) if isinstance(raw, dict) else {}).items()
                   if isinstance(v, (int, float))}
    return Run(name=path.resolve().name, path=path, targets=targets, sentinel=find_sentinel(path), logs=logs)


def find_sentinel(run_dir: Path) -> int | None:
    """The never-solved target of a run (fallback_target, else stage 1's max_completion_length) from the
    config it saved, so the target histogram can leave those problems out; None when not found."""
    for name in ("config.json", "config.yaml", "run_config.json", "resolved_config.json"):
        for folder in (run_dir, run_dir / "discovery"):
            found = _sentinel_in(folder / name)
            if found:
                return found
    return None


def _sentinel_in(path: Path) -> int | None:
    if not path.is_file():
        return None
    try:
        import yaml  # parses JSON too

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - an unreadable config only costs the sentinel
        return None
    flat = _flatten(data.get("discovery", data) if isinstance(data, dict) else {})
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
            raise ReportError(f"{path} does not exist: pass an eval folder (with summary.json) or a run directory.")
        run = load_run(path)
        if run is not None:
            runs.append(run)
        found = [(p, load_summary(p)) for p in find_summaries(path)]
        found = [{**s, "_path": str(p)} for p, s in found if s is not None]
        evals += found
        if run is None and not found:
            raise ReportError(f"{path} holds no lapo eval summary.json and no run logs or targets.json: "
                              "run `lapo eval --out` into it, or pass a `lapo train` run directory.")
    return evals, runs


# --------------------------------------------------------------------------------------------------
# Tables (pure)


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


def averages(cells: dict, model: str, benches: Sequence[str]) -> tuple[float | None, float | None]:
    """Mean Pass@1 (percent) and mean #tokens over ``benches`` (the paper's averages: per-benchmark means,
    each benchmark weighing the same); None unless the model has every one of them."""
    got = [cells.get((model, b)) for b in benches]
    if not benches or any(g is None or g.get("pass_at_1") is None for g in got):
        return None, None
    return (100 * sum(g["pass_at_1"] for g in got) / len(got), sum(g["mean_tokens"] for g in got) / len(got))


def deltas(cells: dict, model: str, base: str, benches: Sequence[str]) -> tuple[float | None, float | None]:
    """(Pass@1 change in points, #tokens change in percent) against ``base`` over the benchmarks both have."""
    common = [b for b in benches if (model, b) in cells and (base, b) in cells]
    acc, tok = averages(cells, model, common)
    base_acc, base_tok = averages(cells, base, common)
    if acc is None or base_acc is None or not base_tok:
        return None, None
    return acc - base_acc, 100 * (tok - base_tok) / base_tok


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _tok(x: float | None) -> str:
    return "–" if x is None else f"{x:.0f}"


def _signed(x: float | None, unit: str = "") -> str:
    return "–" if x is None else f"{x:+.1f}{unit}"


def _md(header: Sequence[str], rows: Sequence[Sequence[str]], align_first_left: bool = True) -> str:
    rule = [":---" if i == 0 and align_first_left else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main_table(evals: Sequence[dict], base: str | None = None) -> str:
    """The paper's table: per benchmark Pass@1 (%) and #tokens, their averages, and the change against base."""
    models, benches, cells = grid(evals)
    header = ["model"]
    for b in benches:
        header += [f"{benchmark_display(b)} Pass@1", f"{benchmark_display(b)} #tok"]
    header += ["avg Pass@1", "avg #tok"] + ([f"Δ Pass@1 vs {base}", f"Δ #tok vs {base}"] if base else [])
    rows = []
    for m in models:
        row = [m]
        for b in benches:
            e = cells.get((m, b))
            mark = "" if e is None or e.get("complete", True) else "*"
            row += [_pct(e and e.get("pass_at_1")) + mark, _tok(e and e.get("mean_tokens")) + mark]
        acc, tok = averages(cells, m, benches)
        row += ["–" if acc is None else f"{acc:.1f}", _tok(tok)]
        if base:
            d_acc, d_tok = deltas(cells, m, base, benches) if m != base else (None, None)
            row += [_signed(d_acc), _signed(d_tok, "%")]
        rows.append(row)
    table = _md(header, rows)
    if any(not e.get("complete", True) for e in evals):
        table += "\n\n\\* incomplete evaluation (not every problem has all k samples yet)."
    return table


def level_table(evals: Sequence[dict], benchmark: str) -> str:
    """Per difficulty level: Pass@1 and mean tokens of each model, the minimal length and each model's ratio
    to it where the task knows it. Empty when no evaluation of ``benchmark`` has levels."""
    models, _, cells = grid(evals)
    models = [m for m in models if cells.get((m, benchmark), {}).get("by_level")]
    if not models:
        return ""
    levels = sorted({lv for m in models for lv in cells[(m, benchmark)]["by_level"]}, key=level_key)
    minimal = {lv: _minimal(cells, models, benchmark, lv) for lv in levels}
    show_min = any(v is not None for v in minimal.values())
    header = ["level"] + (["minimal #tok"] if show_min else [])
    for m in models:
        header += [f"{m} Pass@1", f"{m} #tok" + (" (× minimal)" if show_min else "")]
    rows = []
    for lv in levels:
        row = [lv] + ([_tok(minimal[lv])] if show_min else [])
        for m in models:
            g = cells[(m, benchmark)]["by_level"].get(lv, {})
            tok = g.get("mean_tokens")
            ratio = f" ({tok / minimal[lv]:.2f}×)" if show_min and tok is not None and minimal[lv] else ""
            row += [_pct(g.get("pass_at_1")), _tok(tok) + ratio]
        rows.append(row)
    return _md(header, rows)


def level_key(level: str):
    return (0, float(level)) if level.replace(".", "", 1).lstrip("-").isdigit() else (1, level)


def _minimal(cells: dict, models: Sequence[str], benchmark: str, level: str) -> float | None:
    for m in models:
        value = cells[(m, benchmark)]["by_level"].get(level, {}).get("minimal_tokens")
        if value is not None:
            return value
    return None


def adherence_table(evals: Sequence[dict]) -> str:
    """Budget adherence of every evaluation run with a budget; empty when none was."""
    rows = []
    for e in evals:
        a = e.get("budget_adherence")
        if a:
            rho = "–" if a.get("spearman") is None else f"{a['spearman']:.3f}"
            rows.append([model_name(e), benchmark_display(e["benchmark"]), f"{a['mean_budget']:.0f}",
                         f"{a['mean_rel_error']:.3f}", rho, _pct(a.get("within_10pct"))])
    # Pipes inside a cell must be escaped or markdown splits the column.
    header = ["model", "benchmark", "mean budget N", "mean \\|L−N\\|/N", "Spearman ρ(L, N)", "within 10% (%)"]
    return _md(header, rows) if rows else ""


def targets_table(runs: Sequence[Run]) -> str:
    """Per run: problems in the target map, how many were solved in stage 1, and the targets' spread."""
    rows = []
    for run in runs:
        if not run.targets:
            continue
        solved = [v for v in run.targets.values() if v != run.sentinel]
        q = quantiles(solved, (0.1, 0.5, 0.9))
        rows.append([run.name, str(len(run.targets)), str(len(solved)), *(_tok(x) for x in q)])
    header = ["run", "problems", "solved in stage 1", "P10 target", "median target", "P90 target"]
    return _md(header, rows) if rows else ""


def quantiles(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    """Linear-interpolation quantiles (numpy's default), None for no values."""
    s = sorted(values)
    if not s:
        return [None for _ in qs]
    out = []
    for q in qs:
        pos = q * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        out.append(s[lo] + (s[hi] - s[lo]) * (pos - lo))
    return out


# --------------------------------------------------------------------------------------------------
# The report


def build_report(paths: Sequence[str | Path], out: Path, base: str | None = None) -> str:
    """Write report.md and the plots into ``out``; returns the markdown."""
    evals, runs = collect(paths)
    models, benches, _ = grid(evals)
    if base and base not in models:
        raise ReportError(f"--base {base!r} is not one of the models found: {', '.join(models) or 'none'}; "
                          "use a label as it appears in the table (set it with `lapo eval --label`).")
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# LAPO report", ""]
    if evals:
        parts += ["## Pass@1 (%) and mean completion tokens", "", main_table(evals, base), ""]
    for b in benches:
        table = level_table(evals, b)
        if table:
            parts += [f"## {benchmark_display(b)} by difficulty level", "", table, ""]
    for title, table in (("Budget adherence", adherence_table(evals)), ("Stage-1 targets", targets_table(runs))):
        if table:
            parts += [f"## {title}", "", table, ""]
    parts += _plots(evals, runs, out)
    text = "\n".join(parts).rstrip() + "\n"
    (out / "report.md").write_text(text, encoding="utf-8")
    return text


def _plots(evals: Sequence[dict], runs: Sequence[Run], out: Path) -> list[str]:
    """The report's "Plots" section: one image link per plot written."""
    from lapo.plots import plot_all  # here, not above: lapo.plots builds on this module's grid and helpers

    made = plot_all(evals, runs, out)
    lines = ["## Plots", ""] if made else []
    for title, path in made:
        lines += [f"![{title}]({path.name})", ""]
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lapo report", description="Markdown tables and PNG plots from `lapo eval` "
                                "folders and `lapo train` run directories.")
    p.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_EVAL_DIR",
                   help="eval folders (summary.json, searched at any depth) and/or run directories")
    p.add_argument("--base", help="model label to compare against (adds Δ Pass@1 and Δ #tok columns)")
    p.add_argument("--out", default="report", help="output folder for report.md and the PNGs (default: report)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        text = build_report(args.paths, Path(args.out), args.base)
    except ReportError as err:
        print(f"lapo report: {err}", file=sys.stderr)
        return 2
    print(text)
    print(f"wrote {Path(args.out) / 'report.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
