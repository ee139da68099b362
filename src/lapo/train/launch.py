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

from lapo.errors import LapoError
from lapo.train import config as config_module
from lapo.train.config import load_run_config, method_stage, parse_overrides, read_recipe
from lapo.train.distributed import LAUNCH_ENV, check_layout, check_precision, engine_from_env

STAGE_ORDER = ("discovery", "internalization")
PORT_OFFSET = {"discovery": 1, "internalization": 2}


# ============================================================================================ the launch


def stages_in_processes(colocated_vllm: bool = False) -> bool:
    """Whether each stage runs in its own process (see the module docstring for why)."""
    if os.environ.get("LAPO_STAGE_PROCESSES") in ("0", "1"):  # explicit: tests, debugging
        return os.environ["LAPO_STAGE_PROCESSES"] == "1"
    engine = engine_from_env()["engine"]
    return engine != "single" or colocated_vllm


def selected_stages(config: str | None, overrides: list[str], stage: str | None) -> tuple[str, ...]:
    """Which stages the run selects, from --stage, an override or the recipe's ``stage``, and its ``method``."""
    keys = _run_keys(config, overrides)
    chosen = stage or keys.get("stage") or "all"
    if chosen not in (*STAGE_ORDER, "all"):
        raise LapoError(f"stage={chosen!r} is not one of 'discovery', 'internalization', 'all'; pick one of those.")
    # Another method than LAPO trains one stage (plain, L1, ... in discovery/; lapo-i in internalization/).
    chosen = method_stage(keys.get("method") or "lapo", chosen)
    return STAGE_ORDER if chosen == "all" else (chosen,)


def colocated_vllm(config: str | None, overrides: list[str]) -> bool:
    """The recipe (or an override) generates with vLLM inside the training process."""
    keys = _run_keys(config, overrides)
    return str(keys.get("use_vllm", False)).lower() == "true" and str(keys.get("vllm_mode", "colocate")) == "colocate"


def _run_keys(config: str | None, overrides: list[str]) -> dict:
    """The recipe's keys with the overrides on top, as YAML and strings only: the parent parses no engine
    configuration (TRL's arguments would start a process group)."""
    keys = dict(read_recipe(config)[0]["discovery"]) if config else {}
    keys.update(parse_overrides(list(overrides))["discovery"])
    return keys


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


def check_run(config, overrides, stage: str | None, resume) -> None:
    """The checks that need no model, in this process, before any stage process starts (one LapoError line).

    A plain process (colocated vLLM, no launcher) parses the whole run; a launched rank checks the recipe's keys
    that need no parsing (precision, batch layout, DeepSpeed installed): parsing TRL's arguments here would
    start a process group. Stage 1's process then runs every check before its model loads."""
    if engine_from_env()["engine"] == "single":
        load_run_config(config, overrides, stage=stage, resume=resume)
        return
    sections = read_recipe(config)[0] if config else {s: {} for s in STAGE_ORDER}
    cli = parse_overrides(list(overrides))
    for name in STAGE_ORDER:
        flat = {**sections[name], **cli[name]}
        config_module._check_deepspeed_installed(flat)
        check_precision(flat, name)
        check_layout(flat, name)


def run_stage_processes(config, overrides, stage: str | None, resume, parent_argv: list[str]) -> int:
    """Run each selected stage in its own process; the first non-zero exit status ends the run with it."""
    check_run(config, overrides, stage, resume)
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
