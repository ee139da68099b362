"""The hand-off between the stages: stage 1's length records become one target per problem (``targets.json``),
which stage 2 reads back, checks against its own problems, and starts from stage 1's final model.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lapo.core import io
from lapo.core.stats import LengthStats
from lapo.errors import LapoError
from lapo.train.config import RunConfig, StageConfig
from lapo.train.rundir import FINAL_DIR, STATS_FILE, TARGETS_FILE, main_process_only

logger = logging.getLogger("lapo.train")


def stage1_dir(run: RunConfig) -> Path:
    return Path(run.stages["internalization"].lapo.stage1_dir or run.run_dir)


def make_targets(lengths: LengthStats, problems, cfg: StageConfig, fallback: int) -> dict[str, int]:
    """One target per stage-1 problem: the policy's median correct length, or the fallback sentinel."""
    return lengths.targets(cfg.lapo.target_policy, fallback=fallback, problem_ids=[p.id for p in problems])


def load_handoff(run: RunConfig, problems) -> dict[str, int]:
    """Stage 2's target map: targets_path, else the stage-1 run's targets.json, else its length statistics."""
    cfg = run.stages["internalization"]
    source = stage1_dir(run)
    if cfg.lapo.targets_path:
        targets = io.load_targets(cfg.lapo.targets_path)
    elif (source / TARGETS_FILE).is_file():
        targets = io.load_targets(source / TARGETS_FILE)
    elif (source / "discovery" / STATS_FILE).is_file():
        lengths = LengthStats.load(source / "discovery" / STATS_FILE)
        targets = make_targets(lengths, problems, cfg, run.fallback_target())
    else:
        raise LapoError(
            f"stage 2 needs a stage-1 target map, but {source} has neither {TARGETS_FILE} nor "
            f"discovery/{STATS_FILE}; run `lapo train --stage discovery` first, or set stage1_dir or targets_path."
        )
    return check_targets(targets, problems, run.fallback_target())


def check_targets(targets: dict[str, int], problems, fallback: int) -> dict[str, int]:
    """Stage 2's map restricted to its problems; a map that matches none of them is a configuration error."""
    ids = [p.id for p in problems]
    matched = {pid: targets[pid] for pid in ids if pid in targets}
    if not matched:
        sample = ", ".join(sorted(targets)[:3])
        raise LapoError(
            f"the target map matches none of the {len(ids)} stage-2 problems (map ids look like {sample}); "
            "train stage 2 on the dataset stage 1 ran on, with the same id_field."
        )
    missing = len(ids) - len(matched)
    if missing:
        logger.warning("%d of %d stage-2 problems have no stage-1 target; they get the fallback %d", missing, len(ids), fallback)
    return {pid: matched.get(pid, fallback) for pid in ids}


def stage2_init(run: RunConfig) -> str:
    """Stage 2 starts from stage 1's final weights (or, with only targets_path, from model_name_or_path)."""
    cfg = run.stages["internalization"]
    final = stage1_dir(run) / "discovery" / FINAL_DIR
    if (final / "config.json").is_file():
        return str(final)
    if cfg.lapo.targets_path and not cfg.lapo.stage1_dir and cfg.model.model_name_or_path:
        return cfg.model.model_name_or_path
    raise LapoError(
        f"stage 2 starts from stage 1's final model, but {final} has none; finish stage 1 first "
        "(`lapo train --stage discovery --resume`), or set stage1_dir to a finished stage-1 run."
    )


def save_handoff(run: RunConfig, targets: dict[str, int]) -> None:
    main_process_only(io.save_targets, targets, run.run_dir / TARGETS_FILE)
    solved = sum(v != run.fallback_target() for v in targets.values())
    logger.info("hand-off: %d targets (%d solved in stage 1) -> %s", len(targets), solved, run.run_dir / TARGETS_FILE)
