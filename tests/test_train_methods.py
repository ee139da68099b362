"""`lapo train --method NAME`: every length-control method trains on the tiny model, with its prompts, its cap
schedule and its constants recorded; bad input is one line before any model loads."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import toy_overrides
from safetensors.torch import load_file

from lapo.cli import main as cli
from lapo.methods import registry
from lapo.train import rewards
from lapo.train import run as train

SINGLE = [m for m in registry.METHODS if m != "lapo-i"]  # lapo-i needs a stage-1 run: test_train.py covers it
KNOBS = {"thinkprune": ["method_args.caps=[24,12]"], "l1-exact": ["method_args.budget_low=4", "method_args.budget_high=20"],
         "l1-max": ["method_args.budget_low=4", "method_args.budget_high=20"]}


@pytest.fixture
def seen(monkeypatch):
    """Every method reward call's prompts, budgets and completion lengths."""
    calls: list[dict] = []
    original = rewards.MethodReward.__call__

    def capture(self, prompts, completions, completion_ids, **kwargs):
        calls.append({"prompts": list(prompts), "budget": kwargs.get("budget"), "step": kwargs["trainer_state"].global_step,
                      "lengths": [len(ids) for ids in completion_ids]})
        return original(self, prompts, completions, completion_ids, **kwargs)

    monkeypatch.setattr(rewards.MethodReward, "__call__", capture)
    return calls


@pytest.mark.parametrize("name", SINGLE)
def test_each_method_trains_and_moves_the_weights(name, tmp_path, warm_model_dir, toy_problems):
    run_dir = tmp_path / "run"
    argv = ["--method", name, *toy_overrides(warm_model_dir, toy_problems, run_dir, max_steps=1), *KNOBS.get(name, [])]
    assert train.main(argv) == 0
    before = load_file(str(warm_model_dir / "model.safetensors"))
    after = load_file(str(run_dir / "discovery" / "final" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_resume_of_a_finished_method_run_trains_nothing(tmp_path, warm_model_dir, toy_problems):
    run_dir = tmp_path / "run"
    argv = ["--method", "plain", *toy_overrides(warm_model_dir, toy_problems, run_dir, max_steps=1)]
    assert train.main(argv) == 0
    weights = run_dir / "discovery" / "final" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    assert train.main([*argv, "--resume"]) == 0 and weights.stat().st_mtime_ns == written


def test_run_json_records_the_method_and_its_constants(tmp_path, warm_model_dir, toy_problems):
    run_dir = tmp_path / "run"
    argv = ["--method", "shorterbetter", "method_args.beta=0.02", *toy_overrides(warm_model_dir, toy_problems, run_dir, max_steps=1)]
    train.main(argv)
    method = json.loads((run_dir / "run.json").read_text())["method"]
    assert (method["name"], method["knobs"]) == ("shorterbetter", {"alpha": 2.0, "beta": 0.02})


def test_l1_prompts_carry_their_budget_sentence_and_n(tmp_path, warm_model_dir, toy_problems, seen):
    argv = ["--method", "l1-max", *toy_overrides(warm_model_dir, toy_problems, tmp_path / "run", max_steps=1), *KNOBS["l1-max"]]
    train.main(argv)
    for prompt, n in zip(seen[0]["prompts"], seen[0]["budget"]):
        assert prompt.endswith(f"<think>Think for maximum {n} tokens.") and 4 <= n <= 20


def test_thinkprune_lowers_the_generation_cap_in_its_second_round(tmp_path, warm_model_dir, toy_problems, seen):
    argv = ["--method", "thinkprune", "method_args.caps=[24,3]",
            *toy_overrides(warm_model_dir, toy_problems, tmp_path / "run", max_steps=2)]
    train.main(argv)
    assert [c["step"] for c in seen] == [0, 1] and max(seen[1]["lengths"]) <= 3 < max(seen[0]["lengths"])


BAD = [
    (["--method", "l2"], "method 'l2' is unknown"),
    (["--method", "kimi", "method_args.alpha=1"], "method kimi has no knob alpha"),
    (["--method", "l1-exact", "method_args.budget_low=null"], "method l1-exact needs budgets"),
    (["--method", "thinkprune", "method_args.caps=[4096]"], "cap 4096 is above max_completion_length=24"),
    (["--method", "plain", "--stage", "internalization"], "--stage internalization does not go with method plain"),
]


@pytest.mark.parametrize("extra, message", BAD, ids=[b[1][:20] for b in BAD])
def test_bad_method_input_is_one_line_before_any_model_loads(extra, message, tmp_path, toy_problems, capsys):
    missing_model = tmp_path / "no-model"  # never read: the error comes first
    assert cli(["train", *extra, *toy_overrides(missing_model, toy_problems, tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lapo train: ") and message in err and "\n" not in err


def test_a_recipes_methods_section_is_checked_for_every_method_it_names(tmp_path):
    from lapo.errors import LapoError
    from lapo.train.config import load_run_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text("methods:\n  kimi: {alpha: 1}\n")
    with pytest.raises(LapoError, match="method kimi has no knob alpha"):
        load_run_config(recipe, ["method=plain", "use_cpu=true", "bf16=false"])


def test_the_chosen_methods_recipe_constants_apply_and_the_command_line_wins(tmp_path):
    from lapo.train.config import load_run_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: l1-max\nmethods:\n  l1-max: {alpha: 0.01, budget_low: 5}\n")
    knobs = load_run_config(recipe, ["method_args.alpha=0.02", "use_cpu=true", "bf16=false"]).method.knobs
    assert (knobs["alpha"], knobs["budget_low"], knobs["delta"]) == (0.02, 5, 0.5)


def test_the_run_directorys_recipe_reruns_the_same_method_and_constants(tmp_path):
    from lapo.train.config import load_run_config
    from lapo.train.rundir import recipe_of

    run = load_run_config("counting", ["method=kimi", "method_args.weight=0.5", f"output_dir={tmp_path / 'r'}"])
    recipe = tmp_path / "again.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump(recipe_of(run)))
    again = load_run_config(recipe, [])
    assert (again.method.name, again.method.knobs) == ("kimi", {"weight": 0.5})
