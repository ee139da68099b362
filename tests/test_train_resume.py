"""Crash and resume: SIGKILL a run after a checkpoint, `--resume`, and compare with an uninterrupted run.

Two ways to kill:

- from inside, at a chosen moment: this file run as a script trains with a callback that SIGKILLs its own
  process at the end of a step after a checkpoint, when that step's lengths (and tightened targets) exist
  only in memory: the worst moment, since they must be neither lost nor, when the resume replays the
  step, counted twice;
- from outside, as an operator or a scheduler would: ``lapo train`` in a child process, killed with
  ``os.kill(pid, SIGKILL)`` as soon as its first checkpoint holds its statistics.

Also here: a kill while a statistics file is being written leaves the previous complete file, and a
checkpoint whose statistics or targets file is unreadable is refused by ``--resume`` before any model
loads, with the file's path and line.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import toy_overrides
from safetensors.torch import load_file
from transformers import TrainerCallback

from lapo.core.io import load_targets
from lapo.core.stats import LengthStats
from lapo.train import resume
from lapo.train import run as train

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


def _killed_from_outside(args: list[str], stage_dir: Path) -> None:
    """Run ``lapo train args`` in a child process; SIGKILL it once its first checkpoint has its statistics."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(stage_dir.parent.parent / f"{stage_dir.name}.log", "w") as log:
        child = subprocess.Popen([sys.executable, "-m", "lapo.cli", "train", *args], env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 600
        while child.poll() is None and time.monotonic() < deadline:
            if resume.latest_checkpoint(stage_dir) is not None:
                os.kill(child.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        returncode = child.wait(timeout=60)
    assert returncode == -signal.SIGKILL, (stage_dir.parent.parent / f"{stage_dir.name}.log").read_text()[-3000:]
    assert not (stage_dir / "complete.json").exists()


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


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["discovery", "internalization"])
def test_lapo_train_killed_from_outside_resumes_to_the_same_statistics(tmp_path, warm_model_dir, toy_problems, stage):
    reference, crashed = tmp_path / "reference", tmp_path / "crashed"

    def args(run_dir, which):
        extra = {"discovery.max_steps": 6 if stage == "discovery" else 1, "internalization.max_steps": 6, "save_steps": 2}
        return toy_overrides(warm_model_dir, toy_problems, run_dir, **extra) + ["--stage", which]

    if stage == "internalization":  # the same finished stage 1 for both runs
        assert train.main(args(reference, "discovery")) == 0
        shutil.copytree(reference, crashed)
    assert train.main(args(reference, stage)) == 0
    _killed_from_outside(args(crashed, stage), crashed / stage)
    assert train.main(args(crashed, stage) + ["--resume"]) == 0

    folder, ref = crashed / stage, reference / stage
    assert LengthStats.load(folder / "length_stats.jsonl") == LengthStats.load(ref / "length_stats.jsonl")
    targets = "targets.json" if stage == "discovery" else "internalization/targets.json"
    assert load_targets(crashed / targets) == load_targets(reference / targets)
    assert _same_weights(folder / "final", ref / "final")


# A child process that saves statistics through the training callback twice (checkpoint-1, then checkpoint-2)
# and SIGKILLs itself at the n-th rename of the second save: after the new file is written, before it replaces.
KILL_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
from types import SimpleNamespace
from lapo.train.callbacks import StatsCallback
from lapo.core.stats import LengthStats

stage_dir, kill_at = Path(sys.argv[1]), int(sys.argv[2])
stats = LengthStats()
stats.record("p1", 0, [5, 7], 4)
callback, args = StatsCallback(stats, stage_dir), SimpleNamespace(output_dir=str(stage_dir))
callback.on_save(args, SimpleNamespace(is_world_process_zero=True, global_step=1), None)
stats.record("p1", 1, [3], 4)
renames, real_replace = [], os.replace

def replace(src, dst):
    renames.append(dst)
    if len(renames) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)

os.replace = replace
callback.on_save(args, SimpleNamespace(is_world_process_zero=True, global_step=2), None)
"""


@pytest.mark.parametrize("kill_at, resumable", [(1, "checkpoint-1"), (2, "checkpoint-2")],
                         ids=["writing-checkpoint-2", "writing-stage-copy"])
def test_a_kill_while_writing_statistics_leaves_the_previous_complete_file(tmp_path, kill_at, resumable):
    stage_dir = tmp_path / "discovery"
    done = subprocess.run([sys.executable, "-c", KILL_WHILE_WRITING, str(stage_dir), str(kill_at)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    before = LengthStats.load(stage_dir / "checkpoint-1" / "length_stats.jsonl")
    assert len(before) == 1
    assert LengthStats.load(stage_dir / "length_stats.jsonl") == before  # the stage copy: the previous file
    leftovers = list(stage_dir.rglob(".length_stats.jsonl.*.tmp"))
    assert len(leftovers) == 1  # the new file, written in full but never renamed into place
    assert resume.latest_checkpoint(stage_dir) == stage_dir / resumable
    if resumable == "checkpoint-2":  # the first rename had happened: that checkpoint is complete
        assert len(LengthStats.load(stage_dir / "checkpoint-2" / "length_stats.jsonl")) == 2


NO_MODEL = "/nonexistent/model-that-must-not-load"
CORRUPT = {
    "truncated": ("length_stats.jsonl", '{"problem_id": "a", "step": 0, "lengths": [3], "num_samples": 4}\n{"probl', 2),
    "not-a-record": ("length_stats.jsonl", '{"problem_id": "a", "step": 0, "lengths": [3], "num_samples": 4}\n{"oops": 1}\n', 2),
    "not-json": ("length_stats.jsonl", "{not json\n", 1),
    "bad-targets": ("targets.json", '{"toy-0": -5}', None),
}


@pytest.mark.parametrize("case", CORRUPT)
def test_resume_refuses_an_unreadable_checkpoint_file(tmp_path, toy_problems, capsys, monkeypatch, case):
    monkeypatch.setattr(train, "load_tokenizer", lambda *a: pytest.fail("a tokenizer was loaded"))
    name, text, line = CORRUPT[case]
    stage = "internalization" if name == "targets.json" else "discovery"
    good = '{"problem_id": "a", "step": 0, "lengths": [3], "num_samples": 4}\n'
    run_dir = tmp_path / "run"
    for step in (2, 4):  # checkpoint-2 is fine; the newest, checkpoint-4, holds the unreadable file
        folder = run_dir / stage / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "length_stats.jsonl").write_text(good)
    (run_dir / stage / "checkpoint-4" / name).write_text(text)
    (run_dir / "targets.json").write_text('{"toy-0": 10}')
    argv = [f"model_name_or_path={NO_MODEL}", f"dataset={toy_problems}", f"output_dir={run_dir}", "use_cpu=true",
            "bf16=false", "--stage", stage, "--resume"]
    assert train.main(argv) == 2
    message = capsys.readouterr().err.strip()
    bad = run_dir / stage / "checkpoint-4" / name
    where = f"{bad}:{line}:" if line else f"{bad}:"
    assert message.count("\n") == 0 and where in message, message
    assert f"remove {bad.parent} and pass --resume again to continue from the earlier {bad.parent.with_name('checkpoint-2')}" in message


if __name__ == "__main__":
    kill_stage, kill_step, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    options, overrides = train._arg_parser().parse_known_args(argv)
    run_cfg = train.load_run_config(options.config, overrides, stage=options.stage, resume=options.resume)
    train.run(run_cfg, callbacks=[KillAt(kill_stage, kill_step)])
