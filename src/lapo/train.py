"""`lapo train`: stage 1 (Discovery), the hand-off, stage 2 (Internalization), on TRL's GRPOTrainer.

    lapo train --config recipes/counting/config.yaml
    lapo train --config RECIPE.yaml --stage discovery output_dir=runs/a
    lapo train --config RECIPE.yaml --stage internalization output_dir=runs/a   # from runs/a's stage 1
    lapo train --config RECIPE.yaml --resume                                    # latest good checkpoint
    lapo train --config RECIPE.yaml --resume runs/a/discovery/checkpoint-100 discovery.learning_rate=2e-6

Stage 1 rewards completions with LAPO-D's band reward and records every group's correct lengths; the
records become one target per problem (``targets.json``); stage 2 starts from stage 1's final weights and
trains with LAPO-I's Gaussian reward on prompts that carry "I will answer the question with N tokens."
(arXiv 2507.15758, section 3). What a run writes and reads back lives beside this module: the run directory
(files, the callbacks that write them, metadata) in :mod:`lapo.rundir`, which stages run from which
checkpoint in :mod:`lapo.resume`. The layout is documented in docs/TRAINING.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from transformers import ProgressCallback, TrainerCallback
from trl import GRPOTrainer, get_peft_config
from trl.trainer.utils import RepeatSampler

from lapo import data, stats as stats_lib
from lapo.config import STAGES, RunConfig, StageConfig, load_run_config
from lapo.resume import StagePlan, plan_stages
from lapo.rewards import discovery_reward, internalization_reward
from lapo.rundir import (
    FINAL_DIR,
    LOG_FILE,
    STATS_FILE,
    TARGETS_FILE,
    LogHistoryCallback,
    MetricsLineCallback,
    StatsCallback,
    main_process_only,
    mark_complete,
    setup_logging,
    stage_summary,
    write_run_metadata,
)

logger = logging.getLogger("lapo.train")


# ============================================================================================ trainer


class LapoGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose data order survives a resume (see :class:`EpochRepeatSampler`).

    Stage 2's prompts are rendered when the dataloader fetches a batch (``Dataset.with_transform`` reading
    the live target map). That is exact: GRPO's sampler puts each problem in one batch per epoch and
    a new dataloader iterator starts each epoch, so a target tightened at one step can only be read by
    a batch fetched after that step, prefetching or not, in an uninterrupted run and in a resumed one.
    """

    def _get_train_sampler(self, dataset=None):
        # TRL's sampler, with a shuffle that depends on (seed, epoch) only: see EpochRepeatSampler.
        return EpochRepeatSampler(
            data_source=dataset if dataset is not None else self.train_dataset,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=self.args.seed,
        )


class EpochRepeatSampler(RepeatSampler):
    """TRL's RepeatSampler whose order in epoch ``e`` is drawn from ``seed + e`` (epoch 0: TRL's own order).

    TRL's sampler draws each epoch's permutation from one generator and has no ``set_epoch``, so a run
    resumed in epoch 2 replays epoch 0's order there and skips into it: some problems come twice, others
    never, and the resumed run differs from an uninterrupted one. Accelerate calls ``set_epoch`` before
    every epoch, on resume too.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed + self.epoch)
        return super().__iter__()


# ============================================================================================ loading


def model_path(name: str) -> str:
    """Where a model's files are: lapo aliases resolved (SmolLM2 converted from GGUF on first use)."""
    from lapo import models

    return models.smollm2_checkpoint() if name == models.SMOLLM2 else models.resolve_alias(name)


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path(name))
    if tokenizer.pad_token is None:  # TRL pads prompts and completions
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str, cfg: StageConfig) -> Any:
    """The policy via lapo.models (paths, hub ids and lapo aliases), in the recipe's dtype."""
    from lapo.models import load_model_and_tokenizer

    m = cfg.model
    kwargs = {"revision": m.model_revision, "dtype": m.dtype, "trust_remote_code": cfg.grpo.trust_remote_code}
    if m.attn_implementation:
        kwargs["attn_implementation"] = m.attn_implementation
    model, _ = load_model_and_tokenizer(name, **kwargs)
    return model


