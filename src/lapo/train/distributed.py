"""What a distributed launch asked for and what really ran, and the launches refused before any model loads.

Read from the launcher's environment (torchrun, ``accelerate launch``), never from a process group, so the
process that only starts the stage processes (lapo.train.launch) needs none. Used by the configuration (the
checks), the run directory (``run.json``'s ``scale_out``) and the trainer (``complete.json``'s ``engine``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lapo.errors import LapoError

# Set in a stage process: the launch it belongs to (the parent's command line), for run.json.
LAUNCH_ENV = "LAPO_LAUNCH_ARGV"


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def world_size() -> int:
    """The launch's number of processes, read from the launcher's environment (no process group needed)."""
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def launched() -> bool:
    """Started by a launcher (torchrun, accelerate launch): a rank of a process group to be."""
    return "LOCAL_RANK" in os.environ or world_size() > 1


def engine_from_env() -> dict[str, Any]:
    """What the accelerate launcher asked for, from its environment: backend, ZeRO stage, FSDP version."""
    info: dict[str, Any] = {"world_size": world_size(), "launched": launched()}
    if _truthy("ACCELERATE_USE_DEEPSPEED"):
        info["engine"] = "deepspeed"
        stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE")
        info["zero_stage"] = int(stage) if stage and stage.isdigit() else None
        info["zero3_init_flag"] = _truthy("ACCELERATE_DEEPSPEED_ZERO3_INIT")
    elif _truthy("ACCELERATE_USE_FSDP"):
        info["engine"] = "fsdp"
        info["fsdp_version"] = int(os.environ.get("FSDP_VERSION", "1"))
        info["fsdp_state_dict_type"] = os.environ.get("FSDP_STATE_DICT_TYPE")
    else:
        info["engine"] = "ddp" if info["launched"] else "single"
    return info


# ============================================================================================ what ran


def engine_of(trainer) -> dict[str, Any]:
    """What a stage really trained with (accelerate may fall back to DDP silently): complete.json's ``engine``."""
    acc = trainer.accelerator
    state = acc.state
    kind = str(state.distributed_type).split(".")[-1]
    info: dict[str, Any] = {"distributed_type": kind, "world_size": acc.num_processes}
    try:
        import torch.distributed as dist

        info["backend"] = dist.get_backend() if dist.is_available() and dist.is_initialized() else None
    except (RuntimeError, ValueError):
        info["backend"] = None
    if kind == "DEEPSPEED":
        info["zero_stage"] = state.deepspeed_plugin.zero_stage
        info["zero3_init_flag"] = bool(state.deepspeed_plugin.zero3_init_flag)
    if kind == "FSDP":
        info["fsdp_version"] = state.fsdp_plugin.fsdp_version
        info["fsdp_state_dict_type"] = str(state.fsdp_plugin.state_dict_type).split(".")[-1]
    info["lora"] = hasattr(acc.unwrap_model(trainer.model), "peft_config")  # adapters trained, merged in final/
    return info


def run_scale_out() -> dict[str, Any]:
    """run.json's ``scale_out``: world size, backend, ZeRO stage or FSDP version, and the launch command."""
    info = engine_from_env()
    try:
        import torch.distributed as dist

        info["backend"] = dist.get_backend() if dist.is_available() and dist.is_initialized() else None
    except (RuntimeError, ValueError):
        info["backend"] = None
    info["stage_processes"] = LAUNCH_ENV in os.environ
    if LAUNCH_ENV in os.environ:
        info["launch_command"] = json.loads(os.environ[LAUNCH_ENV])
    return info


# ============================================================================================ checks before a model loads


