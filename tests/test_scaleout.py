"""Scale-out without launching: which process runs which stage, and the launches refused before any model loads.

The launched runs themselves (DDP, ZeRO-2, ZeRO-3, FSDP2 on two CPU processes) are in
tests/test_train_distributed.py.
"""

from __future__ import annotations

import json
import sys

import pytest

from lapo.errors import LapoError
from lapo.train import launch
from lapo.train.config import load_run_config

LAUNCH_VARS = ("WORLD_SIZE", "LOCAL_RANK", "RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_USE_DEEPSPEED",
               "ACCELERATE_USE_FSDP", "ACCELERATE_USE_CPU", "ACCELERATE_MIXED_PRECISION", "FSDP_STATE_DICT_TYPE",
               "ACCELERATE_DEEPSPEED_CONFIG_FILE", "LAPO_STAGE_PROCESSES", "TORCHELASTIC_USE_AGENT_STORE")


@pytest.fixture
def clean_env(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _fail_if_a_model_loads(monkeypatch):
    import lapo.models.loading as loading

    def refuse(*_, **__):
        raise AssertionError("a model or tokenizer was loaded")

    monkeypatch.setattr(loading, "load_tokenizer", refuse)
    monkeypatch.setattr(loading, "load_model_and_tokenizer", refuse)


# ============================================================================================ which process runs a stage


def test_a_plain_process_keeps_both_stages_in_process(clean_env):
    assert not launch.stages_in_processes()


@pytest.mark.parametrize("var, value", [("LOCAL_RANK", "0"), ("WORLD_SIZE", "2"), ("ACCELERATE_USE_DEEPSPEED", "true")])
def test_a_launched_rank_runs_each_stage_in_its_own_process(clean_env, var, value):
    clean_env.setenv(var, value)
    assert launch.stages_in_processes()


def test_colocated_vllm_runs_each_stage_in_its_own_process(clean_env):
    assert launch.colocated_vllm(None, ["use_vllm=true"]) and launch.stages_in_processes(True)
    assert not launch.colocated_vllm(None, ["use_vllm=true", "vllm_mode=server"])


def test_stage_one_process_checks_the_whole_run_and_stage_two_runs_alone():
    both = launch.STAGE_ORDER
    first = launch.child_command("r.yaml", ["a=1"], "discovery", both, False, True)
    second = launch.child_command("r.yaml", ["a=1"], "internalization", both, False, False)
    assert first[first.index("--stage") + 1] == "all" and "--no-run-metadata" not in first
    assert second[second.index("--stage") + 1] == "internalization" and "--no-run-metadata" in second
    assert first[:4] == [sys.executable, "-m", "lapo.cli", "train"] and first[-1] == second[-1] == "a=1"


@pytest.mark.parametrize(("method", "stages"), [
    (None, ("discovery", "internalization")), ("lapo", ("discovery", "internalization")), ("plain", ("discovery",)),
    ("l1-exact", ("discovery",)), ("lapo-d", ("discovery",)), ("lapo-i", ("internalization",)),
])
def test_a_launch_starts_the_stages_its_method_trains(method, stages):
    """Another method than LAPO trains one stage: a launch must not start a second stage process for it."""
    overrides = [f"method={method}"] if method else []
    assert launch.selected_stages(None, overrides, None) == stages


def test_a_launched_one_stage_method_refuses_the_other_stage():
    with pytest.raises(LapoError, match="does not go with method plain"):
        launch.selected_stages(None, ["method=plain"], "internalization")


def test_an_explicit_checkpoint_goes_to_its_own_stage():
    both = launch.STAGE_ORDER
    ckpt = "runs/a/discovery/checkpoint-4"
    second = launch.child_command(None, [], "internalization", both, ckpt, False)
    first = launch.child_command(None, [], "discovery", both, ckpt, True)
    assert first[first.index("--resume") + 1] == ckpt
    assert second[second.index("--resume") + 1] == "--stage-process"  # a bare --resume: its own latest checkpoint


def test_each_stage_rendezvous_on_its_own_port_without_the_launcher_store(clean_env):
    clean_env.setenv("MASTER_PORT", "29500")
    clean_env.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    ports = {s: launch.child_env(s, ["lapo", "train"])["MASTER_PORT"] for s in launch.STAGE_ORDER}
    assert ports == {"discovery": "29501", "internalization": "29502"}
    assert "TORCHELASTIC_USE_AGENT_STORE" not in launch.child_env("discovery", [])


def test_a_failed_stage_process_ends_the_run_with_its_status(clean_env, monkeypatch):
    started = []

    class Child:
        def __init__(self, cmd, env):
            started.append(cmd[cmd.index("--stage-process") + 1])

        def wait(self):
            return 3

    monkeypatch.setattr(launch.subprocess, "Popen", Child)
    assert launch.run_stage_processes(None, ["use_cpu=true", "bf16=false"], None, False, ["lapo", "train"]) == 3
    assert started == ["discovery"]  # stage 2 never starts after a failed stage 1


# ============================================================================================ refused before a model loads


def test_a_launched_rank_checks_the_recipe_before_starting_a_stage_process(clean_env, monkeypatch):
    clean_env.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(launch.subprocess, "Popen", lambda *a, **k: pytest.fail("a stage process started"))
    with pytest.raises(LapoError, match="cannot hold whole groups"):
        launch.run_stage_processes(None, ["num_generations=4", "per_device_train_batch_size=3"], None, False, [])


def test_a_layout_that_cannot_hold_whole_groups_is_refused(clean_env):
    clean_env.setenv("WORLD_SIZE", "3")
    with pytest.raises(LapoError, match=r"6 x 3 processes .* cannot hold whole groups of num_generations=4; set "
                                        r"per_device_train_batch_size=8"):
        load_run_config(None, ["num_generations=4", "per_device_train_batch_size=6"])


def test_a_deepspeed_precision_that_contradicts_the_recipe_is_refused(clean_env, tmp_path):
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"bf16": {"enabled": True}, "zero_optimization": {"stage": 2}}))
    with pytest.raises(LapoError, match="DeepSpeed config enables bf16 but the recipe sets bf16=false"):
        load_run_config(None, [f"deepspeed={ds}", "bf16=false"])


