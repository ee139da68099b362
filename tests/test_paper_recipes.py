"""The paper recipes train what the paper trained (docs/PAPER_RECIPES.md).

Each recipe is parsed at the world size of the launch command its header documents (``accelerate launch
--config_file recipes/accelerate/zero3.yaml`` -> that file's ``num_processes``; ``lapo train`` -> 1), and the
figures the reference's flags imply are asserted: rollouts, optimizer steps, loss, schedule, optimizer, KL,
sampling, lengths, vLLM settings and prompt. Precision is checked on a tiny model of the same architecture,
built in the test: one AdamW step at the paper's learning rate must move the weights, and the LoRA recipe's
frozen base must survive TRL's merge/unmerge round trips around each vLLM sync.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
import torch
import yaml
from packaging.requirements import Requirement
from transformers import Trainer, TrainingArguments

from conftest import make_char_tokenizer, make_tiny_model
from lapo.data.prompts import PromptFormat, render_prompt
from lapo.train import config as config_module
from lapo.train.config import load_run_config
from lapo.train.rollouts import rollout_plan

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
PAPER_RECIPES = ["deepscaler-1.5b/config.yaml", "r1-distill-qwen-1.5b/config.yaml", "deepscaler-1.5b/lora-1gpu.yaml"]
PROBLEMS = 10_000  # --max_samples 10000


def documented_world_size(recipe: Path) -> int:
    """The number of processes of the launch command in the recipe's header (1 for plain ``lapo train``)."""
    match = re.search(r"--config_file (\S+)", recipe.read_text(encoding="utf-8"))
    if not match:
        return 1
    return int(yaml.safe_load((ROOT / match.group(1)).read_text(encoding="utf-8"))["num_processes"])


@pytest.fixture
def parse_at_documented_world_size(monkeypatch):
    """``load_run_config`` as the documented launch would parse it: its world size, the extras installed."""

    def parse(name: str):
        recipe = RECIPES / name
        world = documented_world_size(recipe)
        monkeypatch.setattr(TrainingArguments, "world_size", property(lambda self: world))
        monkeypatch.setattr(config_module, "_installed", lambda package: True)
        monkeypatch.setattr(config_module, "_available_reporters", lambda: ["tensorboard"])
        return load_run_config(recipe, ["use_cpu=true"]), world

    return parse


# ------------------------------------------------------------------------------------------ rollouts and steps


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_rollouts_and_optimizer_steps_are_the_references(name, parse_at_documented_world_size):
    run, world = parse_at_documented_world_size(name)
    assert world == (1 if "1gpu" in name else 4)
    for stage in run.stages.values():
        plan = rollout_plan(stage.grpo, PROBLEMS)
        # --rollout_batch_size 128 x --n_samples_per_prompt 8; --train_batch_size 128 completions per step
        assert (plan.prompts_per_rollout, plan.completions_per_rollout) == (128, 1024)
        assert plan.completions_per_step == 128 and plan.steps_per_rollout == 8
        # 78 full rollouts per episode (the reference's dataloader drops the last 16 problems too) x 8 x 3;
        # the reference's scheduler counted 10,000 x 8 // 128 x 3 = 1,875 of them
        assert (plan.rollouts_per_epoch, plan.steps) == (78, 1872)
        assert plan.warmup_steps == 57  # ceil(3% of the steps), as the reference's ceil(1,875 x 0.03)
        assert stage.grpo.num_iterations == 1  # --max_epochs 1


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_loss_schedule_optimizer_kl_and_sampling_are_the_references(name, parse_at_documented_world_size):
    run, _ = parse_at_documented_world_size(name)
    for stage in run.stages.values():
        g = stage.grpo
        assert g.loss_type == "bnpo"  # token-level mean over the micro-batch
        assert (g.epsilon, g.epsilon_high or g.epsilon, g.delta) == (0.2, 0.2, None)  # TRL: high = low if unset
        assert g.lr_scheduler_type == "cosine_with_min_lr" and g.lr_scheduler_kwargs == {"min_lr_rate": 0.1}
        assert g.warmup_steps == 0.03
        assert (g.adam_beta1, g.adam_beta2, g.weight_decay, g.max_grad_norm) == (0.9, 0.95, 0.0, 1.0)
        assert g.learning_rate == (1e-5 if stage.model.use_peft else 1e-6)
        assert (g.beta, g.use_bias_correction_kl) == (1e-4, False)  # plain k3 KL in the loss
        assert g.scale_rewards == "group"  # group_norm
        assert (g.temperature, g.top_p, g.top_k, g.num_generations) == (1.0, 1.0, 0, 8)
        assert g.vllm_importance_sampling_correction is False
        assert (g.num_train_epochs, g.seed) == (3, 42)
        assert (stage.model.dtype, g.bf16) == ("float32", True)


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_lengths_prompt_and_vllm_settings(name, parse_at_documented_world_size):
    run, world = parse_at_documented_world_size(name)
    d, i = run.stages["discovery"], run.stages["internalization"]
    assert (d.grpo.max_completion_length, i.grpo.max_completion_length) == (4096, 2048)
    for stage in (d, i):
        g, lapo = stage.grpo, stage.lapo
        assert (lapo.max_prompt_length, lapo.max_problems, lapo.prompt_kind) == (1024, 10_000, "reference")
        assert g.vllm_max_model_length == lapo.max_prompt_length + g.max_completion_length
        assert (g.use_vllm, g.vllm_mode, g.vllm_tensor_parallel_size, g.vllm_enable_sleep_mode) == (
            True, "colocate", 1, True)
        assert 0.3 <= g.vllm_gpu_memory_utilization <= 0.7
        assert int(g.save_steps) == 20 * 8  # --save_steps 20 rollouts
        assert (lapo.band_low, lapo.band_high, lapo.band_decay) == (30, 70, 100)
        assert (lapo.discovery_weight, lapo.internalization_weight, lapo.sigma) == (0.7, 0.8, 120)


