"""Every recipe parses, and runs one step of each stage with its model swapped for a tiny one.

The swap keeps the architecture (Qwen2 for the 1.5B models and the counting model, Llama for SmolLM2) and
applies the CPU overrides of docs/TRAINING.md: no vLLM, no bf16, tiny batches and generations. Everything
else (prompt format, LAPO settings, LoRA, loss) is the recipe's own.
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


@pytest.mark.parametrize("name", ["deepscaler-1.5b/config.yaml", "r1-distill-qwen-1.5b/config.yaml"])
def test_paper_recipes_hold_the_paper_hyperparameters(name):
    run = load_run_config(RECIPES / name, ["use_cpu=true", "bf16=false"])  # bf16 needs a GPU to parse
    d, i = run.stages["discovery"], run.stages["internalization"]
    assert (d.grpo.max_completion_length, i.grpo.max_completion_length) == (4096, 2048)
    for stage in (d, i):
        g, lapo = stage.grpo, stage.lapo
        assert (g.num_generations, g.learning_rate, g.beta, g.num_train_epochs) == (8, 1e-6, 1e-4, 3)
        assert (g.temperature, g.top_p, g.use_vllm) == (1.0, 1.0, True)
        assert (lapo.band_low, lapo.band_high, lapo.band_decay) == (30, 70, 100)
        assert (lapo.discovery_weight, lapo.internalization_weight, lapo.sigma) == (0.7, 0.8, 120)
        assert (lapo.max_prompt_length, lapo.max_problems) == (1024, 10000)
        # 128 prompts x 8 samples per rollout on 4 GPUs
        assert 4 * g.per_device_train_batch_size * g.gradient_accumulation_steps == 128 * 8
    assert yaml.safe_load((RECIPES / name).read_text())["bf16"] is True


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


def test_smollm2_recipe_trains_in_bf16_on_cpu_as_written():
    # bf16 autocast is the recipe's CPU speed-up (benchmarks/smollm2_step.py); it must parse with use_cpu.
    run = load_run_config(RECIPES / "smollm2-135m/config.yaml", [])
    assert all(stage.grpo.bf16 and stage.grpo.use_cpu for stage in run.stages.values())
