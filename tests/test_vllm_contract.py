"""vLLM without a GPU: lapo's eval backend and the recipes' vLLM settings against vLLM's and TRL 1.16's real API.

tests/vllm_standin/vllm is a stand-in for the `vllm` package whose keyword names are vLLM's own (LLM, its
EngineArgs, SamplingParams, generate, the outputs); an unknown keyword raises TypeError as vLLM does. The
tests check call shapes (token-id prompts, one SamplingParams per request), per-request seeds, sampling
parameters, stop tokens and ``n``, for `lapo eval --backend vllm` (called through the stand-in) and for
TRL 1.16's colocated generation in training (its calls read from TRL's installed source). Nothing here ran
vLLM itself: see docs/EVALUATION.md, "What was run on a GPU".
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from conftest import _save, make_char_tokenizer, make_tiny_model

STANDIN = Path(__file__).resolve().parent / "vllm_standin"
PAPER_RECIPES = ["deepscaler-1.5b", "r1-distill-qwen-1.5b", "deepscaler-1.5b/lora-1gpu.yaml"]


@pytest.fixture
def vllm(monkeypatch):
    """The stand-in imported as `vllm` (and found by importlib.util.find_spec, as lapo's checks look)."""
    monkeypatch.syspath_prepend(str(STANDIN))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("vllm")
    module.CALLS.clear()
    return module


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tokenizer = make_char_tokenizer()
    return _save(make_tiny_model(tokenizer), tokenizer, tmp_path_factory.mktemp("tiny-vllm"))


def _backend(model_dir, **settings):
    from lapo.eval.generation import VLLMBackend
    from lapo.eval.settings import EvalSettings
    from lapo.models.loading import load_tokenizer

    tokenizer = load_tokenizer(str(model_dir))
    return VLLMBackend(str(model_dir), tokenizer, EvalSettings(model=str(model_dir), dataset="x", **settings)), tokenizer


# ============================================================================================ lapo eval --backend vllm


def test_eval_builds_the_engine_with_vllms_argument_names(vllm, model_dir):
    _backend(model_dir, seed=3, tensor_parallel_size=1, gpu_memory_utilization=0.5)
    (kind, kwargs), = vllm.CALLS
    assert kind == "LLM" and kwargs["model"] == str(model_dir) and kwargs["seed"] == 3
    assert kwargs["tensor_parallel_size"] == 1 and kwargs["gpu_memory_utilization"] == 0.5


def test_eval_sends_training_token_ids_one_request_per_sample_with_its_own_seed(vllm, model_dir):
    from lapo.data.prompts import encode_prompts

    backend, tokenizer = _backend(model_dir, temperature=0.6, top_p=0.95, max_new_tokens=32)
    prompts, seeds = ["P1<think>", "P1<think>", "P2<think>"], [11, 12, 2**31 + 5]
    backend.generate(prompts, seeds)
    kind, call = vllm.CALLS[-1]
    assert kind == "generate" and call["use_tqdm"] is False
    assert [p["prompt_token_ids"] for p in call["prompts"]] == encode_prompts(tokenizer, prompts)
    params = call["params"]
    assert len(params) == len(prompts)  # one SamplingParams per request
    assert [p.seed for p in params] == [11, 12, 5]  # per-request seeds, within vLLM's 31-bit range
    assert all(p.n == 1 and p.temperature == 0.6 and p.top_p == 0.95 and p.max_tokens == 32 for p in params)


def test_eval_stops_on_every_eos_and_counts_the_stop_token(vllm, model_dir):
    from lapo.eval.generation import eos_token_ids

    backend, tokenizer = _backend(model_dir, max_new_tokens=40)
    out = backend.generate(["P1<think>"] * 6, list(range(6)))
    params = vllm.CALLS[-1][1]["params"]
    eos = sorted(eos_token_ids(type("M", (), {"generation_config": None})(), tokenizer))
    assert all(p.stop_token_ids == sorted(backend.eos_ids) for p in params) and set(eos) <= backend.eos_ids
    for generation in out:
        assert generation.truncated or generation.token_ids[-1] in backend.eos_ids  # the stand-in dropped it


def test_eval_greedy_sets_top_p_to_one(vllm, model_dir):
    backend, _ = _backend(model_dir, temperature=0.0, top_p=0.95)
    backend.generate(["P1<think>"], [0])
    assert vllm.CALLS[-1][1]["params"][0].top_p == 1.0


# ============================================================================================ TRL 1.16's colocated vLLM


def _trl_source() -> ast.Module:
    """TRL 1.16's generation module, read from its installed file (importing it would import vLLM)."""
    import trl

    return ast.parse((Path(trl.__file__).parent / "generation" / "vllm_generation.py").read_text(encoding="utf-8"))


def _calls(tree: ast.Module, name: str) -> list[ast.Call]:
    def called(node):
        f = node.func
        return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None

    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and called(n) == name]


def test_trl_builds_its_colocated_engine_with_vllms_argument_names(vllm):
    (call,) = _calls(_trl_source(), "LLM")
    names = {k.arg for k in call.keywords}
    assert names <= vllm.LLM_ARGUMENTS, names - vllm.LLM_ARGUMENTS
    assert {"tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "enable_sleep_mode", "seed"} <= names


def test_trl_samples_with_vllms_sampling_fields_and_one_completion_per_request(vllm):
    # `generation_kwargs = {...}` in colocate mode, then `SamplingParams(**generation_kwargs)`.
    colocate = [n.value for n in ast.walk(_trl_source()) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "generation_kwargs" for t in n.targets)]
    assert colocate, "TRL's colocated sampling parameters were not found"
    for literal in colocate:
        keys = {k.value for k in literal.keys if isinstance(k, ast.Constant)}
        assert keys <= vllm.SAMPLING_FIELDS, keys - vllm.SAMPLING_FIELDS
        n = next(v for k, v in zip(literal.keys, literal.values) if isinstance(k, ast.Constant) and k.value == "n")
        assert isinstance(n, ast.Constant) and n.value == 1  # colocate: one completion per prompt row
    generate = [c for c in _calls(_trl_source(), "generate") if any(k.arg == "sampling_params" for k in c.keywords)]
    assert generate and all({k.arg for k in c.keywords} <= {"sampling_params", "use_tqdm", "lora_request"}
                            for c in generate)


@pytest.mark.parametrize("recipe", PAPER_RECIPES)
def test_paper_recipes_vllm_settings_fit_vllm_and_the_batch(vllm, recipe, monkeypatch):
    from lapo.train.config import load_run_config

    for var in ("WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_MIXED_PRECISION"):
        monkeypatch.delenv(var, raising=False)
    run = load_run_config(recipe, ["report_to=none", "use_cpu=true"])  # use_cpu: bf16 parses without a GPU
    for stage, cfg in run.stages.items():
        g, lapo = cfg.grpo, cfg.lapo
        assert g.use_vllm and g.vllm_mode == "colocate", stage
        assert 0 < g.vllm_gpu_memory_utilization <= 1 and g.vllm_tensor_parallel_size >= 1
        # The engine's context holds the longest prompt plus the longest completion (else vLLM refuses it).
        assert g.vllm_max_model_length >= lapo.max_prompt_length + g.max_completion_length, stage
        assert set(g.generation_kwargs or {}) <= vllm.SAMPLING_FIELDS
        assert g.temperature == 1.0 and g.top_p == 1.0  # the reference's sampling, passed to SamplingParams