@pytest.mark.parametrize("name", ["deepscaler-1.5b/config.yaml", "deepscaler-1.5b/lora-1gpu.yaml"])
def test_the_kv_cache_arithmetic_in_the_recipe_comment(name, parse_at_documented_world_size):
    """The utilisation the comment derives: stage 1's worst case fits, or (one GPU) a third of the rollout does."""
    run, _ = parse_at_documented_world_size(name)
    g = run.stages["discovery"].grpo
    kv_per_token = 28 * 2 * 2 * 128 * 2  # layers x (K, V) x KV heads x head dim x bf16 bytes, Qwen2-1.5B
    gib, gpu = 2**30, 79.2  # an 80 GB H100 or A100 as CUDA reports it
    engine_seqs = g.per_device_train_batch_size * g.vllm_tensor_parallel_size * g.steps_per_generation  # TRL
    kv = g.vllm_gpu_memory_utilization * gpu - 3.3 - 1.5  # weights (1.78B bf16) and activations
    fits = kv * gib / kv_per_token / g.vllm_max_model_length
    assert fits >= (engine_seqs if engine_seqs <= 256 else engine_seqs / 3)


def test_the_plan_arithmetic_is_trls(tmp_path):
    """rollout_plan's step count and warmup equal what a real trainer computes, on an uneven layout."""
    from datasets import Dataset

    from lapo.train.config import LapoGRPOConfig
    from lapo.train.trainer import LapoGRPOTrainer

    args = LapoGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none",
                          per_device_train_batch_size=4, gradient_accumulation_steps=3, steps_per_generation=4,
                          num_iterations=2, num_generations=2, num_train_epochs=2, warmup_steps=0.1,
                          max_completion_length=4, use_vllm=False, beta=0.0)
    tokenizer = make_char_tokenizer()
    dataset = Dataset.from_dict({"prompt": [f"P{i}" for i in range(21)]})
    trainer = LapoGRPOTrainer(model=make_tiny_model(tokenizer), reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
                              args=args, train_dataset=dataset, processing_class=tokenizer)
    *_, max_steps = trainer.set_initial_training_values(args, trainer.get_train_dataloader())
    plan = rollout_plan(args, len(dataset))
    assert (plan.prompts_per_rollout, plan.rollouts_per_epoch) == (8, 2)  # 21 problems: 2 full rollouts
    assert plan.steps == max_steps and plan.warmup_steps == args.get_warmup_steps(max_steps)


