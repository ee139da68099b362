"""A stand-in for the `vllm` package (no GPU here): the API lapo and TRL 1.16 call, with vLLM's real names.

Only what the contract test needs: ``LLM(model, *, ..., **engine_args)``, ``LLM.generate(prompts, /,
sampling_params=None, *, use_tqdm=True, lora_request=None)``, ``SamplingParams(**fields)``, and the outputs
(``RequestOutput.prompt_token_ids``, ``.outputs[i].token_ids``, ``.finish_reason``). Keyword names are those
of vLLM's source (vllm/entrypoints/llm.py, vllm/sampling_params.py, vllm/engine/arg_utils.py); an unknown
one raises TypeError as vLLM does. Generation is deterministic in (prompt, seed): a request with a seed
gives the same tokens whatever else is in the batch, as vLLM's per-request generators do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__version__ = "0.22.0+standin"

# vllm/sampling_params.py: SamplingParams' input fields.
SAMPLING_FIELDS = {
    "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p", "top_k", "min_p",
    "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "min_tokens", "logprobs", "prompt_logprobs",
    "detokenize", "skip_special_tokens", "spaces_between_special_tokens", "include_stop_str_in_output",
    "output_kind", "structured_outputs", "logit_bias", "allowed_token_ids", "extra_args", "bad_words",
}
# vllm/entrypoints/llm.py (LLM.__init__'s named arguments) and vllm/engine/arg_utils.py (EngineArgs fields
# that reach it through **kwargs), as far as lapo and TRL 1.16 pass them.
LLM_ARGUMENTS = {
    "model", "tokenizer", "tokenizer_mode", "skip_tokenizer_init", "trust_remote_code", "tensor_parallel_size",
    "dtype", "quantization", "revision", "tokenizer_revision", "seed", "gpu_memory_utilization", "swap_space",
    "cpu_offload_gb", "enforce_eager", "hf_token", "hf_overrides", "compilation_config",
    "max_model_len", "max_num_seqs", "max_num_batched_tokens", "enable_sleep_mode", "model_impl",
    "distributed_executor_backend", "logprobs_mode", "enable_prefix_caching", "data_parallel_size",
}
CALLS: list[tuple[str, dict]] = []  # every LLM(...) and generate(...) call, for the test to read


class SamplingParams:
    def __init__(self, **kwargs):
        unknown = set(kwargs) - SAMPLING_FIELDS
        if unknown:
            raise TypeError(f"SamplingParams got unexpected keyword(s) {sorted(unknown)}")
        self.n, self.temperature, self.top_p, self.seed, self.max_tokens = 1, 1.0, 1.0, None, 16
        self.stop_token_ids = None
        for k, v in kwargs.items():
            setattr(self, k, v)
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be an int >= 1, got {self.n}")


@dataclass
class CompletionOutput:
    index: int
    token_ids: list[int]
    finish_reason: str | None
    text: str = ""
    logprobs: object = None


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)
    prompt_logprobs: object = None


class LLM:
    def __init__(self, model: str, **kwargs):
        unknown = set(kwargs) - LLM_ARGUMENTS
        if unknown:
            raise TypeError(f"LLM got unexpected keyword(s) {sorted(unknown)} (not EngineArgs fields)")
        self.model, self.kwargs = model, kwargs
        CALLS.append(("LLM", {"model": model, **kwargs}))

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None):
        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        CALLS.append(("generate", {"prompts": prompts, "params": params, "use_tqdm": use_tqdm}))
        return [self._one(p, sp) for p, sp in zip(prompts, params)]

    def _one(self, prompt, sp) -> RequestOutput:
        ids = prompt["prompt_token_ids"]  # lapo and TRL pass token ids, never text
        rng = random.Random(repr((ids, sp.seed)))
        stops = set(sp.stop_token_ids or [])
        outs = []
        for i in range(sp.n):
            tokens = [rng.randrange(3, 200) for _ in range(rng.randrange(1, sp.max_tokens + 1))]
            finish = "length" if len(tokens) == sp.max_tokens else "stop"
            if finish == "stop" and stops:
                tokens = tokens[:-1]  # vLLM may leave a stop token out of token_ids
            outs.append(CompletionOutput(i, tokens, finish))
        return RequestOutput(list(ids), outs)

    def sleep(self, level: int = 1):
        CALLS.append(("sleep", {"level": level}))

    def wake_up(self, tags=None):
        CALLS.append(("wake_up", {"tags": tags}))
