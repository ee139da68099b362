"""End to end on a tiny model: both stages, the hand-off, the run directory, stage 2 alone, LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import toy_overrides
from safetensors.torch import load_file

from lapo.core.budget import parse_budget
from lapo.core.io import load_targets
from lapo.core.length import median
from lapo.core.stats import LengthStats, tighten_target
from lapo.train import rewards, trainer
from lapo.train import run as train


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _changed(before: dict, after: dict) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before)


@pytest.fixture
def seen_prompts(monkeypatch):
    """Every stage-2 reward call's prompts and budget columns, captured by wrapping the reward."""
    calls: list[dict] = []
    original = rewards.InternalizationReward.__call__

    def capture(self, prompts, completions, completion_ids, **kwargs):
        calls.append({"prompts": list(prompts), "budget": list(kwargs["budget"]),
                      "problem_id": list(kwargs["problem_id"]), "step": kwargs["trainer_state"].global_step})
        return original(self, prompts, completions, completion_ids, **kwargs)

    monkeypatch.setattr(rewards.InternalizationReward, "__call__", capture)
    return calls


def test_both_stages_end_to_end(tmp_path, warm_model_dir, toy_problems, seen_prompts):
    run_dir = tmp_path / "run"
    assert train.main(toy_overrides(warm_model_dir, toy_problems, run_dir, max_steps=2)) == 0

    # Statistics: every stage-1 group of both steps, read back from the run directory.
    stats = LengthStats.load(run_dir / "discovery" / "length_stats.jsonl")
    assert {r.step for r in stats.records} == {0, 1}
    assert all(r.num_samples == 4 for r in stats.records) and len(stats.records) == 4  # 2 steps x 2 prompts
    # Target map: the policy's median for each sampled problem, the fallback (max length) for the rest.
    targets = load_targets(run_dir / "targets.json")
    assert targets == stats.targets("last", fallback=24, problem_ids=[f"toy-{i}" for i in range(8)])
    # Stage-2 prompts carry their problem's budget, right after the think tag.
    assert len(seen_prompts) == 2
    first = seen_prompts[0]
    for prompt, budget, pid in zip(first["prompts"], first["budget"], first["problem_id"]):
        assert parse_budget(prompt) == budget == targets[pid]
        assert "<think>I will answer the question with" in prompt
    # Parameters moved in each stage.
    start, mid, end = _weights(warm_model_dir), _weights(run_dir / "discovery" / "final"), _weights(run_dir / "internalization" / "final")
    assert _changed(start, mid) and _changed(mid, end)


def test_tightened_targets_reach_later_prompts(tmp_path, warm_model_dir, toy_problems, seen_prompts):
    # Stage 1 sees 2 of 8 problems, so 6 start stage 2 at the fallback; stage 2 runs 1.5 epochs of 4 steps.
    run_dir = tmp_path / "run"
    extra = {"discovery.max_steps": 1, "internalization.max_steps": 6}
    assert train.main(toy_overrides(warm_model_dir, toy_problems, run_dir, **extra)) == 0
    live = load_targets(run_dir / "targets.json")
    records = LengthStats.load(run_dir / "internalization" / "length_stats.jsonl").records
    shown_lower = 0
    for call in sorted(seen_prompts, key=lambda c: c["step"]):
        for prompt, budget, pid in zip(call["prompts"], call["budget"], call["problem_id"]):
            assert parse_budget(prompt) == budget == live[pid]  # every prompt shows the target as it is now
            shown_lower += budget < load_targets(run_dir / "targets.json")[pid]
        for r in records:  # replay this step's tightening
            if r.step == call["step"]:
                tighten_target(live, r.problem_id, median(r.lengths))
    assert shown_lower > 0  # some later prompt carried a target lowered during stage 2
    assert live == load_targets(run_dir / "internalization" / "targets.json")


def test_run_directory_layout(tmp_path, warm_model_dir, toy_problems):
    run_dir = tmp_path / "run"
    assert train.main(toy_overrides(warm_model_dir, toy_problems, run_dir, max_steps=1, save_steps=1)) == 0
    for name in ("config.yaml", "recipe.yaml", "run.json", "targets.json", "lapo.log"):
        assert (run_dir / name).is_file(), name
    for stage in ("discovery", "internalization"):
        folder = run_dir / stage
        for name in ("final/config.json", "final/model.safetensors", "final/tokenizer.json", "length_stats.jsonl",
                     "log_history.jsonl", "complete.json", "checkpoint-1/length_stats.jsonl"):
            assert (folder / name).is_file(), f"{stage}/{name}"
        logs = [json.loads(line) for line in (folder / "log_history.jsonl").read_text().splitlines()]
        assert "lapo/accuracy" in logs[0] and "lapo/mean_length" in logs[0]
    assert (run_dir / "internalization" / "checkpoint-1" / "targets.json").is_file()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["seed"] == 0 and meta["versions"]["trl"] == "1.16.0"
    assert "lapo/band_hit_rate" in (run_dir / "discovery" / "log_history.jsonl").read_text()
    assert "lapo/budget_deviation" in (run_dir / "internalization" / "log_history.jsonl").read_text()


def test_stage2_alone_takes_the_stage1_run(tmp_path, warm_model_dir, toy_problems, monkeypatch):
    run_dir = tmp_path / "run"
    base = toy_overrides(warm_model_dir, toy_problems, run_dir, max_steps=1)
    assert train.main(base + ["--stage", "discovery"]) == 0
    assert not (run_dir / "internalization").exists()
    loaded = []
    original = trainer.load_model
    monkeypatch.setattr(trainer, "load_model", lambda name, cfg: loaded.append(name) or original(name, cfg))
    assert train.main(base + ["--stage", "internalization"]) == 0
    assert loaded == [str(run_dir / "discovery" / "final")]  # stage 1's weights, not the recipe's model
    assert (run_dir / "internalization" / "complete.json").is_file()


def test_an_existing_run_needs_resume(tmp_path, warm_model_dir, toy_problems, capsys):
    run_dir = tmp_path / "run"
    args = toy_overrides(warm_model_dir, toy_problems, run_dir, max_steps=1) + ["--stage", "discovery"]
    assert train.main(args) == 0
    assert train.main(args) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert train.main(args + ["--resume"]) == 0  # complete: nothing to do, no error


def test_lora_final_model_is_merged(tmp_path, warm_model_dir, toy_problems):
    run_dir = tmp_path / "run"
    extra = {"use_peft": "true", "lora_r": 4, "lora_alpha": 8, "lora_target_modules": "[q_proj,v_proj]", "max_steps": 1}
    assert train.main(toy_overrides(warm_model_dir, toy_problems, run_dir, **extra) + ["--stage", "discovery"]) == 0
    final = run_dir / "discovery" / "final"
    assert not (final / "adapter_config.json").exists()  # full weights, loadable by transformers and vLLM
    weights = _weights(final)
    assert not any("lora" in k for k in weights) and set(weights) == set(_weights(warm_model_dir))
