"""The benchmark scripts run: each one's tiny mode, in a subprocess, on CPU, in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_soak_tiny(tmp_path):
    out = tmp_path / "soak.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "soak.py"), "--steps", "5", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r["step"] for r in result["records"]] == [1, 2, 3, 4, 5]  # one memory reading per step
    assert all(r["rss_bytes"] > 0 for r in result["records"])
    assert result["summary"]["steps"] == 5 and result["length_records"] == 5 * 4  # 4 prompts a step, recorded
    assert "| growth after step 5 |" in done.stdout


def test_smollm2_step_tiny(tmp_path):
    out = tmp_path / "step.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "smollm2_step.py"), "--tiny", "--threads", "1",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["summary"]) == {"stock", "tuned"}
    for name, summary in result["summary"].items():
        assert summary["steps"] == 1 and summary["median_s"] > 0  # one timed step after one warm-up step
        parts = summary["parts_median_s"]
        assert parts["generate"] > 0 and parts["ref_forward"] > 0 and parts["backward"] > 0  # beta > 0: a reference
        assert summary["mean_tokens"] > 0  # TRL logs the lengths after the step ends: recorded all the same
    assert result["summary"]["stock"]["speedup"] == 1.0
    assert "| stock |" in done.stdout and "| tuned |" in done.stdout


def test_smollm2_step_stock_means_the_recipe_before_issue_12_in_float32():
    import importlib.util

    spec = importlib.util.spec_from_file_location("smollm2_step", BENCHMARKS / "smollm2_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # "stock" is the before of the before/after: float32, TRL's log-probabilities, and the recipe's batch layout
    # and memory settings before issue 12 (one backward pass of 16, no activation checkpointing), whatever the
    # recipe says now.
    settings = module.variant_settings("stock")
    assert settings["trl_logps"] is True
    assert settings["overrides"] == ["bf16=false", "per_device_train_batch_size=16", "gradient_accumulation_steps=1",
                                     "gradient_checkpointing=false"]


def _run_tiny(script: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{script}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--tiny", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_training_overhead_tiny(tmp_path):
    result = _run_tiny("training_overhead.py", tmp_path)
    assert set(result["median_step_s"]) == {"plain", "lapo_d", "lapo_i", "plain_budgeted"}
    assert all(n == 1 for n in result["steps_per_variant"].values())  # one timed step each after a warm-up
    assert result["ratio_lapo_d_to_plain"] > 0 and result["ratio_lapo_i_to_plain_budgeted"] > 0


def test_reward_throughput_tiny(tmp_path):
    result = _run_tiny("reward_throughput.py", tmp_path)
    assert {"plain", "discovery", "internalization"} <= set(result["results"])
    assert all(result["results"][m]["median_completions_per_s"] > 0 for m in ("plain", "discovery", "internalization"))


def test_generation_throughput_tiny(tmp_path):
    result = _run_tiny("generation_throughput.py", tmp_path)
    assert [len(v) for v in result["tokens_per_s"].values()] == [1, 1]  # one timed round after a warm-up round
    assert result["ratio_backend_to_bare"] > 0


def test_answer_agreement_tiny(tmp_path):
    result = _run_tiny("answer_agreement.py", tmp_path)
    assert result["pairs"] == sum(c["pairs"] for c in result["by_kind"].values()) > 100  # the hand-written cases
    assert result["differences"] and all(d["reason"] != "UNEXPLAINED" for d in result["differences"])


@pytest.mark.slow
def test_compare_methods_and_budget_sweep_tiny(tmp_path):
    """benchmarks/compare_methods.py on `lapo compare --smoke` (3 methods), then budget_sweep.py on its models."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out, work = tmp_path / "compare.json", tmp_path / "cmp"
    command = [sys.executable, str(BENCHMARKS / "compare_methods.py"), "--out", str(out), "--work", str(work), "--",
               "--smoke", "--methods", "plain,l1-exact,lapo-i"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["wall_s"] > 0 and result["load_1min_samples"] and list(result["compare"]["summaries"]) == [
        "base", "plain", "l1-exact", "lapo-i"]
    sweep = tmp_path / "sweep.json"
    command = [sys.executable, str(BENCHMARKS / "budget_sweep.py"), "--compare", str(work), "--budgets", "8,16",
               "--limit", "2", "--k", "1", "--max-new-tokens", "24", "--out", str(sweep)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    points = json.loads(sweep.read_text())["points"]
    assert {m: [p["requested"] for p in v] for m, v in points.items()} == {"l1-exact": [8, 16], "lapo-i": [8, 16]}


@pytest.mark.slow
def test_gpu_check_smoke(tmp_path):
    """benchmarks/gpu_check.py's CPU smoke mode: both stages of the counting recipe and an evaluation."""
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_check.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mode"].startswith("smoke") and not result["device"]["cuda"]
    assert set(result["train"]["step_seconds"]) == {"discovery", "internalization"}
    assert result["eval"]["throughput"]["tokens_per_s"] > 0


@pytest.fixture(scope="module")
def smollm2_long(tmp_path_factory):
    """One tiny run of benchmarks/smollm2_long.py: (its JSON, its stdout, its work folder)."""
    tmp = tmp_path_factory.mktemp("long")
    out = tmp / "long.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "smollm2_long.py"), "--tiny", "--work", str(tmp / "w"),
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=900, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout, tmp / "w"


def test_smollm2_long_evaluates_every_model_per_level(smollm2_long):
    result, stdout, _ = smollm2_long
    assert list(result["models"]) == ["base", "LAPO-D", "LAPO-I", "GRPO"] and "| GRPO |" in stdout
    assert all(m["by_level"] and m["mean_tokens"] > 0 for m in result["models"].values())


def test_smollm2_long_grpo_trains_as_many_steps_as_both_lapo_stages(smollm2_long):
    result, _, work = smollm2_long
    steps = [json.loads(line).get("step", 0) for line in (work / "grpo-run" / "discovery" / "log_history.jsonl").open()]
    assert max(steps) == 2 * result["steps_per_stage"]


def test_smollm2_long_grpo_is_the_plain_method(smollm2_long):
    _, _, work = smollm2_long
    assert json.loads((work / "grpo-run" / "run.json").read_text())["method"]["name"] == "plain"


def test_smollm2_generate_tiny(tmp_path):
    out = tmp_path / "gen.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "smollm2_generate.py"), "--tiny", "--tokens", "4",
                           "--rounds", "1", "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(out.read_text())["summary"]
    assert set(summary) == {"fp32-threads1", "bf16-threads1", "fp32-threads2", "bf16-threads2"}
    assert all(s["wall_ms_per_token"] > 0 for s in summary.values())


def test_cpu_roofline_counts_every_linear_weight_of_the_layers_and_the_head():
    import importlib.util

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = importlib.util.spec_from_file_location("cpu_roofline", BENCHMARKS / "cpu_roofline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # SmolLM2's shape in small: grouped-query attention (fewer key/value heads), a gated MLP, a tied head.
    config = LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=6,
                         num_key_value_heads=2, vocab_size=101, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    layers = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear))
    assert module.linear_weights(config) == (layers, model.lm_head.weight.numel())
