"""One launch, both stages, two CPU processes (gloo): DDP, DeepSpeed ZeRO-2, ZeRO-3 (``zero3_init_flag`` on and
off), FSDP2 (sharded and full state dicts); in each launch one stage trains LoRA adapters and the other the full
model, and stage 2 resumes from its checkpoint under each engine.

Each backend is launched once, as a user would (``torchrun`` for DDP, ``accelerate launch`` with a DeepSpeed or
FSDP config otherwise), with ``-m lapo.cli train``: the launched process on each rank runs each stage in its
own process (lapo.train.launch). num_generations=4 and 6 completions per process: each step's 12 completions
are 3 groups, and the middle group has two completions on each process.

A test-only hook (tests/stage_hook/sitecustomize.py, on the stage processes' PYTHONPATH) dumps, per rank,
every completion with the reward the library returned; the tests recompute each step's rewards, the length
statistics and the target maps in this one process from the same completions and require them equal.

FSDP on CPU needs a SHIM: accelerate turns FSDP on only for accelerator devices and silently trains DDP on
CPU; the hook makes accelerate take its FSDP branch on MULTI_CPU (see the hook). The tests assert that each
stage really trained with the engine asked for (DEEPSPEED with its ZeRO stage, FSDP version 2), not DDP.

Every launch has a timeout: a deadlock fails the test instead of hanging CI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from typing import NamedTuple

import pytest

from conftest import toy_overrides, write_toy_problems

HERE = Path(__file__).resolve().parent
NUM_GENERATIONS = 4
PER_DEVICE = 6  # not a multiple of NUM_GENERATIONS: a group straddles the two processes
LAUNCH_TIMEOUT = 900  # seconds; a deadlocked collective fails the test

_FSDP2 = {
    "fsdp_version": 2, "fsdp_auto_wrap_policy": "NO_WRAP", "fsdp_reshard_after_forward": True,
    "fsdp_cpu_ram_efficient_loading": False,
}


class Launch(NamedTuple):
    """An accelerate config (None: torchrun, plain DDP) and the one stage trained with LoRA, so that a launch
    covers its engine both with LoRA (adapters merged into full weights in final/) and without."""

    accelerate: dict | None
    lora_stage: str


LAUNCHES = {
    "ddp": Launch(None, "discovery"),
    "zero2": Launch({"distributed_type": "DEEPSPEED", "deepspeed_config": {"zero_stage": 2}}, "internalization"),
    # ZeRO-3 without 16-bit saving: the final model must still be gathered, never empty shards.
    "zero3": Launch(
        {"distributed_type": "DEEPSPEED",
         "deepspeed_config": {"zero_stage": 3, "zero3_init_flag": True, "zero3_save_16bit_model": False}},
        "discovery",
    ),
    "zero3-noinit": Launch(
        {"distributed_type": "DEEPSPEED",
         "deepspeed_config": {"zero_stage": 3, "zero3_init_flag": False, "zero3_save_16bit_model": True}},
        "internalization",
    ),
    # Sharded checkpoints, the harder case: each stage's final/ must still be full Hugging Face weights.
    "fsdp2": Launch({"distributed_type": "FSDP", "fsdp_config": {**_FSDP2, "fsdp_state_dict_type": "SHARDED_STATE_DICT"}},
                    "internalization"),
    # What recipes/accelerate/fsdp.yaml ships.
    "fsdp2-full": Launch({"distributed_type": "FSDP", "fsdp_config": {**_FSDP2, "fsdp_state_dict_type": "FULL_STATE_DICT"}},
                         "discovery"),
}
EXPECTED_ENGINE = {
    "ddp": {"distributed_type": "MULTI_CPU"},
    "zero2": {"distributed_type": "DEEPSPEED", "zero_stage": 2},
    "zero3": {"distributed_type": "DEEPSPEED", "zero_stage": 3, "zero3_init_flag": True},
    "zero3-noinit": {"distributed_type": "DEEPSPEED", "zero_stage": 3, "zero3_init_flag": False},
    "fsdp2": {"distributed_type": "FSDP", "fsdp_version": 2, "fsdp_state_dict_type": "SHARDED_STATE_DICT"},
    "fsdp2-full": {"distributed_type": "FSDP", "fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT"},
}
BACKENDS = list(LAUNCHES)
# --resume of stage 2 from its checkpoint under each engine (zero3-noinit saves what zero3 saves). A one-process
# resume is tests/test_train_resume.py's.
RESUMED = ("ddp", "zero2", "zero3", "fsdp2", "fsdp2-full")
LORA_TARGETS = ("q_proj", "v_proj")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accelerate_config(backend: str, folder: Path) -> Path:
    """A 2-process accelerate config. ``use_cpu: false`` so accelerate uses its multi-process launcher (with
    ``use_cpu: true`` it starts one process); the processes train on CPU through lapo's ``use_cpu=true`` and
    DeepSpeed's CPU accelerator (``DS_ACCELERATOR=cpu``)."""
    import yaml

    config = {
        "compute_environment": "LOCAL_MACHINE", "mixed_precision": "no", "num_machines": 1, "num_processes": 2,
        "machine_rank": 0, "rdzv_backend": "static", "same_network": True, "use_cpu": False,
        **LAUNCHES[backend].accelerate,
    }
    path = folder / f"{backend}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def launch(backend: str, folder: Path, model_dir: Path, dataset: Path, *extra: str) -> subprocess.CompletedProcess:
    """``lapo train`` on 2 CPU processes under ``backend``, both stages, 2 steps each (a checkpoint per step
    where a resume test needs them)."""
    spec = LAUNCHES[backend]
    dump = folder / "dump"
    dump.mkdir(exist_ok=True)
    env = {
        **os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": os.pathsep.join([str(HERE / "stage_hook"), os.environ.get("PYTHONPATH", "")]),
        "LAPO_TEST_DUMP_DIR": str(dump), "LAPO_TEST_FSDP_ON_CPU": "1" if (spec.accelerate or {}).get("distributed_type") == "FSDP" else "0",
    }
    port = str(_free_port())
    if spec.accelerate is None:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    else:
        config = _accelerate_config(backend, folder)
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                    "--main_process_port", port]
    overrides = toy_overrides(
        model_dir, dataset, folder / "run", num_generations=NUM_GENERATIONS, per_device_train_batch_size=PER_DEVICE,
        max_steps=2, save_steps=1000,
    )
    overrides += [f"{spec.lora_stage}.use_peft=true", "lora_r=4", "lora_alpha=8", f"lora_target_modules=[{','.join(LORA_TARGETS)}]"]
    if backend in RESUMED:  # stage 2's checkpoints, for the resume test (stage 1's would cost time for nothing)
        overrides.append("internalization.save_steps=1")
    command = [*launcher, "-m", "lapo.cli", "train", *overrides, *extra]  # a bare --resume last
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, cwd=folder)


