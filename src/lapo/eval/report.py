"""`lapo report`: markdown tables and PNG plots from evaluation results and training run directories.

    lapo report evals/base evals/lapo-d evals/lapo-i runs/counting --base base --out report

Each argument is an evaluation folder (one ``summary.json``), a folder holding several (found at any
depth), or a run directory (``targets.json``, ``discovery/log_history.jsonl``,
``internalization/log_history.jsonl``). Writes ``report.md`` (also printed) and, where the inputs allow,
the plots of :mod:`lapo.eval.plots` (``frontier.png``, ``levels.png``, ``targets.png``, ``training-<run>.png``).

Tables are plain functions of the summaries (tested on fixed values); matplotlib is imported only to plot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from lapo.core.length import percentile
from lapo.errors import ArgumentParser, LapoError, command
from lapo.eval.results import (
    Run,
    benchmark_display,
    collect,
    grid,
    level_key,
    model_name,
)

# --------------------------------------------------------------------------------------------------
# Tables (pure)


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
            signed = "–" if a.get("signed_rel_error") is None else f"{a['signed_rel_error']:+.3f}"
            rows.append([model_name(e), benchmark_display(e["benchmark"]), f"{a['mean_budget']:.0f}",
                         f"{a['mean_rel_error']:.3f}", signed, _pct(a.get("off_budget")), rho,
                         _pct(a.get("within_10pct"))])
    # Pipes inside a cell must be escaped or markdown splits the column. Summaries written before the signed
    # error and the off-budget share existed show a dash there.
    header = ["model", "benchmark", "mean budget N", "mean \\|L−N\\|/N", "mean (L−N)/N", "off budget (%)",
              "Spearman ρ(L, N)", "within 10% (%)"]
    return _md(header, rows) if rows else ""


def targets_table(runs: Sequence[Run]) -> str:
    """Per run: problems in the target map, how many were solved in stage 1, and the targets' spread."""
    rows = []
    for run in runs:
        if not run.targets:
            continue
        solved = [v for v in run.targets.values() if v != run.sentinel]
        q = [percentile(solved, p) if solved else None for p in (10, 50, 90)]
        rows.append([run.name, str(len(run.targets)), str(len(solved)), *(_tok(x) for x in q)])
    header = ["run", "problems", "solved in stage 1", "P10 target", "median target", "P90 target"]
    return _md(header, rows) if rows else ""


# --------------------------------------------------------------------------------------------------
# The report


def build_report(paths: Sequence[str | Path], out: Path, base: str | None = None) -> str:
    """Write report.md and the plots into ``out``; returns the markdown."""
    evals, runs = collect(paths)
    models, benches, _ = grid(evals)
    if base and base not in models:
        raise LapoError(f"--base {base!r} is not one of the models found: {', '.join(models) or 'none'}; "
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
    from lapo.eval.plots import (
        plot_all,  # matplotlib is imported only when a report is written
    )

    made = plot_all(evals, runs, out)
    lines = ["## Plots", ""] if made else []
    for title, path in made:
        lines += [f"![{title}]({path.name})", ""]
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="lapo report", description="Markdown tables and PNG plots from `lapo eval` "
                                "folders and `lapo train` run directories.")
    p.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_EVAL_DIR",
                   help="eval folders (summary.json, searched at any depth) and/or run directories")
    p.add_argument("--base", help="model label to compare against (adds Δ Pass@1 and Δ #tok columns)")
    p.add_argument("--out", default="report", help="output folder for report.md and the PNGs (default: report)")
    return p


@command("report")
def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    text = build_report(args.paths, Path(args.out), args.base)  # bad input: LapoError, one line (@command)
    print(text)
    print(f"wrote {Path(args.out) / 'report.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
