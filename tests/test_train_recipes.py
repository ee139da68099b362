"""Every recipe parses, and runs one step of each stage with its model swapped for a tiny one.

The swap keeps the architecture (Qwen2 for the 1.5B models and the counting model, Llama for SmolLM2) and
applies the CPU overrides of docs/TRAINING.md: no vLLM, no bf16, tiny batches and generations. Everything
else (prompt format, LAPO settings, LoRA, loss) is the recipe's own. What the paper recipes set, flag by flag
against the reference, is held by tests/test_paper_recipes.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import cpu_overrides

from lapo.core import length
from lapo.train import run as train
from lapo.train.config import load_run_config

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TRAINING_RECIPES = sorted(p for p in RECIPES.rglob("*.yaml") if p.parent.name != "accelerate")
ARCHITECTURE = {  # the real model's architecture, for the tiny stand-in
    "agentica-org/DeepScaleR-1.5B-Preview": "qwen2",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": "qwen2",
    "lapo-counting-base": "qwen2",
    "smollm2-135m-instruct": "llama",
}


def _recipe_id(path: Path) -> str:
    return str(path.relative_to(RECIPES))


def test_every_model_recipe_is_covered():
    assert {_recipe_id(p) for p in TRAINING_RECIPES} >= {
        "deepscaler-1.5b/config.yaml", "deepscaler-1.5b/lora-1gpu.yaml", "r1-distill-qwen-1.5b/config.yaml",
        "counting/config.yaml", "smollm2-135m/config.yaml",
    }


@pytest.mark.parametrize("recipe", TRAINING_RECIPES, ids=_recipe_id)
def test_recipe_runs_one_step_per_stage(recipe, tmp_path, tiny_qwen2_dir, tiny_llama_dir, toy_problems):
    raw = yaml.safe_load(recipe.read_text())
    model_dir = {"qwen2": tiny_qwen2_dir, "llama": tiny_llama_dir}[ARCHITECTURE[raw["model_name_or_path"]]]
    # Built-in tasks need no download and stay; hub datasets and local paths become the toy file.
    dataset = raw["dataset"] if raw["dataset"] == "counting" else toy_problems
    overrides = cpu_overrides(model_dir, dataset, tmp_path / "run", max_steps=1, max_problems=16)
    assert train.main(["--config", str(recipe), *overrides]) == 0
    for stage in ("discovery", "internalization"):
        assert (tmp_path / "run" / stage / "complete.json").is_file()
    run = load_run_config(recipe, overrides)
    assert run.stages["discovery"].lapo.discovery_weight == length.DISCOVERY_WEIGHT  # the recipe's, not ours


def test_smollm2_recipe_trains_in_float32_on_cpu_as_written():
    # bf16 autocast is emulated, and slower, on CPUs without bf16 units (benchmarks/smollm2_step.md).
    run = load_run_config(RECIPES / "smollm2-135m/config.yaml", [])
    assert all(not stage.grpo.bf16 and stage.grpo.use_cpu for stage in run.stages.values())


def test_smollm2_recipe_steps_are_two_prompts_of_eight_completions():
    # Trained in two halves of 8 (gradient accumulation), generated as one batch of 16: 2 prompts per step.
    g = load_run_config(RECIPES / "smollm2-135m/config.yaml", []).stages["discovery"].grpo
    assert (g.generation_batch_size, g.num_generations, g.gradient_accumulation_steps) == (16, 8, 2)