# ------------------------------------------------------------------------------------------ precision


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_one_step_at_the_papers_learning_rate_moves_every_weight(name, tmp_path, tiny_qwen2_dir):
    """Under DDP or one GPU, AdamW updates the weights the model holds: float32 keeps a 1e-6 step, bf16 loses it."""
    from lapo.train.trainer import load_model

    run = load_run_config(RECIPES / name, ["use_cpu=true", "use_vllm=false", "report_to=none",
                                           f"model_name_or_path={tiny_qwen2_dir}", "learning_rate=1e-6"])
    cfg = run.stages["discovery"]
    model = load_model(str(tiny_qwen2_dir), cfg)
    optimizer_class, kwargs = Trainer.get_optimizer_cls_and_kwargs(cfg.grpo, model)
    optimizer = optimizer_class(model.parameters(), **kwargs)
    before = [p.detach().clone() for p in model.parameters()]
    ids = torch.randint(3, 200, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.grpo.bf16):  # the recipe's mixed precision
        model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    with_gradient = sum(int((p.grad != 0).sum()) for p in model.parameters())
    moved = sum(int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before))
    assert moved == with_gradient > 0


def test_lora_base_survives_merge_and_unmerge(tmp_path, tiny_qwen2_dir):
    """TRL merges the adapters into the base before each vLLM sync and unmerges them after (trl#6688)."""
    from peft import get_peft_model
    from trl import get_peft_config

    from lapo.train.trainer import load_model

    run = load_run_config(RECIPES / "deepscaler-1.5b/lora-1gpu.yaml",
                          ["use_cpu=true", "use_vllm=false", "report_to=none", f"model_name_or_path={tiny_qwen2_dir}"])
    cfg = run.stages["discovery"]
    model = get_peft_model(load_model(str(tiny_qwen2_dir), cfg), get_peft_config(cfg.model))
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # a trained adapter: B starts at zero, which would make merging a no-op
            torch.nn.init.normal_(param, std=0.02)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer.weight" in n}
    merged_scale = {}
    model.merge_adapter()
    for n, p in model.named_parameters():
        if n in base:
            merged_scale[n] = p.detach().abs().max().item()
    model.unmerge_adapter()
    for _ in range(99):  # 100 syncs
        model.merge_adapter()
        model.unmerge_adapter()
    for n, p in model.named_parameters():
        if n in base:  # at most one rounding of the merged weight, however many round trips
            assert (p.detach() - base[n]).abs().max().item() <= 2 * torch.finfo(torch.float32).eps * merged_scale[n], n


# ------------------------------------------------------------------------------------------ prompt


REFERENCE_PROMPT = (
    "You are a helpful assistant. A conversation between User and Assistant. The user asks a question, and the "
    "Assistant solves it. The Assistant first thinks about the reasoning process in the mind and then provides the "
    "user with the answer. The reasoning process is enclosed within <think> </think> tags, respectively, i.e., "
    "<think> reasoning process here </think> answer here . User: What is $1+1$? Please think step by step and "
    "output the final answer within \\boxed{}. Assistant: <think>"
)


def test_the_reference_prompt_kind_is_the_references_text():
    fmt = PromptFormat(kind="reference")
    assert render_prompt("What is $1+1$?", None, fmt) == REFERENCE_PROMPT
    # its stage 2 appended the sentence after the tag with a space
    assert render_prompt("What is $1+1$?", None, fmt, budget=321) == (
        REFERENCE_PROMPT + " I will answer the question with 321 tokens.")


def test_eval_renders_the_prompt_the_model_was_trained_with(tmp_path, toy_problems):
    from lapo.eval.evaluate import resolve_prompt_format
    from lapo.train.rundir import write_run_metadata

    run = load_run_config(RECIPES / "deepscaler-1.5b/config.yaml",
                          ["use_cpu=true", "use_vllm=false", "report_to=none", f"output_dir={tmp_path / 'run'}"])
    write_run_metadata(run)
    final = tmp_path / "run" / "internalization" / "final"
    final.mkdir(parents=True)
    tokenizer = make_char_tokenizer()  # has a chat template: eval must not fall back to it
    trained = run.stages["internalization"].lapo.prompt_format()
    evaluated = resolve_prompt_format("auto", str(final), tokenizer)
    for budget in (None, 250):
        assert render_prompt("P1", tokenizer, evaluated, budget) == render_prompt("P1", tokenizer, trained, budget)
    assert render_prompt("P1", tokenizer, evaluated).endswith("Assistant: <think>")