_RUNS: dict[str, Path | str] = {}  # backend -> its run folder, or why its launch failed (launched once)


@pytest.fixture(scope="module")
def launched(tmp_path_factory, warm_model_dir):
    """The run folder of each backend, launched once for the module (each launch costs a minute or more)."""

    def get(backend: str) -> Path:
        if backend not in _RUNS:
            folder = tmp_path_factory.mktemp(backend)
            dataset = write_toy_problems(folder / "toy.jsonl")
            done = launch(backend, folder, warm_model_dir, dataset)
            _RUNS[backend] = folder if done.returncode == 0 else f"exit {done.returncode}: {done.stderr[-6000:]}"
        if isinstance(_RUNS[backend], str):
            pytest.fail(f"the {backend} launch failed, {_RUNS[backend]}")
        return _RUNS[backend]

    return get


# ============================================================================================ recomputing in one process


def _read(dump: Path) -> dict[tuple[str, int], list[dict]]:
    """Each (stage, step)'s completions in TRL's global order: rank 0's rows, then rank 1's."""
    rows = [json.loads(line) for rank in (0, 1) for line in (dump / f"rank{rank}.jsonl").read_text().splitlines()]
    batches: dict[tuple[str, int], list[dict]] = {}
    for row in sorted(rows, key=lambda r: (r["rank"], r["index"])):
        batches.setdefault((row["stage"], row["step"]), []).append(row)
    return batches


class _State:
    """What TRL passes as ``trainer_state``: the step and epoch the rewards are recorded under."""

    def __init__(self, step: int, epoch: float):
        self.global_step, self.epoch = step, epoch


def _one_process(stage: str, rows: list[dict], stats, targets=None) -> list[float]:
    """The stage's reward computed in this (non-distributed) process on all of the step's completions."""
    from lapo.core.checker import AnswerChecker
    from lapo.train.rewards import DiscoveryReward, InternalizationReward

    checker = AnswerChecker(workers=0)
    if stage == "lapo_discovery":
        reward, columns = DiscoveryReward(NUM_GENERATIONS, stats, checker), {}
    else:
        reward = InternalizationReward(NUM_GENERATIONS, stats, checker, targets, tighten=True)
        columns = {"budget": [r["budget"] for r in rows], "budget_fallback": [r["budget_fallback"] for r in rows]}
    return reward(
        prompts=[""] * len(rows),
        completions=[r["completion"] for r in rows],
        completion_ids=[r["completion_ids"] for r in rows],
        problem_id=[r["problem_id"] for r in rows],
        answer=[r["answer"] for r in rows],
        trainer_state=_State(rows[0]["step"], rows[0]["epoch"]),
        **columns,
    )


def _recompute(folder: Path):
    """Rewards, statistics and targets of both stages, computed in this process from the dumped completions."""
    from lapo.core import io
    from lapo.core.stats import LengthStats

    batches = _read(folder / "dump")
    stats = {"lapo_discovery": LengthStats(), "lapo_internalization": LengthStats()}
    live = dict(io.load_targets(folder / "run" / "targets.json"))  # stage 2 starts from the hand-off
    rewards = {}
    for (stage, step), rows in sorted(batches.items()):
        rewards[stage, step] = _one_process(stage, rows, stats[stage], live)
    problems = [f"toy-{i}" for i in range(8)]
    handoff = stats["lapo_discovery"].targets("last", fallback=24, problem_ids=problems)
    return batches, rewards, stats, handoff, live