def test_an_accelerate_deepspeed_precision_that_contradicts_the_recipe_is_refused(clean_env):
    clean_env.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    clean_env.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    with pytest.raises(LapoError, match="enables fp16 but the recipe sets fp16=false"):
        load_run_config(None, ["fp16=false"])


def test_an_fsdp_local_state_dict_is_refused(clean_env, capsys, monkeypatch):
    from lapo.train import run as train

    _fail_if_a_model_loads(monkeypatch)
    clean_env.setenv("ACCELERATE_USE_FSDP", "true")
    clean_env.setenv("FSDP_STATE_DICT_TYPE", "LOCAL_STATE_DICT")
    clean_env.setenv("LAPO_STAGE_PROCESSES", "0")
    assert train.main(["--config", "counting"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "LOCAL_STATE_DICT" in err[0] and "FULL_STATE_DICT" in err[0]


def test_accelerate_starting_one_cpu_process_for_several_is_said(clean_env, capsys, monkeypatch):
    from lapo.train import run as train

    _fail_if_a_model_loads(monkeypatch)
    clean_env.setenv("MASTER_ADDR", "127.0.0.1")  # what accelerate's simple launcher sets for num_processes > 1
    clean_env.setenv("ACCELERATE_USE_CPU", "True")
    assert train.main(["--config", "counting"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "started one process" in err[0] and "torchrun --nproc_per_node" in err[0]


# ============================================================================================ the final model


def test_lora_is_merged_into_a_copy_built_from_the_gathered_weights():
    """What every engine saves for LoRA: the gathered state dict loaded into a CPU copy, adapters merged there
    (the live model's weights may be ZeRO-3 or FSDP shards); equal to merging the live model itself."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from conftest import make_char_tokenizer, make_tiny_model
    from lapo.train.trainer import merged_copy

    model = get_peft_model(make_tiny_model(make_char_tokenizer()), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # trained adapters (lora_B starts at zero)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    merged = merged_copy(model, state).state_dict()
    assert merged.keys() == expected.keys() and not any("lora" in k for k in merged)
    assert all(torch.equal(merged[k], expected[k]) for k in expected)


def test_a_final_model_with_an_empty_weight_is_not_complete(tmp_path):
    import torch
    from safetensors.torch import save_file

    from lapo.train.trainer import check_final

    (tmp_path / "config.json").write_text("{}")
    save_file({"model.embed_tokens.weight": torch.ones(4, 2), "lm_head.weight": torch.empty(0)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(LapoError, match="weight lm_head.weight is empty .* not marked complete"):
        check_final(tmp_path)
