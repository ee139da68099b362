"""Configuration: the paper's defaults, recipe sections, overrides, and bad configurations that fail fast.

Every bad-configuration test points the model at a path that does not exist and makes loading any model
or tokenizer an assertion error (``no_model_loads``): the error must come from the check, before anything
is loaded, as one line naming the field, the value and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lapo.train import run as train
from lapo.train import trainer
from lapo.train.config import LapoConfig, load_run_config, parse_overrides

NO_MODEL = "/nonexistent/model-that-must-not-load"


@pytest.fixture
def no_model_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the configuration was checked")

    monkeypatch.setattr(train, "load_tokenizer", refuse)
    monkeypatch.setattr(trainer, "load_model", refuse)


def _args(tmp_path: Path, dataset: Path, *extra: str) -> list[str]:
    return [f"model_name_or_path={NO_MODEL}", f"dataset={dataset}", f"output_dir={tmp_path / 'run'}",
            "use_cpu=true", "bf16=false", *extra]


def _fails(capsys, argv: list[str], *fragments: str) -> str:
    """``lapo train argv`` exits with status 2 and one line holding every fragment."""
    assert train.main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0, message  # one line
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------------------------ defaults


def test_defaults_are_the_papers_values(tmp_path):
    run = load_run_config(None, [f"output_dir={tmp_path}", "use_cpu=true", "bf16=false"])
    lapo, g = run.stages["discovery"].lapo, run.stages["discovery"].grpo
    assert (lapo.band_low, lapo.band_high, lapo.band_decay, lapo.discovery_weight) == (30, 70, 100, 0.7)
    assert (lapo.internalization_weight, lapo.sigma, lapo.target_policy) == (0.8, 120, "last")
    assert lapo.online_tightening and lapo.max_prompt_length == 1024 and lapo.dataset == "deepscaler"
    assert (g.num_generations, g.learning_rate, g.beta, g.max_completion_length) == (8, 1e-6, 1e-4, 4096)
    assert (g.num_train_epochs, g.temperature, g.top_p, g.loss_type) == (3, 1.0, 1.0, "bnpo")
    assert not g.use_bias_correction_kl and not g.vllm_importance_sampling_correction  # plain k3, no IS
    assert run.fallback_target() == 4096  # the reference's sentinel: stage 1's max generation length


def test_every_field_has_help():
    from dataclasses import fields

    assert all(f.metadata.get("help") for f in fields(LapoConfig))


def test_stage_sections_override_shared_keys(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "output_dir": str(tmp_path), "use_cpu": True, "bf16": False, "sigma": 100,
        "discovery": {"max_completion_length": 4096}, "internalization": {"max_completion_length": 2048, "sigma": 90},
    }))
    run = load_run_config(recipe, ["learning_rate=2e-6", "internalization.beta=0.01"])
    d, i = run.stages["discovery"], run.stages["internalization"]
    assert (d.grpo.max_completion_length, i.grpo.max_completion_length) == (4096, 2048)
    assert (d.lapo.sigma, i.lapo.sigma) == (100, 90)
    assert d.grpo.learning_rate == i.grpo.learning_rate == 2e-6  # the command line beats the recipe
    assert (d.grpo.beta, i.grpo.beta) == (1e-4, 0.01)
    assert d.grpo.output_dir == str(tmp_path / "discovery")


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["sigma=90"], {"sigma": "90"}),
        (["--sigma", "90"], {"sigma": "90"}),
        (["--sigma=90"], {"sigma": "90"}),
        (["--use-peft"], {"use_peft": "true"}),
        (["system_prompt=null"], {"system_prompt": None}),
        (["lora_target_modules=[q_proj,v_proj]"], {"lora_target_modules": ["q_proj", "v_proj"]}),
        (["plain_template={problem}"], {"plain_template": "{problem}"}),
        (["report_to=none"], {"report_to": "none"}),
    ],
)
def test_override_syntax(argv, expected):
    assert parse_overrides(argv) == {"discovery": expected, "internalization": expected}


def test_stage_scoped_override():
    assert parse_overrides(["discovery.sigma=1"]) == {"discovery": {"sigma": "1"}, "internalization": {}}


# ------------------------------------------------------------------------------------------------ bad configs


def test_unknown_recipe_key(tmp_path, toy_problems, capsys, no_model_loads):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("sigmaa: 120\n")
    _fails(capsys, ["--config", str(recipe), *_args(tmp_path, toy_problems)], "unknown key(s) sigmaa", "check the spelling")


def test_unknown_override(tmp_path, toy_problems, capsys, no_model_loads):
    _fails(capsys, _args(tmp_path, toy_problems, "discovery.band_lo=20"), "unknown key(s) band_lo", "check the spelling")


@pytest.mark.parametrize("low, high", [(70, 30), (50, 50), (-10, 70), (30, 120)])
def test_band_low_not_below_high(tmp_path, toy_problems, capsys, no_model_loads, low, high):
    argv = _args(tmp_path, toy_problems, f"band_low={low}", f"band_high={high}")
    _fails(capsys, argv, f"band_low={float(low)}", f"band_high={float(high)}", "band_low=30, band_high=70")


@pytest.mark.parametrize("field", ["sigma", "discovery_weight", "internalization_weight", "band_decay"])
@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_non_positive_numbers(tmp_path, toy_problems, capsys, no_model_loads, field, value):
    default = {"sigma": 120, "discovery_weight": 0.7, "internalization_weight": 0.8, "band_decay": 100}[field]
    argv = _args(tmp_path, toy_problems, f"{field}={value}")
    _fails(capsys, argv, f"{field}={float(value)}", "positive", f"the default (the paper's) is {float(default)}")


@pytest.mark.parametrize("value", [1, 0, -4])
def test_num_generations_below_two(tmp_path, toy_problems, capsys, no_model_loads, value):
    _fails(capsys, _args(tmp_path, toy_problems, f"num_generations={value}"), f"num_generations={value}", "2 or more")


@pytest.mark.parametrize("role", ["problem", "answer"])
def test_dataset_missing_a_field(tmp_path, capsys, no_model_loads, role):
    data = tmp_path / "d.jsonl"
    row = {"id": "a", "problem": "1+1?", "answer": "2"}
    row[{"problem": "question", "answer": "solution"}[role]] = row.pop(role)
    data.write_text(json.dumps(row) + "\n")
    _fails(capsys, _args(tmp_path, data), f"no {role} field {role!r}", f"set `{role}_field`")


def test_stage2_without_a_target_map(tmp_path, toy_problems, capsys, no_model_loads):
    argv = _args(tmp_path, toy_problems, "--stage", "internalization")
    _fails(capsys, argv, "needs a stage-1 target map", str(tmp_path / "run"), "run `lapo train --stage discovery` first")


def test_target_map_matching_no_problem(tmp_path, toy_problems, capsys, no_model_loads):
    targets = tmp_path / "t.json"
    targets.write_text(json.dumps({"other-1": 100, "other-2": 200}))
    argv = _args(tmp_path, toy_problems, "--stage", "internalization", f"targets_path={targets}")
    _fails(capsys, argv, "matches none of the 8 stage-2 problems", "other-1", "with the same id_field")


def test_duplicate_problem_ids_are_named(tmp_path, capsys, no_model_loads):
    data = tmp_path / "d.jsonl"
    rows = [{"id": "p1", "problem": "a", "answer": "1"}, {"id": "p2", "problem": "b", "answer": "2"},
            {"id": "p1", "problem": "c", "answer": "3"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _fails(capsys, _args(tmp_path, data), "duplicate problem id", "'p1'")


def test_unknown_target_policy(tmp_path, toy_problems, capsys, no_model_loads):
    _fails(capsys, _args(tmp_path, toy_problems, "target_policy=median"), "target_policy='median'", "'last'")


def test_save_steps_must_end_a_generation_round(tmp_path, toy_problems, capsys, no_model_loads):
    argv = _args(tmp_path, toy_problems, "steps_per_generation=4", "gradient_accumulation_steps=2", "save_steps=3")
    _fails(capsys, argv, "save_steps=3", "multiple of 2")


def test_tightening_needs_in_process_data_loading(tmp_path, toy_problems, capsys, no_model_loads):
    _fails(capsys, _args(tmp_path, toy_problems, "dataloader_num_workers=2"), "dataloader_num_workers=2")


def test_missing_checkpoint_statistics(tmp_path, toy_problems, capsys, no_model_loads):
    checkpoint = tmp_path / "run" / "discovery" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    argv = _args(tmp_path, toy_problems, "--stage", "discovery", "--resume", str(checkpoint))
    _fails(capsys, argv, "checkpoint-4 has no length_stats.jsonl")
