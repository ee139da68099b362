"""lapo's thin layer over TRL's ``GRPOTrainer``: the trainer class, building it, training, saving the final model.

:class:`LapoGRPOTrainer` changes two things in TRL: a data order that survives a resume
(:class:`EpochRepeatSampler`), and, on CPU only, which positions TRL's fused LM head projects
(:func:`compact_lm_head_on_cpu`: the same log-probabilities, less work). :func:`train_stage` builds a trainer
for one stage, trains it (from a checkpoint when resuming) and saves the final policy as a plain Hugging Face
checkpoint.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from transformers import ProgressCallback
from trl import GRPOTrainer, get_peft_config
from trl.trainer.utils import RepeatSampler

from lapo.train.callbacks import MetricsLineCallback
from lapo.train.config import StageConfig
from lapo.train.rundir import FINAL_DIR


# Vocabulary columns per tile of the LM head on CPU (TRL's default is 32,768): with SmolLM2's 49,152-word vocabulary
# the float32 temporaries of a tile over ~1,300 completion tokens shrink from ~170 MB each to ~40 MB.
CPU_VOCAB_CHUNK = 8192


@contextlib.contextmanager
def compact_lm_head_on_cpu():
    """Inside: TRL's fused LM head projects, on CPU, only the positions it scores (completion tokens), in tiles
    of :data:`CPU_VOCAB_CHUNK` words.

    TRL (``trl.trainer.utils.add_fused_lm_head``) scores only the valid positions on Triton devices, but on any
    other device it projects every position of the batch (prompt and padding included, their results then
    zeroed) so that compiled tile shapes stay fixed, which CPU eager mode does not need. On CPU that is 2-3x the
    LM-head work of a GRPO step (its forward, and its backward in float32), for identical outputs: each
    position's log-probability and entropy depend on that position's row alone. Only the CPU choice changes;
    the kernels, the maths and every other device keep TRL's path (tests/test_train_logps.py checks the values
    and gradients against TRL's own).
    """
    import trl.trainer.utils as trl_utils

    use_triton, chunk = trl_utils._use_triton, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    trl_utils._use_triton = lambda device: device.type == "cpu" or use_triton(device)
    trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = min(chunk, CPU_VOCAB_CHUNK)
    try:
        yield
    finally:
        trl_utils._use_triton, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE = use_triton, chunk


class LapoGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose data order survives a resume (see :class:`EpochRepeatSampler`) and whose log-probabilities
    on CPU skip the prompt positions (see :func:`compact_lm_head_on_cpu`).

    Stage 2's prompts are rendered when the dataloader fetches a batch (``Dataset.with_transform`` reading
    the live target map). That is exact: GRPO's sampler puts each problem in one batch per epoch and
    a new dataloader iterator starts each epoch, so a target tightened at one step can only be read by
    a batch fetched after that step, prefetching or not, in an uninterrupted run and in a resumed one.
    """

    # False: TRL's own path on CPU too (benchmarks/smollm2_step.py's `trl_logps` setting; the tests' reference).
    compact_cpu_logps = True

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        if not (self.compact_cpu_logps and self.accelerator.device.type == "cpu"):
            return super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        with compact_lm_head_on_cpu():
            return super()._get_per_token_logps_and_entropies(model, *args, **kwargs)

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


# ============================================================================================ building and saving


def load_model(name: str, cfg: StageConfig) -> Any:
    """The policy via lapo.models (paths, hub ids and lapo aliases), in the recipe's dtype."""
    from lapo.models.loading import load_model_and_tokenizer

    m = cfg.model
    kwargs = {"revision": m.model_revision, "dtype": m.dtype, "trust_remote_code": cfg.grpo.trust_remote_code}
    if m.attn_implementation:
        kwargs["attn_implementation"] = m.attn_implementation
    model, _ = load_model_and_tokenizer(name, **kwargs)
    return model


def train_stage(cfg: StageConfig, model_name: str, tokenizer, dataset, reward, callbacks, plan):
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
