"""The trainer callbacks of a `lapo train` run: the one writer of the length statistics, the log history, and
the console's metrics line. They run on the main process only; reward functions never write files.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import ProgressCallback, TrainerCallback

from lapo.core.io import atomic_write_text, save_targets
from lapo.core.stats import LengthStats
from lapo.train.rundir import STATS_FILE, TARGETS_FILE


class StatsCallback(TrainerCallback):
    """Saves the length statistics (and stage 2's live targets) into every checkpoint and the stage folder.

    The reward functions only record in memory; this is the one writer, on the main process, so a resumed
    run restores exactly what the checkpoint's weights had seen (issue 6: nothing lost, nothing twice).
    """

    def __init__(self, stats: LengthStats, stage_dir: Path, targets: dict | None = None):
        self.stats, self.stage_dir, self.targets = stats, Path(stage_dir), targets

    def _write(self, folder: Path) -> None:
        if self.targets is not None:
            save_targets(self.targets, folder / TARGETS_FILE)
        self.stats.save(folder / STATS_FILE)  # last: its presence marks a checkpoint as resumable

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._write(Path(args.output_dir) / f"checkpoint-{state.global_step}")
            self._write(self.stage_dir)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._write(self.stage_dir)


class LogHistoryCallback(TrainerCallback):
    """``log_history.jsonl``: one JSON line per logging step, rewritten from the restored state on resume."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:  # drop lines logged after the checkpoint a resume starts from
            text = "".join(json.dumps(entry) + "\n" for entry in state.log_history)
            atomic_write_text(self.path, text)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({**logs, "step": state.global_step}) + "\n")


METRICS_LINE = (
    ("reward", "reward"),
    ("lapo/accuracy", "acc"),
    ("lapo/mean_length", "len"),
    ("lapo/band_hit_rate", "band"),
    ("lapo/budget_deviation", "|L-N|/N"),
    ("lapo/targets_tightened", "tightened"),
    ("kl", "kl"),
    ("learning_rate", "lr"),
)


class MetricsLineCallback(ProgressCallback):
    """Transformers' progress bar (with ETA), printing one compact metrics line per logging step."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (state.is_world_process_zero and self.training_bar is not None and logs):
            return
        parts = [f"{label} {logs[key]:.4g}" for key, label in METRICS_LINE if isinstance(logs.get(key), (int, float))]
        if parts:
            self.training_bar.write(f"[{self.stage}] step {state.global_step}/{state.max_steps} | " + " | ".join(parts))
