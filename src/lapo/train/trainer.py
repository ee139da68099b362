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
from lapo.train.distributed import engine_of
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

    cap_schedule = None  # optimizer step -> max completion tokens (ThinkPrune's rounds); None: the config's

    def _generate(self, prompts):
        if self.cap_schedule is not None:
            self._set_cap(int(self.cap_schedule(self.state.global_step)))
        return super()._generate(prompts)

    def _set_cap(self, cap: int) -> None:
        """Generate at most ``cap`` tokens from now on, with transformers or vLLM (both read their own copy)."""
        self.max_completion_length = cap
        if getattr(self, "generation_config", None) is not None:
            self.generation_config.max_new_tokens = cap
        if isinstance(getattr(self, "generation_kwargs", None), dict):
            self.generation_kwargs["max_new_tokens"] = cap
        if getattr(self, "vllm_generation", None) is not None:
            self.vllm_generation.max_completion_length = cap

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


def train_stage(cfg: StageConfig, model_name: str, tokenizer, dataset, reward, callbacks, plan, cap_schedule=None):
    """Build the GRPOTrainer, train (resuming if asked), save the final model; returns the trainer.
    ``cap_schedule`` (step -> tokens) lowers the generation cap over the run (ThinkPrune's rounds)."""
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
    trainer.cap_schedule = cap_schedule
    if any(type(cb) is ProgressCallback for cb in trainer.callback_handler.callbacks):  # not with disable_tqdm
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(MetricsLineCallback(cfg.stage))
    plan.engine = engine_of(trainer)  # what really trained (complete.json): accelerate may fall back to DDP
    trainer.train(resume_from_checkpoint=str(plan.checkpoint) if plan.checkpoint else None)
    save_final(trainer, tokenizer, plan.stage_dir / FINAL_DIR)
    return trainer


def save_final(trainer, tokenizer, folder: Path) -> None:
    """The final policy in Hugging Face format (LoRA merged in), loadable by transformers and vLLM.

    Every rank takes part in gathering the weights (ZeRO-3 and FSDP shard them: a collective), the main
    process alone writes them; LoRA is merged into a copy built from the gathered weights on the main
    process, so no rank waits in a collective the others never enter. The folder is then checked: full
    weights, no empty ZeRO-3 placeholder, before the stage may be marked complete.
    """
    acc = trainer.accelerator
    state = full_state_dict(trainer)
    if acc.is_main_process:
        model = acc.unwrap_model(trainer.model)
        if hasattr(model, "merge_and_unload"):  # peft: save full weights, not an adapter
            merged_copy(model, state).save_pretrained(folder)
        else:
            model.save_pretrained(folder, state_dict=state)
        tokenizer.save_pretrained(folder)
        check_final(folder)
    acc.wait_for_everyone()


def full_state_dict(trainer) -> dict | None:
    """The whole model's weights on the main process, gathered from every rank (a collective: all ranks call it)."""
    acc = trainer.accelerator
    if str(acc.distributed_type).endswith("DEEPSPEED"):
        engine = trainer.model_wrapped
        if acc.deepspeed_config["zero_optimization"].get("stage") == 3:
            # Gathered whether or not the config asks for 16-bit saving: never empty shards in final/.
            return engine._zero3_consolidated_16bit_state_dict()
        return acc.get_state_dict(engine)
    return acc.get_state_dict(trainer.model)


def merged_copy(peft_model, state: dict):
    """A plain model with the LoRA adapters merged: a copy of ``peft_model`` on CPU loaded with ``state``."""
    import torch

    clone = _fresh_peft(peft_model)  # never a copy of the live model: its weights may be shards, or on a GPU
    with torch.no_grad():
        result = clone.load_state_dict({k: v.to("cpu") for k, v in state.items()}, strict=False)
    tied = {n for n in result.missing_keys if "lm_head" in n} if clone.config.tie_word_embeddings else set()
    missing = [n for n in result.missing_keys if n not in tied]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"merging LoRA: gathered weights do not match the model ({(missing + result.unexpected_keys)[:3]})")
    return clone.merge_and_unload()


def _fresh_peft(peft_model):
    """The same architecture and adapters, built on CPU from the configs (weights come from the state dict)."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    base = peft_model.get_base_model()
    with _outside_zero3_init():
        fresh = AutoModelForCausalLM.from_config(base.config, dtype=base.dtype)
    return get_peft_model(fresh, peft_model.peft_config["default"])


@contextlib.contextmanager
def _outside_zero3_init():
    """Build a model on this process alone even under ZeRO-3: transformers would otherwise build it inside
    ``deepspeed.zero.Init``, whose broadcasts wait for ranks that never build it (a deadlock)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)
    hf_deepspeed._hf_deepspeed_config_weak_ref = None  # what transformers' unset_hf_deepspeed_config() does
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def check_final(folder: Path) -> None:
    """A final model is complete: config, tokenizer, and weights of which none is empty (ZeRO-3 placeholders)."""
    from safetensors import safe_open

    from lapo.errors import LapoError

    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not (folder / "config.json").is_file() or not files:
        raise LapoError(f"{folder} holds no Hugging Face model (config.json and *.safetensors); the stage is not "
                        "marked complete.")
    for file in files:
        with safe_open(str(file), "pt") as handle:
            for name in handle.keys():
                if 0 in handle.get_slice(name).get_shape():
                    raise LapoError(f"{folder}: weight {name} is empty (a ZeRO-3 or FSDP shard was saved instead of "
                                    "the gathered weights); the stage is not marked complete.")
