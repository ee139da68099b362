"""The two stages on TRL: stage 1 (Discovery, LAPO-D) and stage 2 (Internalization, LAPO-I).

Stage 1 rewards completions with LAPO-D's band reward and records every group's correct lengths; stage 2
trains with LAPO-I's Gaussian reward on prompts that carry "I will answer the question with N tokens."
(arXiv 2507.15758, section 3; docs/METHOD.md). Each builds its dataset and reward and hands them to
:func:`lapo.train.trainer.train_stage`.
"""

from __future__ import annotations

import logging
from typing import Any

from lapo.core.stats import LengthStats
from lapo.data.problems import Problem, load_problems
from lapo.data.prompts import BudgetedPrompts, encode_prompts, prompt_rows
from lapo.errors import LapoError
from lapo.train.callbacks import LogHistoryCallback, StatsCallback
from lapo.train.config import StageConfig
from lapo.train.resume import StagePlan
from lapo.train.rewards import discovery_reward, internalization_reward
from lapo.train.rundir import LOG_FILE
from lapo.train.trainer import train_stage

logger = logging.getLogger("lapo.train")


def load_stage_problems(cfg: StageConfig) -> list[Problem]:
    """The stage's problems (validates fields, answers and ids before any model loads)."""
    c = cfg.lapo
    return load_problems(
        c.dataset,
        split=c.dataset_split,
        problem_field=c.problem_field,
        answer_field=c.answer_field,
        id_field=c.id_field,
        level_field=c.level_field,
        data_dir=c.data_dir,
        limit=c.max_problems,
        seed=cfg.grpo.seed,
    )


def build_dataset(problems, tokenizer, cfg: StageConfig, budgets: BudgetedPrompts | None = None):
    """A TRL dataset of prompts; with ``budgets``, stage 2's prompts carry their current budget sentence."""
    from datasets import Dataset

    fmt = cfg.lapo.prompt_format()
    rows = prompt_rows(problems, tokenizer, fmt)
    rows = _drop_long_prompts(rows, tokenizer, cfg.lapo.max_prompt_length, budgets)
    dataset = Dataset.from_dict(rows)
    return dataset.with_transform(budgets) if budgets is not None else dataset


def _drop_long_prompts(rows: dict, tokenizer: Any, limit: int | None, budgets) -> dict:
    """Leave out prompts over ``limit`` tokens (the reference's 1024), counting the longest budget sentence."""
    if not limit:
        return rows
    prompts = budgets({**rows})["prompt"] if budgets is not None else rows["prompt"]
    keep = [len(ids) <= limit for ids in encode_prompts(tokenizer, prompts)]  # counted as TRL encodes them
    if not any(keep):
        raise LapoError(f"every prompt is longer than max_prompt_length={limit} tokens; raise max_prompt_length.")
    if not all(keep):
        logger.warning("left out %d of %d problems whose prompt exceeds %d tokens", keep.count(False), len(keep), limit)
    return {k: [v for v, ok in zip(values, keep) if ok] for k, values in rows.items()}


def run_discovery(plan: StagePlan, problems, tokenizer, callbacks=()) -> LengthStats:
    """Stage 1 (LAPO-D); returns every group's correct lengths (a resume starts from the checkpoint's)."""
    cfg = plan.cfg
    lengths = plan.stats
    reward = discovery_reward(cfg.lapo, cfg.grpo.num_generations, lengths)
    dataset = build_dataset(problems, tokenizer, cfg)
    own = [StatsCallback(lengths, plan.stage_dir), LogHistoryCallback(plan.stage_dir / LOG_FILE)]
    train_stage(cfg, cfg.model.model_name_or_path, tokenizer, dataset, reward, [*own, *callbacks], plan)
    return lengths


def run_internalization(plan: StagePlan, problems, tokenizer, targets, fallback, init, callbacks=()):
    """Stage 2 (LAPO-I) from ``init`` with the hand-off ``targets`` (tightened in place when enabled)."""
    cfg = plan.cfg
    lengths = plan.stats
    live = dict(plan.live_targets if plan.live_targets is not None else targets)  # tightened as of the checkpoint
    budgets = BudgetedPrompts(live, fallback, cfg.lapo.prompt_format())
    reward = internalization_reward(cfg.lapo, cfg.grpo.num_generations, lengths, live)
    reward.tightened = sum(live[k] < v for k, v in targets.items() if k in live)  # the count survives a resume
    dataset = build_dataset(problems, tokenizer, cfg, budgets)
    own = [StatsCallback(lengths, plan.stage_dir, live), LogHistoryCallback(plan.stage_dir / LOG_FILE)]
    train_stage(cfg, init, tokenizer, dataset, reward, [*own, *callbacks], plan)
    return lengths, live
