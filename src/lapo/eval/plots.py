"""The PNG plots of ``lapo report``, drawn with matplotlib's object API on the Agg canvas (no pyplot state,
no display needed); matplotlib is imported only inside the functions that draw.

- :func:`plot_frontier` (``frontier.png``): Pass@1 against mean tokens, one colour per model, one marker
  per benchmark, dashed = each benchmark's efficiency frontier;
- :func:`plot_levels` (``levels.png``): mean tokens and Pass@1 per difficulty level per model, beside the
  minimal length;
- :func:`plot_targets` (``targets.png``): the distribution of stage-1 targets of each run;
- :func:`plot_training` (``training-<run>.png``): reward, accuracy and mean length against step, both stages
  end to end, from metric names matched leniently in the training logs.

Each returns the path written, or None when its inputs hold nothing to plot; :func:`plot_all` writes every
one a report has.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from lapo.core.io import slug
from lapo.core.length import median
from lapo.eval.results import Run, benchmark_display, grid, level_key

# --------------------------------------------------------------------------------------------------
# Training logs


# Which log keys feed each training panel: lapo's and TRL's exact names first, then looser patterns, so logs
# of other versions (or a "train/" prefix) still plot.
PANELS = (
    ("Reward", ("reward",), (r"^rewards/[^/]+/mean$",)),
    ("Accuracy", ("lapo/accuracy", "accuracy"), (r"accuracy(/mean)?$",)),
    ("Mean completion tokens", ("lapo/mean_length", "completions/mean_length"), (r"mean_length$",)),
    ("Band hit rate (stage 1)", ("lapo/band_hit_rate",), (r"band_hit",)),
    ("Mean |L − N| / N (stage 2)", ("lapo/budget_deviation",), (r"budget_deviation|rel_error",)),
)


def _clean(entry: dict) -> dict:
    return {k.removeprefix("train/"): v for k, v in entry.items()}


def pick_key(entries: Sequence[dict], exact: Sequence[str], patterns: Sequence[str]) -> str | None:
    """The first metric name of ``exact`` present in the log, else the first key matching a pattern."""
    keys = {k for e in entries for k, v in _clean(e).items() if isinstance(v, (int, float))}
    for name in exact:
        if name in keys:
            return name
    for pattern in patterns:
        hits = sorted(k for k in keys if re.search(pattern, k) and "std" not in k)
        if hits:
            return hits[0]
    return None


def series(entries: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one metric, sorted by step; a step logged twice keeps its last value."""
    by_step: dict[float, float] = {}
    for e in map(_clean, entries):
        value, step = e.get(key), e.get("step")
        if isinstance(value, (int, float)) and isinstance(step, (int, float)) and value == value:
            by_step[step] = float(value)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def training_panels(run: Run) -> list[tuple[str, dict[str, tuple[list[float], list[float]]]]]:
    """(panel title, {stage: (steps, values)}) for every panel some stage logged."""
    panels = []
    for title, exact, patterns in PANELS:
        per_stage = {}
        for stage, entries in run.logs.items():
            key = pick_key(entries, exact, patterns)
            if key is not None:
                per_stage[stage] = series(entries, key)
        if any(steps for steps, _ in per_stage.values()):
            panels.append((title, per_stage))
    return panels


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (a window of 1 returns the values)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


# --------------------------------------------------------------------------------------------------
# Plots


