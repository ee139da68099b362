"""What a configuration's batch settings amount to: prompts, completions and optimizer steps per rollout and stage.

A *rollout* is one round of generation. TRL 1.16 generates ``generation_batch_size`` completions at once
(``per_device_train_batch_size x world size x steps_per_generation``), then takes ``steps_per_generation x
num_iterations`` micro-steps over them, one optimizer step every ``gradient_accumulation_steps`` micro-steps.
The reference (an OpenRLHF fork) states the same run as ``--rollout_batch_size`` prompts x
``--n_samples_per_prompt`` completions per rollout and ``--train_batch_size`` completions per optimizer step;
docs/PAPER_RECIPES.md maps one onto the other. The arithmetic follows TRL's sampler (an incomplete last batch
of prompts is dropped) and transformers' step count; ``tests/test_paper_recipes.py`` checks it against a trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RolloutPlan:
    world_size: int
    prompts_per_rollout: int
    completions_per_rollout: int
    completions_per_step: int  # per optimizer step, all processes together
    steps_per_rollout: float  # optimizer steps
    rollouts_per_epoch: int
    steps: int  # optimizer steps of the stage: the length of the learning-rate schedule
    warmup_steps: int


def rollout_plan(grpo: Any, num_problems: int) -> RolloutPlan:
    """The plan of a parsed ``GRPOConfig`` over ``num_problems`` problems, at the world size it was parsed with."""
    micro_per_rollout = grpo.steps_per_generation * grpo.num_iterations
    prompts = grpo.generation_batch_size // grpo.num_generations
    rollouts = num_problems // prompts
    per_epoch = max(math.ceil(rollouts * micro_per_rollout / grpo.gradient_accumulation_steps), 1)
    steps = grpo.max_steps if grpo.max_steps > 0 else math.ceil(grpo.num_train_epochs * per_epoch)
    return RolloutPlan(
        world_size=grpo.world_size,
        prompts_per_rollout=prompts,
        completions_per_rollout=grpo.generation_batch_size,
        completions_per_step=grpo.per_device_train_batch_size * grpo.gradient_accumulation_steps * grpo.world_size,
        steps_per_rollout=micro_per_rollout / grpo.gradient_accumulation_steps,
        rollouts_per_epoch=rollouts,
        steps=steps,
        warmup_steps=grpo.get_warmup_steps(steps),
    )