# ------------------------------------------------------------------------------------------ extras


def _extras() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {name: [Requirement(r) for r in reqs] for name, reqs in project["optional-dependencies"].items()}


def _requirement(extra: str, package: str) -> Requirement:
    return next(r for r in _extras()[extra] if r.name == package)


def test_the_vllm_extra_allows_exactly_the_versions_trl_supports():
    trl_vllm = next(Requirement(r) for r in importlib.metadata.requires("trl")
                    if r.startswith("vllm") and 'extra == "vllm"' in r)
    ours = _requirement("vllm", "vllm").specifier
    for version in ("0.10.0", "0.21.0", "0.22.0", "0.26.0", "0.31.0", "0.31.1", "0.32.0", "0.34.0"):
        assert ours.contains(version) == trl_vllm.specifier.contains(version), version
    assert ours.contains("0.31.0") and not ours.contains("0.32.0")


def test_every_paper_recipe_names_extras_that_exist(parse_at_documented_world_size):
    extras = _extras()
    assert _requirement("deepspeed", "deepspeed").specifier.contains("0.18.6")
    for name in PAPER_RECIPES:
        run, world = parse_at_documented_world_size(name)
        g = run.stages["discovery"].grpo
        needed = {"vllm"} if g.use_vllm else set()
        needed |= {"tensorboard"} if "tensorboard" in g.report_to else set()
        needed |= {"deepspeed"} if "zero3" in (RECIPES / name).read_text() else set()
        assert needed <= set(extras), name
        installs = {r.name for extra in needed for r in extras[extra]}
        assert needed <= installs, name
        paper = " ".join(str(r) for r in extras["paper"])
        assert all(extra in paper for extra in needed), name


@pytest.fixture
def no_model_loads(monkeypatch):
    from lapo.train import run as train
    from lapo.train import trainer

    def refuse(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the missing package was reported")

    monkeypatch.setattr(train, "load_tokenizer", refuse)
    monkeypatch.setattr(trainer, "load_model", refuse)


def _missing_extra_line(capsys, monkeypatch, tmp_path, toy_problems, *overrides, absent=(), env=None):
    from lapo.train import run as train

    monkeypatch.setattr(config_module, "_installed", lambda package: package not in absent)
    monkeypatch.setattr(config_module, "_available_reporters", lambda: [r for r in ["tensorboard"] if r not in absent])
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    argv = ["--config", str(RECIPES / "deepscaler-1.5b/config.yaml"), "use_cpu=true", f"dataset={toy_problems}",
            f"output_dir={tmp_path / 'run'}", "model_name_or_path=/nonexistent/model", *overrides]
    assert train.main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0, line
    return line


def test_missing_vllm_is_one_line_before_any_model_loads(capsys, monkeypatch, tmp_path, toy_problems, no_model_loads):
    line = _missing_extra_line(capsys, monkeypatch, tmp_path, toy_problems, absent=("vllm",))
    assert "use_vllm=true needs vLLM" in line and 'lapo[vllm]' in line and "use_vllm=false" in line


def test_missing_tensorboard_is_one_line_before_any_model_loads(capsys, monkeypatch, tmp_path, toy_problems,
                                                               no_model_loads):
    line = _missing_extra_line(capsys, monkeypatch, tmp_path, toy_problems, absent=("tensorboard",))
    assert "report_to=tensorboard needs tensorboard" in line and 'lapo[tensorboard]' in line


@pytest.mark.parametrize("asked_by", ["accelerate config", "recipe key"])
def test_missing_deepspeed_is_one_line_before_any_model_loads(asked_by, capsys, monkeypatch, tmp_path, toy_problems,
                                                              no_model_loads):
    if asked_by == "accelerate config":  # what `accelerate launch --config_file zero3.yaml` sets
        line = _missing_extra_line(capsys, monkeypatch, tmp_path, toy_problems, absent=("deepspeed",),
                                   env={"ACCELERATE_USE_DEEPSPEED": "true"})
        assert "ddp.yaml" in line
    else:
        line = _missing_extra_line(capsys, monkeypatch, tmp_path, toy_problems, "deepspeed=ds_config.json",
                                   absent=("deepspeed",))
        assert "deepspeed=ds_config.json" in line
    assert "needs DeepSpeed" in line and 'lapo[deepspeed]' in line