def load_stage_problems(cfg: StageConfig) -> list[data.Problem]:
    """The stage's problems (validates fields, answers and ids before any model loads)."""
    c = cfg.lapo
    return data.load_problems(
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


def build_dataset(problems, tokenizer, cfg: StageConfig, budgets: data.BudgetedPrompts | None = None):
    """A TRL dataset of prompts; with ``budgets``, stage 2's prompts carry their current budget sentence."""
    from datasets import Dataset

    fmt = cfg.lapo.prompt_format()
    rows = data.prompt_rows(problems, tokenizer, fmt)
    rows = _drop_long_prompts(rows, tokenizer, cfg.lapo.max_prompt_length, budgets)
    dataset = Dataset.from_dict(rows)
    return dataset.with_transform(budgets) if budgets is not None else dataset


def _drop_long_prompts(rows: dict, tokenizer: Any, limit: int | None, budgets) -> dict:
    """Leave out prompts over ``limit`` tokens (the reference's 1024), counting the longest budget sentence."""
    if not limit:
        return rows
    prompts = budgets({**rows})["prompt"] if budgets is not None else rows["prompt"]
    keep = [len(ids) <= limit for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    if not any(keep):
        raise ValueError(f"every prompt is longer than max_prompt_length={limit} tokens; raise max_prompt_length.")
    if not all(keep):
        logger.warning("left out %d of %d problems whose prompt exceeds %d tokens", keep.count(False), len(keep), limit)
    return {k: [v for v, ok in zip(values, keep) if ok] for k, values in rows.items()}


# ============================================================================================ hand-off


def stage1_dir(run: RunConfig) -> Path:
    return Path(run.stages["internalization"].lapo.stage1_dir or run.run_dir)


def make_targets(lengths: stats_lib.LengthStats, problems, cfg: StageConfig, fallback: int) -> dict[str, int]:
    """One target per stage-1 problem: the policy's median correct length, or the fallback sentinel."""
    return lengths.targets(cfg.lapo.target_policy, fallback=fallback, problem_ids=[p.id for p in problems])


def load_handoff(run: RunConfig, problems) -> dict[str, int]:
    """Stage 2's target map: targets_path, else the stage-1 run's targets.json, else its length statistics."""
    cfg = run.stages["internalization"]
    source = stage1_dir(run)
    if cfg.lapo.targets_path:
        targets = stats_lib.load_targets(cfg.lapo.targets_path)
    elif (source / TARGETS_FILE).is_file():
        targets = stats_lib.load_targets(source / TARGETS_FILE)
    elif (source / "discovery" / STATS_FILE).is_file():
        lengths = stats_lib.LengthStats.load(source / "discovery" / STATS_FILE)
        targets = make_targets(lengths, problems, cfg, run.fallback_target())
    else:
        raise FileNotFoundError(
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
        raise ValueError(
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
    raise FileNotFoundError(
        f"stage 2 starts from stage 1's final model, but {final} has none; finish stage 1 first "
        "(`lapo train --stage discovery --resume`), or set stage1_dir to a finished stage-1 run."
    )


# ============================================================================================ stages


def _run_trainer(cfg: StageConfig, model_name: str, tokenizer, dataset, reward, callbacks, plan):
    """Build the GRPOTrainer, train (resuming if asked), save the final model; returns the trainer."""
    model = load_model(model_name, cfg)
    trainer = LapoGRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=cfg.grpo,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(cfg.model),
        callbacks=list(callbacks),
    )
    if any(type(cb) is ProgressCallback for cb in trainer.callback_handler.callbacks):  # not with disable_tqdm
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(MetricsLineCallback(cfg.stage))
    trainer.train(resume_from_checkpoint=str(plan.checkpoint) if plan.checkpoint else None)
    save_final(trainer, tokenizer, plan.stage_dir / FINAL_DIR)
    return trainer


def save_final(trainer, tokenizer, folder: Path) -> None:
    """The final policy in Hugging Face format (LoRA merged in), loadable by transformers and vLLM."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):  # peft: save full weights, not an adapter
        if trainer.accelerator.is_main_process:
            model.merge_and_unload().save_pretrained(folder)
    else:
        trainer.save_model(str(folder))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(folder)
    trainer.accelerator.wait_for_everyone()


def run_discovery(plan: StagePlan, problems, tokenizer, callbacks=()) -> stats_lib.LengthStats:
    """Stage 1 (LAPO-D); returns every group's correct lengths (a resume starts from the checkpoint's)."""
    cfg = plan.cfg
    lengths = plan.stats
    reward = discovery_reward(cfg.lapo, cfg.grpo.num_generations, lengths)
    dataset = build_dataset(problems, tokenizer, cfg)
    own = [StatsCallback(lengths, plan.stage_dir), LogHistoryCallback(plan.stage_dir / LOG_FILE)]
    _run_trainer(cfg, cfg.model.model_name_or_path, tokenizer, dataset, reward, [*own, *callbacks], plan)
    return lengths


def run_internalization(plan: StagePlan, problems, tokenizer, targets, fallback, init, callbacks=()):
    """Stage 2 (LAPO-I) from ``init`` with the hand-off ``targets`` (tightened in place when enabled)."""
    cfg = plan.cfg
    lengths = plan.stats
    live = dict(plan.live_targets if plan.live_targets is not None else targets)  # tightened as of the checkpoint
    budgets = data.BudgetedPrompts(live, fallback, cfg.lapo.prompt_format())
    reward = internalization_reward(cfg.lapo, cfg.grpo.num_generations, lengths, live)
    reward.tightened = sum(live[k] < v for k, v in targets.items() if k in live)  # the count survives a resume
    dataset = build_dataset(problems, tokenizer, cfg, budgets)
    own = [StatsCallback(lengths, plan.stage_dir, live), LogHistoryCallback(plan.stage_dir / LOG_FILE)]
    _run_trainer(cfg, init, tokenizer, dataset, reward, [*own, *callbacks], plan)
    return lengths, live


# ============================================================================================ run


@dataclasses.dataclass
class Prepared:
    """A run checked and ready: plans, tokenizer, problems and (for stage 2 alone) its targets."""

    run: RunConfig
    plans: dict[str, StagePlan]
    tokenizer: Any
    problems: dict[str, list]
    targets: dict[str, int] | None = None


def prepare(run: RunConfig) -> Prepared:
    """Everything that can be checked before a model loads: run directory, data, ids, the target map."""
    plans = {p.stage: p for p in plan_stages(run) if p.run}
    problems = {s: load_stage_problems(run.stages[s]) for s in run.selected}
    targets = None
    if "internalization" in plans and "discovery" not in plans:
        targets = load_handoff(run, problems["internalization"])
    tokenizer = load_tokenizer(_tokenizer_source(run))  # the first file of a model to be read
    return Prepared(run, plans, tokenizer, problems, targets)


def execute(prep: Prepared, callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """Run the planned stages; returns the statistics (and stage 2's final targets) it produced."""
    write_run_metadata(prep.run)
    result: dict[str, Any] = {"run_dir": str(prep.run.run_dir)}
    targets = prep.targets
    if "discovery" in prep.plans:
        result["discovery"], targets = _stage1_and_handoff(prep, callbacks)
    if "internalization" in prep.plans:
        result["internalization"], result["targets"] = _stage2(prep, targets, callbacks)
    return result


def _stage1_and_handoff(prep: Prepared, callbacks) -> tuple[stats_lib.LengthStats, dict[str, int]]:
    """Stage 1, then its records turned into one target per problem (``targets.json``)."""
    plan, problems = prep.plans["discovery"], prep.problems["discovery"]
    lengths = run_discovery(plan, problems, prep.tokenizer, callbacks)
    targets = make_targets(lengths, problems, plan.cfg, prep.run.fallback_target())
    _save_handoff(prep.run, targets)
    mark_complete(plan.stage_dir, stage_summary(lengths, plan.cfg.lapo.target_policy, targets=len(targets)))
    return lengths, targets


def _stage2(prep: Prepared, targets: dict[str, int], callbacks) -> tuple[stats_lib.LengthStats, dict[str, int]]:
    """Stage 2 from stage 1's final weights; returns its records and the target map as tightened."""
    plan, problems, fallback = prep.plans["internalization"], prep.problems["internalization"], prep.run.fallback_target()
    if "discovery" in prep.plans:  # stage 2 alone had its map checked in prepare()
        targets = check_targets(targets, problems, fallback)
    init = stage2_init(prep.run)
    lengths, live = run_internalization(plan, problems, prep.tokenizer, targets, fallback, init, callbacks)
    main_process_only(stats_lib.save_targets, live, plan.stage_dir / TARGETS_FILE)
    tightened = sum(live[k] < targets[k] for k in live)
    mark_complete(plan.stage_dir, stage_summary(lengths, "last", targets_tightened=tightened))
    return lengths, live


def run(run: RunConfig, callbacks: Sequence[TrainerCallback] = ()) -> dict:
    """Check the run (before any model loads), then train the selected stages."""
    return execute(prepare(run), callbacks)


def _tokenizer_source(run: RunConfig) -> str:
    """Stage 2 alone reads the tokenizer saved with stage 1's final model; otherwise the recipe's model."""
    if run.selected == ("internalization",):
        return stage2_init(run)
    name = run.stages[run.selected[0]].model.model_name_or_path
    if not name:
        raise ValueError("model_name_or_path is not set; add it to the recipe or pass model_name_or_path=...")
    return name


def _save_handoff(run: RunConfig, targets: dict[str, int]) -> None:
    main_process_only(stats_lib.save_targets, targets, run.run_dir / TARGETS_FILE)
    solved = sum(v != run.fallback_target() for v in targets.values())
    logger.info("hand-off: %d targets (%d solved in stage 1) -> %s", len(targets), solved, run.run_dir / TARGETS_FILE)


# ============================================================================================ CLI


def _fields_help() -> str:
    """LapoConfig's fields with their defaults and help: the one place they are documented."""
    from lapo.config import LapoConfig

    lines = ["LAPO settings (defaults are the paper's):"]
    for f in dataclasses.fields(LapoConfig):
        lines.append(f"  {f.name} (default {f.default!r}): {f.metadata['help']}")
    return "\n".join(lines)


def _arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lapo train",
        description="Run LAPO's Discovery stage, the hand-off and the Internalization stage on TRL's GRPOTrainer.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Overrides: key=value or --key value (both stages), discovery.key=value (one stage). Keys are the "
        "fields below,\nof TRL's GRPOConfig (engine; lapo's defaults: the paper's) and of TRL's ModelConfig (model, "
        "LoRA). See docs/TRAINING.md.\n\n" + _fields_help(),
    )
    parser.add_argument("--config", help="YAML recipe (e.g. recipes/counting/config.yaml)")
    parser.add_argument("--stage", choices=[*STAGES, "all"], help="which part to run (default: the recipe's, else all)")
    parser.add_argument(
        "--resume", nargs="?", const=True, default=False, metavar="CKPT",
        help="continue the run in output_dir from its latest checkpoint, or from CKPT",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _arg_parser()
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        run_cfg = load_run_config(args.config, overrides, stage=args.stage, resume=args.resume)
    except (ValueError, FileNotFoundError) as error:
        print(f"lapo train: {error}", file=sys.stderr)
        return 2
    setup_logging(run_cfg.run_dir)
    try:
        prepared = prepare(run_cfg)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"lapo train: {error}", file=sys.stderr)
        return 2
    execute(prepared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