# ============================================================================================ tests


@pytest.mark.slow
@pytest.mark.multiproc
@pytest.mark.parametrize("backend", BACKENDS)
def test_split_groups_get_the_one_process_rewards(launched, backend):
    batches, rewards, *_ = _recompute(launched(backend))
    assert {stage for stage, _ in batches} == {"lapo_discovery", "lapo_internalization"}
    split = 0
    for key, rows in batches.items():
        assert len(rows) == 2 * PER_DEVICE
        assert [r["reward"] for r in rows] == rewards[key], key
        groups = [rows[i : i + NUM_GENERATIONS] for i in range(0, len(rows), NUM_GENERATIONS)]
        split += sum(len({r["rank"] for r in g}) == 2 for g in groups)
    assert split == len(batches)  # every step had a group on both processes


@pytest.mark.slow
@pytest.mark.multiproc
@pytest.mark.parametrize("backend", BACKENDS)
def test_statistics_and_targets_equal_the_one_process_computation(launched, backend):
    from lapo.core import io
    from lapo.core.stats import LengthStats

    folder = launched(backend)
    _, _, stats, handoff, live = _recompute(folder)
    run = folder / "run"
    assert LengthStats.load(run / "discovery" / "length_stats.jsonl") == stats["lapo_discovery"]
    assert LengthStats.load(run / "internalization" / "length_stats.jsonl") == stats["lapo_internalization"]
    assert io.load_targets(run / "targets.json") == handoff
    assert io.load_targets(run / "internalization" / "targets.json") == {k: live[k] for k in handoff}


@pytest.mark.slow
@pytest.mark.multiproc
@pytest.mark.parametrize("backend", BACKENDS)
def test_final_models_load_with_the_trained_weights(launched, backend, warm_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    run = launched(backend) / "run"
    init = AutoModelForCausalLM.from_pretrained(warm_model_dir).state_dict()
    previous = init
    for stage in ("discovery", "internalization"):
        final = AutoModelForCausalLM.from_pretrained(run / stage / "final").state_dict()
        assert final.keys() == init.keys()
        assert all(final[k].shape == init[k].shape for k in init)  # full weights, no empty ZeRO-3 shard
        changed = [k for k in init if not torch.equal(final[k], previous[k])]
        assert changed, f"{stage} did not change the weights"
        lora = [k for k in changed if k.endswith(tuple(f"{m}.weight" for m in LORA_TARGETS))]
        if stage == LAUNCHES[backend].lora_stage:  # merged adapters: only the LoRA target modules moved
            assert lora == changed, changed
        else:  # full fine-tuning: the other weights moved too
            assert len(lora) < len(changed), changed
        previous = final


@pytest.mark.slow
@pytest.mark.multiproc
@pytest.mark.parametrize("backend", BACKENDS)
def test_each_stage_trained_with_the_engine_asked_for(launched, backend):
    run = launched(backend) / "run"
    info = json.loads((run / "run.json").read_text())["scale_out"]
    assert info["world_size"] == 2 and info["backend"] == "gloo" and info["stage_processes"]
    for stage in ("discovery", "internalization"):
        engine = json.loads((run / stage / "complete.json").read_text())["engine"]
        assert engine["world_size"] == 2
        assert engine["lora"] == (stage == LAUNCHES[backend].lora_stage), (stage, engine)
        assert {k: engine.get(k) for k in EXPECTED_ENGINE[backend]} == EXPECTED_ENGINE[backend], (stage, engine)


@pytest.mark.slow
@pytest.mark.multiproc
@pytest.mark.parametrize("backend", RESUMED)
def test_resume_continues_stage2_from_its_checkpoint(launched, backend, warm_model_dir):
    """Stage 2 as if killed after its first checkpoint: --resume skips stage 1 and records what it recorded."""
    from lapo.core.stats import LengthStats

    source = launched(backend)
    folder = source.parent / f"{source.name}-resume"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("dump"))
    stage2 = folder / "run" / "internalization"
    for name in ("complete.json", "final", "checkpoint-2", "length_stats.jsonl", "targets.json"):
        path = stage2 / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    done = launch(backend, folder, warm_model_dir, folder / "toy.jsonl", "--resume")
    assert done.returncode == 0, done.stderr[-6000:]
    assert (stage2 / "complete.json").is_file() and (stage2 / "final" / "config.json").is_file()
    original = LengthStats.load(source / "run" / "internalization" / "length_stats.jsonl")
    assert LengthStats.load(stage2 / "length_stats.jsonl") == original
    trained = {(stage, step) for stage, step in _read(folder / "dump")}
    assert trained == {("lapo_internalization", 1)}  # neither stage 1 nor stage 2's first step trained again
