"""Which stages a `lapo train` run trains, from which checkpoint, and what that checkpoint restores.

A fresh run refuses a stage folder that already holds a run (no silent overwrite). ``--resume`` skips
finished stages (``complete.json``) and continues each unfinished one from its newest checkpoint that has
its ``length_stats.jsonl`` (a kill while saving leaves one without), or from the checkpoint given.

The checkpoint's length records (those of the steps before it) and, in stage 2, its live target map are
read here, while planning: a truncated or corrupt file stops the run before any model loads, with its path
and line. A resumed run then records exactly what an uninterrupted one records (docs/TRAINING.md, "Resume").
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from lapo.core.io import TARGETS_FILE, load_targets
from lapo.core.stats import LengthStats
from lapo.errors import LapoError
from lapo.train.config import RunConfig, StageConfig
from lapo.train.rundir import STATS_FILE, is_complete

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


@dataclasses.dataclass
class StagePlan:
    """One stage of a run: whether it trains, from which checkpoint, and what that checkpoint restores."""

    stage: str
    cfg: StageConfig
    run: bool  # False: already complete (resume skips it)
    checkpoint: Path | None = None
    stats: LengthStats = dataclasses.field(default_factory=LengthStats)  # records before the checkpoint's step
    live_targets: dict[str, int] | None = None  # stage 2: the (tightened) target map saved with the checkpoint
    engine: dict | None = None  # what the stage trained with (lapo.train.distributed.engine_of), for complete.json

    @property
    def stage_dir(self) -> Path:
        return Path(self.cfg.grpo.output_dir)


def checkpoint_step(path: Path) -> int | None:
    """The step of a ``checkpoint-<step>`` folder, None for any other name."""
    match = _CHECKPOINT.fullmatch(Path(path).name)
    return int(match.group(1)) if match else None


def checkpoints(stage_dir: Path) -> list[Path]:
    """The stage's checkpoint folders, oldest first."""
    found = [p for p in Path(stage_dir).glob("checkpoint-*") if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(stage_dir: Path, before: int | None = None) -> Path | None:
    """The newest checkpoint (older than step ``before``) whose statistics were saved."""
    usable = [p for p in checkpoints(stage_dir) if (p / STATS_FILE).is_file()]
    if before is not None:
        usable = [p for p in usable if checkpoint_step(p) < before]
    return usable[-1] if usable else None


def has_run(stage_dir: Path) -> bool:
    return is_complete(stage_dir) or bool(checkpoints(stage_dir))


def plan_stages(run: RunConfig) -> list[StagePlan]:
    """Which stages run and from which checkpoint, with that checkpoint's records and targets read in.

    Refuses to overwrite a run without ``--resume``, a checkpoint without its statistics, a ``--resume``
    path that belongs to no selected stage, and unreadable checkpoint files.
    """
    explicit = Path(run.resume) if isinstance(run.resume, str) else None
    plans = [_plan_stage(run, stage, explicit) for stage in run.selected]
    if explicit is not None and not any(p.checkpoint == explicit for p in plans):
        raise LapoError(f"--resume {explicit} is not a checkpoint of this run's {' or '.join(run.selected)} stage.")
    return [restore(p) for p in plans]


def _plan_stage(run: RunConfig, stage: str, explicit: Path | None) -> StagePlan:
    cfg = run.stages[stage]
    stage_dir = Path(cfg.grpo.output_dir)
    if not run.resume:
        if has_run(stage_dir):
            raise LapoError(
                f"{stage_dir} already holds a {stage} run; pass --resume to continue it, or set a new output_dir."
            )
        return StagePlan(stage, cfg, True)
    if explicit is not None and explicit.parent.resolve() == stage_dir.resolve():
        if not (explicit / STATS_FILE).is_file():
            raise LapoError(
                f"checkpoint {explicit} has no {STATS_FILE} (the run stopped while saving it); resume from an "
                f"earlier checkpoint, e.g. {latest_checkpoint(stage_dir)}."
            )
        return StagePlan(stage, cfg, True, explicit)
    if is_complete(stage_dir):
        return StagePlan(stage, cfg, False)
    return StagePlan(stage, cfg, True, None if explicit else latest_checkpoint(stage_dir))


def restore(plan: StagePlan) -> StagePlan:
    """The plan with its checkpoint's records (the steps before the checkpoint) and live targets read in."""
    if plan.checkpoint is None:
        return plan
    step = checkpoint_step(plan.checkpoint)
    if step is None:
        raise LapoError(f"--resume {plan.checkpoint} is not a checkpoint-<step> folder; pass one of those.")
    targets_file = plan.checkpoint / TARGETS_FILE
    try:
        stats = LengthStats.load(plan.checkpoint / STATS_FILE).truncated(step - 1)
        live = load_targets(targets_file) if plan.stage == "internalization" and targets_file.is_file() else None
    except ValueError as error:
        raise LapoError(_unreadable(plan, step, error)) from None
    return dataclasses.replace(plan, stats=stats, live_targets=live)


def _unreadable(plan: StagePlan, step: int, error: ValueError) -> str:
    """The file's own error (path and line) and how to go on: one sentence."""
    earlier = latest_checkpoint(plan.stage_dir, before=step)
    start = f"the earlier {earlier}" if earlier else f"the start of the {plan.stage} stage"
    return f"cannot resume: {str(error).rstrip('.')}; remove {plan.checkpoint} and pass --resume again to continue from {start}."
