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
from lapo.train.rewards import discovery_reward, internalization_reward, method_reward
from lapo.train.rollouts import rollout_plan
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


def run_method(plan: StagePlan, problems, tokenizer, spec, callbacks=()) -> LengthStats:
    """A single-stage length-control method (lapo.methods: plain, L1, ThinkPrune, Kimi, ...) in the run's first
    stage slot: its prompts (L1's budget sentence with N drawn per problem, seeded), its reward, its cap schedule."""
    from functools import partial

    from lapo.methods.registry import cap_at

    cfg, lengths = plan.cfg, plan.stats
    total = rollout_plan(cfg.grpo, len(problems)).steps
    reward = method_reward(cfg.lapo, spec, cfg.grpo.num_generations, lengths,
                           max_length=cfg.grpo.max_completion_length, total_steps=total)
    dataset = build_method_dataset(problems, tokenizer, cfg, spec)
    caps = spec.knobs.get("caps")
    schedule = partial(cap_at, caps, total_steps=total) if caps else None
    own = [StatsCallback(lengths, plan.stage_dir), LogHistoryCallback(plan.stage_dir / LOG_FILE)]
    train_stage(cfg, cfg.model.model_name_or_path, tokenizer, dataset, reward, [*own, *callbacks], plan, schedule)
    return lengths


def build_method_dataset(problems, tokenizer, cfg: StageConfig, spec):
    """The method's prompts: plain ones, or (budget methods) each with its method's sentence and N in ``budget``."""
    from dataclasses import replace

    from datasets import Dataset

    from lapo.data.prompts import render_prompt
    from lapo.methods.budgets import draw_budgets

    method = spec.method
    if not method.needs_budget:
        return build_dataset(problems, tokenizer, cfg)
    fmt = replace(cfg.lapo.prompt_format(), budget_template=spec.budget_template)
    budgets = draw_budgets([p.id for p in problems], spec.knobs["budget_low"], spec.knobs["budget_high"], cfg.grpo.seed)
    rows = prompt_rows(problems, tokenizer, fmt)
    rows["prompt"] = [render_prompt(p.problem, tokenizer, fmt, budget=budgets[p.id]) for p in problems]
    rows["budget"] = [budgets[p.id] for p in problems]
    return Dataset.from_dict(_drop_long_prompts(rows, tokenizer, cfg.lapo.max_prompt_length, None))