def check_launch() -> None:
    """A launch that would train on fewer processes than its config asks for, said in one sentence."""
    if os.environ.get("MASTER_ADDR") and _truthy("ACCELERATE_USE_CPU") and not launched():
        # accelerate's simple launcher: it sets MASTER_ADDR for num_processes > 1 but starts one process
        # (MULTI_CPU runs its processes through mpirun, which `accelerate launch` did not start).
        raise LapoError(
            "accelerate launch started one process although its config asks for several (distributed_type: "
            "MULTI_CPU or use_cpu: true start a single process unless mpirun launches them); for several CPU "
            "processes run `torchrun --nproc_per_node N -m lapo.cli train ...`, or use num_processes: 1."
        )
    if os.environ.get("FSDP_STATE_DICT_TYPE", "").upper() == "LOCAL_STATE_DICT" and _truthy("ACCELERATE_USE_FSDP"):
        raise LapoError(
            "fsdp_state_dict_type: LOCAL_STATE_DICT saves per-rank shards that transformers, vLLM and a resume at "
            "another world size cannot load; set fsdp_state_dict_type to FULL_STATE_DICT (recipes/accelerate/"
            "fsdp.yaml) or SHARDED_STATE_DICT."
        )


def check_layout(flat: dict, stage: str, processes: int | None = None) -> None:
    """Each generation round must hold whole groups of ``num_generations`` completions: LAPO's band and targets
    are statistics of a whole group (arXiv 2507.15758, section 3), and TRL cuts groups at fixed offsets."""
    processes = processes or world_size()
    n = int(flat.get("num_generations") or 8)
    per_device = int(flat.get("per_device_train_batch_size") or 8)
    if flat.get("generation_batch_size") not in (None, "null"):
        return  # TRL checks generation_batch_size against the batch and num_generations itself
    steps = int(flat.get("steps_per_generation") or flat.get("gradient_accumulation_steps") or 1)
    total = per_device * processes * steps
    if n >= 2 and total % n:
        fit = next(p for p in range(per_device, per_device + n + 1) if (p * processes * steps) % n == 0)
        raise LapoError(
            f"stage {stage}: per_device_train_batch_size={per_device} x {processes} processes x "
            f"steps_per_generation={steps} = {total} completions per generation round, which cannot hold whole "
            f"groups of num_generations={n}; set per_device_train_batch_size={fit} (or change the process count)."
        )


def _deepspeed_file_config(flat: dict) -> dict | None:
    """The DeepSpeed JSON config in use: the recipe's ``deepspeed`` or the accelerate config's file."""
    source = flat.get("deepspeed")
    if source in (None, "null", ""):
        source = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") if _truthy("ACCELERATE_USE_DEEPSPEED") else None
    if isinstance(source, dict):
        return source
    if not source:
        return None
    try:
        return json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LapoError(f"DeepSpeed config {source} is not readable JSON ({error}); fix it or remove it.") from None


def _flag(value) -> bool | None:
    if value in (None, "null", "auto"):
        return None
    return str(value).strip().lower() in ("1", "true", "yes")


def check_precision(flat: dict, stage: str) -> None:
    """A DeepSpeed config whose precision contradicts the recipe's bf16/fp16 (read before TRL's arguments are
    parsed: parsing them writes the recipe's precision into accelerate's environment)."""
    recipe = {k: _flag(flat.get(k)) for k in ("bf16", "fp16")}
    ds = _deepspeed_file_config(flat) or {}
    claims = {k: _flag((ds.get(k) or {}).get("enabled")) for k in ("bf16", "fp16")}
    if _truthy("ACCELERATE_USE_DEEPSPEED"):
        launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "").lower()
        if launcher in ("bf16", "fp16"):
            claims[launcher] = claims[launcher] if claims[launcher] is not None else True
    for kind in ("bf16", "fp16"):
        if claims[kind] is True and recipe[kind] is False or claims[kind] is False and recipe[kind] is True:
            said = "enables" if claims[kind] else "disables"
            raise LapoError(
                f"stage {stage}: the DeepSpeed config {said} {kind} but the recipe sets {kind}={str(recipe[kind]).lower()}; "
                f"make them agree (set {kind} in the recipe, and \"{kind}\": {{\"enabled\": \"auto\"}} or the "
                "accelerate config's mixed_precision to match)."
            )