STYLE = {
    "font.size": 11, "axes.titlesize": 13, "axes.titleweight": "bold", "axes.labelsize": 11,
    "legend.fontsize": 9.5, "legend.frameon": False, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": 150,
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")
STAGE_COLORS = {"discovery": "#1f77b4", "internalization": "#d62728"}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _save(fig, path: Path) -> Path:
    fig.savefig(path)
    return path


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The efficiency frontier: points no other point beats on both fewer tokens and higher accuracy."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def plot_frontier(evals: Sequence[dict], path: Path) -> Path | None:
    """Pass@1 against mean tokens: colour = model, marker = benchmark, dashed = each benchmark's frontier."""
    import matplotlib

    models, benches, cells = grid(evals)
    cells = {k: v for k, v in cells.items() if v.get("pass_at_1") is not None and v.get("mean_tokens")}
    if not cells:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(9, 5.5)
        ax = fig.subplots()
        colors = dict(zip(models, _colors(len(models))))
        markers = {b: MARKERS[i % len(MARKERS)] for i, b in enumerate(benches)}
        for b in benches:
            pts = [(cells[(m, b)]["mean_tokens"], 100 * cells[(m, b)]["pass_at_1"]) for m in models if (m, b) in cells]
            front = pareto(pts)
            if len(front) > 1:
                ax.plot(*zip(*front), ls="--", color="grey", lw=1, zorder=1)
        for (m, b), e in cells.items():
            x, y = e["mean_tokens"], 100 * e["pass_at_1"]
            ax.scatter(x, y, s=90, color=colors[m], marker=markers[b], edgecolor="black", lw=0.6, zorder=3)
        _frontier_axes(ax, cells, models, benches, colors, markers)
    return _save(fig, path)


def _frontier_axes(ax, cells, models, benches, colors, markers) -> None:
    from matplotlib.lines import Line2D

    xs = [e["mean_tokens"] for e in cells.values()]
    if max(xs) / max(min(xs), 1e-9) > 8:
        ax.set_xscale("log")
    ax.set_xlabel("mean completion tokens (fewer is cheaper)")
    ax.set_ylabel("Pass@1 (%)")
    ax.set_title("Accuracy against tokens: the efficiency frontier")
    ax.text(0.01, 0.98, "better ↖", transform=ax.transAxes, va="top", fontsize=10, color="dimgray")
    ax.margins(x=0.12, y=0.12)
    model_handles = [Line2D([], [], marker="o", ls="", color=colors[m], markersize=9, label=m) for m in models]
    # Legends outside the axes: points sit anywhere, and a legend must never hide one.
    legend = ax.legend(handles=model_handles, title="model", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.add_artist(legend)
    bench_handles = [Line2D([], [], marker=markers[b], ls="", color="lightgray", markeredgecolor="black",
                            markersize=9, label=benchmark_display(b)) for b in benches]
    bench_handles.append(Line2D([], [], ls="--", color="grey", label="frontier per benchmark"))
    ax.legend(handles=bench_handles, title="benchmark", loc="lower left", bbox_to_anchor=(1.01, 0.0))


def plot_levels(evals: Sequence[dict], path: Path) -> Path | None:
    """Mean tokens (top) and Pass@1 (bottom) per difficulty level, one line per model, the minimal length dashed."""
    import matplotlib

    models, benches, cells = grid(evals)
    benches = [b for b in benches if any(cells.get((m, b), {}).get("by_level") for m in models)]
    if not benches:
        return None
    colors = dict(zip(models, _colors(len(models))))
    with matplotlib.rc_context(STYLE):
        fig = _figure(5.2 * len(benches) + 1.5, 7.5)
        axes = fig.subplots(2, len(benches), sharex="col", squeeze=False)
        for col, b in enumerate(benches):
            _levels_column(axes[0][col], axes[1][col], b, models, cells, colors)
        fig.suptitle("Length against difficulty: does thinking follow the problem?", fontsize=14, fontweight="bold")
    return _save(fig, path)


def _levels_column(ax_tok, ax_acc, bench, models, cells, colors) -> None:
    minimal: dict[str, float] = {}
    for m in models:
        levels = (cells.get((m, bench)) or {}).get("by_level") or {}
        order = sorted(levels, key=level_key)
        if not order:
            continue
        x = [float(lv) if level_key(lv)[0] == 0 else i for i, lv in enumerate(order)]
        ax_tok.plot(x, [levels[lv]["mean_tokens"] for lv in order], marker="o", lw=2, color=colors[m], label=m)
        acc = [100 * levels[lv]["pass_at_1"] if levels[lv]["pass_at_1"] is not None else float("nan") for lv in order]
        ax_acc.plot(x, acc, marker="o", lw=2, color=colors[m], label=m)
        for xi, lv in zip(x, order):
            if levels[lv].get("minimal_tokens") is not None:
                minimal.setdefault(xi, levels[lv]["minimal_tokens"])
    if minimal:
        xs = sorted(minimal)
        ax_tok.plot(xs, [minimal[v] for v in xs], ls="--", color="black", lw=1.5, marker="x",
                    label="minimal correct length")
    ax_tok.set_title(benchmark_display(bench))
    ax_tok.set_ylabel("mean completion tokens")
    ax_tok.set_ylim(bottom=0)
    ax_tok.legend(loc="upper left")
    ax_acc.set_ylabel("Pass@1 (%)")
    ax_acc.set_ylim(-2, 102)
    ax_acc.set_xlabel("difficulty level")
    ax_acc.xaxis.get_major_locator().set_params(integer=True)


def plot_targets(runs: Sequence[Run], path: Path) -> Path | None:
    """Histogram of each run's stage-1 targets (never-solved problems, at the sentinel, left out and counted)."""
    import matplotlib

    runs = [r for r in runs if r.targets]
    if not runs:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(8, 3.2 * len(runs) + 0.6)
        axes = fig.subplots(len(runs), 1, squeeze=False)
        for ax, run in zip(axes[:, 0], runs):
            solved = [v for v in run.targets.values() if v != run.sentinel]
            unsolved = len(run.targets) - len(solved)
            if solved:
                ax.hist(solved, bins=_bins(solved), color="#4c72b0", edgecolor="white")
                med = median(solved)
                ax.axvline(med, color="black", ls="--", lw=1.5, label=f"median {med:.0f}")
                ax.legend(loc="upper right")
            note = f", {unsolved} never solved (sentinel {run.sentinel}) not shown" if unsolved else ""
            ax.set_title(f"{run.name}: {len(run.targets)} problems{note}", fontsize=11)
            ax.set_ylabel("problems")
        axes[-1, 0].set_xlabel("stage-1 target length N (median correct tokens)")
        fig.suptitle("Stage-1 targets handed to stage 2", fontsize=14, fontweight="bold")
    return _save(fig, path)


def _bins(values: Sequence[int]):
    """One bin per token for narrow ranges (targets are whole tokens: no empty comb teeth), else 40."""
    lo, hi = min(values), max(values)
    return [v - 0.5 for v in range(int(lo), int(hi) + 2)] if hi - lo <= 60 else 40


def plot_training(run: Run, path: Path) -> Path | None:
    """Every logged panel against step; stage 2 continues the step axis after stage 1, on a shaded band."""
    import matplotlib

    panels = training_panels(run)
    if not panels:
        return None
    offsets = {"discovery": 0.0, "internalization": _last_step(run.logs.get("discovery", []))}
    with matplotlib.rc_context(STYLE):
        fig = _figure(9, 2.4 * len(panels) + 0.8)
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        end = max(s + offsets.get(stage, 0.0) for _, per in panels for stage, (steps, _) in per.items() for s in steps)
        for ax, (title, per_stage) in zip(axes, panels):
            for stage, (steps, values) in per_stage.items():
                shifted = [s + offsets.get(stage, 0.0) for s in steps]
                _plot_series(ax, shifted, values, STAGE_COLORS.get(stage, "gray"), stage)
            ax.set_ylabel(title, fontsize=10)
            if "internalization" in run.logs and "discovery" in run.logs:
                ax.axvspan(offsets["internalization"], end, color=STAGE_COLORS["internalization"], alpha=0.05)
                ax.axvline(offsets["internalization"], color="gray", ls=":", lw=1)
        axes[0].legend(loc="best")
        axes[-1].set_xlabel("training step (stage 2 continues after stage 1)")
        fig.suptitle(f"Training curves: {run.name}", fontsize=14, fontweight="bold")
    return _save(fig, path)


def _last_step(entries: Sequence[dict]) -> float:
    steps = [e["step"] for e in entries if isinstance(e.get("step"), (int, float))]
    return float(max(steps)) if steps else 0.0


def _plot_series(ax, x, y, color, stage) -> None:
    """Raw values, and a moving average on top once there are enough points to be noisy."""
    label = {"discovery": "stage 1: Discovery", "internalization": "stage 2: Internalization"}.get(stage, stage)
    if len(y) >= 20:
        ax.plot(x, y, color=color, alpha=0.3, lw=1)
        ax.plot(x, smooth(y, max(3, len(y) // 15)), color=color, lw=2, label=label + " (moving avg)")
    else:
        ax.plot(x, y, color=color, lw=2, marker="o", markersize=4, label=label)


# --------------------------------------------------------------------------------------------------
# Every plot of a report


def plot_all(evals: Sequence[dict], runs: Sequence[Run], out: Path) -> list[tuple[str, Path]]:
    """Write every plot the inputs allow into ``out``; (title, path) of each one written, in report order."""
    made = [("Accuracy against tokens", plot_frontier(evals, out / "frontier.png")),
            ("Tokens and accuracy per difficulty level", plot_levels(evals, out / "levels.png")),
            ("Stage-1 targets", plot_targets(runs, out / "targets.png"))]
    for run in runs:
        made.append((f"Training curves of {run.name}", plot_training(run, out / f"training-{slug(run.name, 'run')}.png")))
    return [(title, path) for title, path in made if path is not None]


def plot_sweep(series: dict[str, list[dict]], path: Path) -> Path | None:
    """Produced against requested length (``lapo eval --budget sweep:...``), one line per model; the diagonal
    is perfect adherence."""
    import matplotlib

    series = {k: [p for p in v if p.get("requested")] for k, v in series.items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(7, 5.5)
        ax = fig.subplots()
        top = max(max(p["requested"], p["produced"]) for v in series.values() for p in v)
        ax.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="produced = requested")
        for (label, points), color in zip(series.items(), _colors(len(series))):
            points = sorted(points, key=lambda p: p["requested"])
            ax.plot([p["requested"] for p in points], [p["produced"] for p in points], marker="o", lw=2,
                    color=color, label=label)
        ax.set_xlabel("requested budget N (tokens)")
        ax.set_ylabel("produced mean tokens")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left")
        ax.set_title("Budget adherence: produced against requested length")
    return _save(fig, path)
