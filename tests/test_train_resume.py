"""Crash and resume: SIGKILL a run after a checkpoint, `--resume`, and compare with an uninterrupted run.

The killed run is this file run as a script: it trains with a callback that SIGKILLs its own process at
the end of a step after a checkpoint, when that step's lengths (and tightened targets) exist only in
memory: the worst moment, since they must be neither lost nor, when the resume replays the step, counted
twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from transformers import TrainerCallback

from conftest import toy_overrides
from lapo import train
from lapo.stats import LengthStats, load_targets

HERE = Path(__file__).resolve().parent


class KillAt(TrainerCallback):
    def __init__(self, stage: str, step: int):
        self.stage, self.step = stage, step

    def on_step_end(self, args, state, control, **kwargs):
        if Path(args.output_dir).name == self.stage and state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _killed_run(args: list[str], stage: str, step: int) -> None:
    """Run ``lapo train args`` in a child process that SIGKILLs itself at the end of ``step`` of ``stage``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    command = [sys.executable, __file__, stage, str(step), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return all((wa[k] == wb[k]).all() for k in wa)


@pytest.mark.slow
def test_stage1_resume_loses_and_repeats_nothing(tmp_path, warm_model_dir, toy_problems):
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"
    args = toy_overrides(warm_model_dir, toy_problems, reference, max_steps=4, save_steps=2) + ["--stage", "discovery"]
    assert train.main(args) == 0

    args = toy_overrides(warm_model_dir, toy_problems, crashed, max_steps=4, save_steps=2) + ["--stage", "discovery"]
    _killed_run(args, "discovery", 3)  # after checkpoint-2, with step 3's lengths recorded in memory only
    assert (crashed / "discovery" / "checkpoint-2" / "length_stats.jsonl").is_file()
    assert not (crashed / "discovery" / "complete.json").exists()
    assert train.main(args + ["--resume"]) == 0

    stats = LengthStats.load(crashed / "discovery" / "length_stats.jsonl")
    assert stats == LengthStats.load(reference / "discovery" / "length_stats.jsonl")
    assert sorted(r.step for r in stats.records) == [0, 0, 1, 1, 2, 2, 3, 3]  # each step's two groups, once
    assert load_targets(crashed / "targets.json") == load_targets(reference / "targets.json")
    assert _same_weights(crashed / "discovery" / "final", reference / "discovery" / "final")


@pytest.mark.slow
def test_stage2_resume_restores_lengths_and_live_targets(tmp_path, warm_model_dir, toy_problems):
    # Stage 1 sees 2 of the 8 problems; stage 2 runs almost two epochs of 4 steps, so targets tightened in
    # its first epoch (the 6 fallback ones at least) reach prompts in the second, after the checkpoint.
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"

    def args(run_dir, stage):
        extra = {"discovery.max_steps": 1, "internalization.max_steps": 7, "save_steps": 5}
        return toy_overrides(warm_model_dir, toy_problems, run_dir, **extra) + ["--stage", stage]

    assert train.main(args(reference, "discovery")) == 0
    shutil.copytree(reference, crashed)  # the same stage 1 for both
    assert train.main(args(reference, "internalization")) == 0

    _killed_run(args(crashed, "internalization"), "internalization", 6)
    checkpoint = crashed / "internalization" / "checkpoint-5"
    assert load_targets(checkpoint / "targets.json") != load_targets(crashed / "targets.json")  # tightened by then
    assert train.main(args(crashed, "internalization") + ["--resume"]) == 0

    folder, ref = crashed / "internalization", reference / "internalization"
    assert LengthStats.load(folder / "length_stats.jsonl") == LengthStats.load(ref / "length_stats.jsonl")
    assert load_targets(folder / "targets.json") == load_targets(ref / "targets.json")
    assert _same_weights(folder / "final", ref / "final")


if __name__ == "__main__":
    kill_stage, kill_step, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    options, overrides = train._arg_parser().parse_known_args(argv)
    run_cfg = train.load_run_config(options.config, overrides, stage=options.stage, resume=options.resume)
    train.run(run_cfg, callbacks=[KillAt(kill_stage, kill_step)])
