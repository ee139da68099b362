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
(files, the callbacks that write them, metadata) in :mod:`lapo.train.rundir`, which stages run from which
checkpoint in :mod:`lapo.train.resume`. The layout is documented in docs/TRAINING.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import Any, Sequence

from transformers import TrainerCallback

from lapo.core import io
from lapo.core.stats import LengthStats
from lapo.errors import ArgumentParser, LapoError, command
from lapo.models.loading import load_tokenizer
from lapo.train import distributed, launch
from lapo.train.config import STAGES, RunConfig, load_run_config
from lapo.train.handoff import (
    check_targets,
    load_handoff,
    make_targets,
    save_handoff,
    stage2_init,
)
from lapo.train.resume import StagePlan, plan_stages
from lapo.train.rundir import (
    TARGETS_FILE,
    main_process_only,
    mark_complete,
    setup_logging,
    stage_summary,
    write_run_metadata,
)
from lapo.train.stages import load_stage_problems, run_discovery, run_internalization, run_method

logger = logging.getLogger("lapo.train")


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
    os.environ.update(run.env)  # the recipe's `env:`: set now that this run starts, never while reading it
    plans = {p.stage: p for p in plan_stages(run) if p.run}
    problems = {s: load_stage_problems(run.stages[s]) for s in run.selected}
    targets = None
    if "internalization" in plans and "discovery" not in plans:
        targets = load_handoff(run, problems["internalization"])
    tokenizer = load_tokenizer(_tokenizer_source(run), "model_name_or_path")  # the first file of a model to be read
    return Prepared(run, plans, tokenizer, problems, targets)


def execute(prep: Prepared, callbacks: Sequence[TrainerCallback] = (), metadata: bool = True) -> dict:
    """Run the planned stages; returns the statistics (and stage 2's final targets) it produced."""
    if metadata:  # a stage process after the launch's first leaves run.json to that one
        write_run_metadata(prep.run)
    result: dict[str, Any] = {"run_dir": str(prep.run.run_dir)}
    targets = prep.targets
    if prep.run.method is not None and not prep.run.method.method.is_lapo:
        if "discovery" in prep.plans:  # absent: --resume found the method's one stage complete
            result["method"] = _method_stage(prep, callbacks)
        return result
    if "discovery" in prep.plans:
        result["discovery"], targets = _stage1_and_handoff(prep, callbacks)
    if "internalization" in prep.plans:
        result["internalization"], result["targets"] = _stage2(prep, targets, callbacks)
    return result


def _stage1_and_handoff(prep: Prepared, callbacks) -> tuple[LengthStats, dict[str, int]]:
    """Stage 1, then its records turned into one target per problem (``targets.json``)."""
    plan, problems = prep.plans["discovery"], prep.problems["discovery"]
    lengths = run_discovery(plan, problems, prep.tokenizer, callbacks)
    targets = make_targets(lengths, problems, plan.cfg, prep.run.fallback_target())
    save_handoff(prep.run, targets)
    summary = stage_summary(lengths, plan.cfg.lapo.target_policy, targets=len(targets), engine=plan.engine)
    mark_complete(plan.stage_dir, summary)
    return lengths, targets


def _method_stage(prep: Prepared, callbacks) -> LengthStats:
    """A single-stage method (plain, L1, ThinkPrune, ...) in the first stage's slot: ``discovery/final``."""
    plan, spec = prep.plans["discovery"], prep.run.method
    lengths = run_method(plan, prep.problems["discovery"], prep.tokenizer, spec, callbacks)
    mark_complete(plan.stage_dir, stage_summary(lengths, "last", method=spec.name, engine=plan.engine))
    return lengths


def _stage2(prep: Prepared, targets: dict[str, int], callbacks) -> tuple[LengthStats, dict[str, int]]:
    """Stage 2 from stage 1's final weights; returns its records and the target map as tightened."""
    plan, problems, fallback = prep.plans["internalization"], prep.problems["internalization"], prep.run.fallback_target()
    if "discovery" in prep.plans:  # stage 2 alone had its map checked in prepare()
        targets = check_targets(targets, problems, fallback)
    init = stage2_init(prep.run)
    lengths, live = run_internalization(plan, problems, prep.tokenizer, targets, fallback, init, callbacks)
    main_process_only(io.save_targets, live, plan.stage_dir / TARGETS_FILE)
    tightened = sum(live[k] < targets[k] for k in live)
    mark_complete(plan.stage_dir, stage_summary(lengths, "last", targets_tightened=tightened, engine=plan.engine))
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
        raise LapoError("model_name_or_path is not set; add it to the recipe or pass model_name_or_path=...")
    return name


# ============================================================================================ CLI


def _fields_help() -> str:
    """LapoConfig's fields with their defaults and help: the one place they are documented."""
    from lapo.train.config import LapoConfig

    lines = ["LAPO settings (defaults are the paper's):"]
    for f in dataclasses.fields(LapoConfig):
        lines.append(f"  {f.name} (default {f.default!r}): {f.metadata['help']}")
    return "\n".join(lines)


def _arg_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
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
        "--method", help="length-control method (default: the recipe's `method:`, else lapo): "
        "lapo, lapo-d, lapo-i, plain, l1-exact, l1-max, thinkprune, kimi, shorterbetter, arora-zanette, "
        "dapo-overlong; its constants as method_args.KNOB=value (docs/METHODS.md)",
    )
    parser.add_argument(
        "--resume", nargs="?", const=True, default=False, metavar="CKPT",
        help="continue the run in output_dir from its latest checkpoint, or from CKPT",
    )
    # Internal (lapo.train.launch): this process is one stage of a launch whose parent runs each stage apart.
    parser.add_argument("--stage-process", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--no-run-metadata", action="store_true", help=argparse.SUPPRESS)
    return parser


@command("train")
def main(argv: list[str]) -> int:
    parser = _arg_parser()
    args, overrides = parser.parse_known_args(argv)
    if args.method:
        overrides = [*overrides, f"method={args.method}"]
    distributed.check_launch()
    if args.stage_process is None and launch.stages_in_processes(launch.colocated_vllm(args.config, overrides)):
        # Under a launcher (DDP, DeepSpeed, FSDP) or with colocated vLLM: each stage in its own process.
        return launch.run_stage_processes(args.config, overrides, args.stage, args.resume, ["lapo", "train", *argv])
    # Bad input raises LapoError (recipe, overrides, data, checkpoints: all checked before a model loads);
    # @command prints it as one line with exit status 2.
    run_cfg = load_run_config(args.config, overrides, stage=args.stage, resume=args.resume)
    setup_logging(run_cfg.run_dir)
    prep = prepare(run_cfg)
    if args.stage_process:  # checked the whole run; trains its own stage only
        prep.plans = {s: p for s, p in prep.plans.items() if s == args.stage_process}
    execute(prep, metadata=not args.no_run_metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
