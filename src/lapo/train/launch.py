"""Scale-out of `lapo train`: each stage in its own process per rank under a distributed launch.

Under ``accelerate launch`` (or ``torchrun``) the launched ``lapo train`` process on every rank runs no stage
itself: it starts ``python -m lapo.cli train ... --stage-process discovery`` with the same environment, waits
for it, then starts ``--stage-process internalization``. The parent never imports torch.distributed, so each
stage's children form their own process group and build the only ``Accelerator`` of their process. Why:

- accelerate refuses a second ``Accelerator`` with a DeepSpeed plugin in one process ("You cannot pass in a
  ``deepspeed_plugin`` when creating a second ``Accelerator``"), so stage 2 could not be built after stage 1;
- a DeepSpeed engine, an FSDP process group and vLLM's in-process (colocated) engine keep their memory until
  the process exits (vLLM issue #21073): a stage that ends with its process hands every byte back;
- a crash in a stage is an exit status the parent passes on, and a rank whose child failed exits, so the
  launcher stops the other ranks instead of leaving them in a collective.

Each stage's children rendezvous on their own port (``MASTER_PORT + 1`` for stage 1, ``+ 2`` for stage 2)
with a store hosted by rank 0's child, never the launcher's store: stage 2 must not read addresses that
stage 1's process group left there. A plain single process (no launcher, no DeepSpeed, no FSDP, no
colocated vLLM) keeps both stages in one process: nothing to hand back, and it starts once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lapo.errors import LapoError

STAGE_ORDER = ("discovery", "internalization")
PORT_OFFSET = {"discovery": 1, "internalization": 2}
# Set in a stage process: the launch it belongs to (the parent's command line), for run.json.
LAUNCH_ENV = "LAPO_LAUNCH_ARGV"


# ============================================================================================ the launch


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


def stages_in_processes(recipe_env_vllm_colocate: bool = False) -> bool:
    """Whether each stage runs in its own process (see the module docstring for why)."""
    if os.environ.get("LAPO_STAGE_PROCESSES") in ("0", "1"):  # explicit: tests, debugging
        return os.environ["LAPO_STAGE_PROCESSES"] == "1"
    engine = engine_from_env()["engine"]
    return engine != "single" or recipe_env_vllm_colocate


def selected_stages(config: str | None, overrides: list[str], stage: str | None) -> tuple[str, ...]:
    """Which stages the run selects, from --stage, an override or the recipe's ``stage`` (YAML only: the
    parent parses no engine configuration, which would start a process group)."""
    from lapo.train.config import parse_overrides, read_recipe

    chosen = stage
    if chosen is None:
        chosen = parse_overrides(list(overrides))["discovery"].get("stage")
    if chosen is None and config:
        chosen = read_recipe(config)[0]["discovery"].get("stage")
    chosen = chosen or "all"
    if chosen not in (*STAGE_ORDER, "all"):
        raise LapoError(f"stage={chosen!r} is not one of 'discovery', 'internalization', 'all'; pick one of those.")
    return STAGE_ORDER if chosen == "all" else (chosen,)


def colocated_vllm(config: str | None, overrides: list[str]) -> bool:
    """The recipe (or an override) generates with vLLM inside the training process."""
    from lapo.train.config import parse_overrides, read_recipe

    flat = dict(read_recipe(config)[0]["discovery"]) if config else {}
    flat.update(parse_overrides(list(overrides))["discovery"])
    return str(flat.get("use_vllm", False)).lower() == "true" and str(flat.get("vllm_mode", "colocate")) == "colocate"


def child_command(config, overrides, stage: str, selection: tuple[str, ...], resume, write_metadata: bool) -> list[str]:
    """The stage process's command line: the parent's recipe and overrides, its stage, its resume point."""
    cmd = [sys.executable, "-m", "lapo.cli", "train"]
    if config:
        cmd += ["--config", str(config)]
    # Stage 1's process checks the whole run (both stages' data, the run directory) before its model loads.
    cmd += ["--stage", "all" if stage == "discovery" and len(selection) == 2 else stage]
    if isinstance(resume, str):  # an explicit checkpoint: stage 1's process plans it; stage 2's if it is its own
        mine = stage == "discovery" or Path(resume).parent.name == stage
        cmd += ["--resume", resume] if mine else ["--resume"]
    elif resume:
        cmd += ["--resume"]
    cmd += ["--stage-process", stage]
    if not write_metadata:
        cmd += ["--no-run-metadata"]
    return cmd + list(overrides)


def child_env(stage: str, parent_argv: list[str]) -> dict[str, str]:
    """The parent's environment with the stage's own rendezvous port and no launcher store (see module doc)."""
    env = dict(os.environ)
    if "MASTER_PORT" in env:
        env["MASTER_PORT"] = str(int(env["MASTER_PORT"]) + PORT_OFFSET[stage])
    env.pop("TORCHELASTIC_USE_AGENT_STORE", None)  # rank 0's child hosts the stage's store
    env[LAUNCH_ENV] = json.dumps(parent_argv)
    return env


def run_stage_processes(config, overrides, stage: str | None, resume, parent_argv: list[str]) -> int:
    """Run each selected stage in its own process; the first non-zero exit status ends the run with it."""
    selection = selected_stages(config, overrides, stage)
    for i, name in enumerate(selection):
        cmd = child_command(config, overrides, name, selection, resume, write_metadata=i == 0)
        code = _wait(subprocess.Popen(cmd, env=child_env(name, parent_argv)))
        if code != 0:
            return code if code > 0 else 1
    return 0


def _wait(child: subprocess.Popen) -> int:
    """Wait for the stage process; a SIGTERM/SIGINT to this one (the launcher stopping the ranks) goes to it."""

    def forward(signum, _frame):
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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
    if kind == "FSDP":
        info["fsdp_version"] = state.fsdp_plugin.fsdp_version
        info["fsdp_state_dict_type"] = str(state.fsdp_plugin.state_dict_type).split(".")[-1]
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
