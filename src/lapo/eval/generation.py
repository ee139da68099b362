"""Generation backends of ``lapo eval``: prompts and per-sample seeds in, token ids out.

Scoring never depends on the backend. :class:`TransformersBackend` (always available) samples with one
seeded generator per row, so a sample is the same whatever batch it lands in; :class:`VLLMBackend` gives
each request its own seed. torch, transformers and vLLM are imported only inside the functions that use
them, so importing this module (and ``lapo eval --help``) stays cheap.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Sequence

from lapo.data.prompts import encode_prompts
from lapo.errors import LapoError
from lapo.eval.samples import Generation

if TYPE_CHECKING:
    from lapo.eval.settings import EvalSettings


def cut_at_eos(token_ids: Sequence[int], eos_ids: set[int]) -> Generation:
    """Tokens up to and including the first EOS; no EOS means the sample hit max_new_tokens.

    The EOS token counts, as in TRL's completion mask, so eval lengths equal training lengths.
    """
    for i, token in enumerate(token_ids):
        if token in eos_ids:
            return Generation(list(token_ids[: i + 1]), truncated=False)
    return Generation(list(token_ids), truncated=True)


def eos_token_ids(model, tokenizer) -> set[int]:
    """Every token that ends a completion: the generation config's EOS ids (an int or a list) and the tokenizer's."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise LapoError("the model and tokenizer define no EOS token, so no completion could ever end; "
                        "set eos_token in the tokenizer config.")
    return ids


# The nucleus is looked for among this many most likely tokens first: a partial top-k instead of sorting the
# whole vocabulary (49,152 words for SmolLM2: the sort was 30% of a decoded token on CPU). Rows whose nucleus is
# wider fall back to the full sort, so the result is the same either way.
NUCLEUS_CANDIDATES = 64


def sample_rows(scores, uniforms, temperature: float, top_p: float):
    """One token per row by inverse-CDF sampling of softmax(scores / temperature) restricted to the top-p
    nucleus (the smallest set of most likely tokens holding at least ``top_p`` of the mass), driven by one
    uniform number per row."""
    import torch

    probs = torch.softmax(scores.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return _inverse_cdf(probs, uniforms)
    k = min(NUCLEUS_CANDIDATES, probs.shape[-1])
    top, order = probs.topk(k, dim=-1)  # sorted, descending
    # Every token past the k most likely has at least their mass before it: inside the nucleus only if that
    # mass is below top_p. Where it is not, the nucleus lies within the top k.
    picks = _nucleus_pick(top, order, uniforms, top_p)
    wide = top.sum(-1) < top_p
    if bool(wide.any()):
        full, full_order = probs[wide].sort(dim=-1, descending=True)
        picks[wide] = _nucleus_pick(full, full_order, uniforms[wide], top_p)
    return picks


def _nucleus_pick(sorted_probs, order, uniforms, top_p: float):
    """Inverse-CDF draw among the nucleus of probabilities sorted in descending order (``order``: their tokens)."""
    kept = sorted_probs.masked_fill(sorted_probs.cumsum(-1) - sorted_probs >= top_p, 0.0)  # mass before >= top_p
    return order.gather(1, _inverse_cdf(kept, uniforms).unsqueeze(1)).squeeze(1)


def _inverse_cdf(probs, uniforms):
    """The index at which each row's cumulative mass first exceeds its uniform times the row's total."""
    import torch

    cdf = probs.cumsum(-1)
    target = uniforms.to(cdf.dtype).unsqueeze(1) * cdf[:, -1:]
    return torch.searchsorted(cdf, target, right=True).clamp_(max=probs.shape[-1] - 1).squeeze(1)


class SeededSampler:
    """A logits processor that samples by itself, with one numpy generator per row, and leaves a single
    allowed token; generate() then runs greedy and takes exactly that token.

    Why not generate(do_sample=True): it draws from the global torch RNG, so a sample would depend on its
    batch mates, and a resumed run would not draw what the interrupted one would have.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float):
        import numpy as np

        self.rngs = [np.random.default_rng(seed) for seed in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids, scores):
        import torch

        # Clamped below 1 so the float32 product stays inside the CDF.
        u = torch.tensor([min(rng.random(), 0.9999999) for rng in self.rngs], device=scores.device)
        tokens = sample_rows(scores, u, self.temperature, self.top_p)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens.unsqueeze(1), 0.0)


class TransformersBackend:
    """Batched ``model.generate`` with left padding and the KV cache; always available."""

    name = "transformers"

    def __init__(self, model, tokenizer, settings: "EvalSettings"):
        self.model, self.tokenizer, self.settings = model.eval(), tokenizer, settings
        tokenizer.padding_side = "left"  # every row must end where its prompt ends
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = eos_token_ids(model, tokenizer)

    def generation_config(self, prompt_tokens: int):
        """Greedy over the sampler's single allowed token; every flag the model's own generation config might
        set (repetition penalty, top-k) is pinned so nothing but temperature and top-p shapes a sample."""
        from transformers import GenerationConfig

        return GenerationConfig(
            max_new_tokens=self.new_token_limit(prompt_tokens), do_sample=False, num_beams=1, use_cache=True,
            eos_token_id=sorted(self.eos_ids), pad_token_id=self.tokenizer.pad_token_id,
            repetition_penalty=1.0, temperature=1.0, top_k=50, top_p=1.0,
        )

    def new_token_limit(self, prompt_tokens: int) -> int:
        """--max-new-tokens, cut to what the model's context leaves after the prompt (said once on stderr):
        past its positions a model's output is noise, or an index error for learned position embeddings."""
        context = getattr(self.model.config, "max_position_embeddings", None)
        limit = self.settings.max_new_tokens
        if context and prompt_tokens + limit > context:
            limit = max(1, context - prompt_tokens)
            if not getattr(self, "_warned", False):
                print(f"lapo eval: the model's context is {context} tokens, so completions stop after {limit} "
                      f"new tokens (not {self.settings.max_new_tokens}).", file=sys.stderr)
                self._warned = True
        return limit

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList

        s = self.settings
        enc = prompt_batch(self.tokenizer, prompts).to(self.model.device)
        sampler = [SeededSampler(seeds, s.temperature, s.top_p)] if s.temperature > 0 else []
        with torch.inference_mode(), _threads_for(self.model):
            out = self.model.generate(**enc, generation_config=self.generation_config(enc["input_ids"].shape[1]),
                                      logits_processor=LogitsProcessorList(sampler))
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        return [cut_at_eos(row, self.eos_ids) for row in new]


# Below this size a CPU matmul is too small to split: torch's thread pool then costs more than it saves
# (measured: a 1.8M-parameter model decoded 6x slower with 2 threads than with 1 on 2 busy cores).
SMALL_MODEL_PARAMS = 20_000_000


@contextmanager
def _threads_for(model):
    """One torch thread while a small model generates on CPU; the caller's setting is restored after."""
    import torch

    small = model.device.type == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
    before = torch.get_num_threads()
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def prompt_batch(tokenizer, prompts: Sequence[str]):
    """Padded tensors of the prompts, encoded as in training (lapo.data.prompts.encode_prompts: the tokenizer's
    special tokens added, as TRL does; a template's own BOS was left out when rendering)."""
    return tokenizer(list(prompts), return_tensors="pt", padding=True)


class VLLMBackend:
    """vLLM offline generation, one request per sample with its own seed; same tokens in, same scoring out."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, settings: "EvalSettings"):
        from vllm import LLM

        self.tokenizer, self.settings = tokenizer, settings
        self.llm = LLM(model=model_path, tokenizer=model_path, seed=settings.seed, dtype="auto",
                       tensor_parallel_size=settings.tensor_parallel_size,
                       gpu_memory_utilization=settings.gpu_memory_utilization)
        self.eos_ids = eos_token_ids(_ConfigOnly(model_path), tokenizer)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Generation]:
        from vllm import SamplingParams

        s = self.settings
        ids = encode_prompts(self.tokenizer, prompts)  # token ids in: exactly the training encoding
        params = [SamplingParams(n=1, temperature=s.temperature, top_p=s.top_p if s.temperature > 0 else 1.0,
                                 max_tokens=s.max_new_tokens, seed=seed % 2**31, stop_token_ids=sorted(self.eos_ids))
                  for seed in seeds]
        outs = self.llm.generate([{"prompt_token_ids": i} for i in ids], params, use_tqdm=False)
        return [self._finish(o.outputs[0]) for o in outs]

    def _finish(self, output) -> Generation:
        token_ids = list(output.token_ids)
        if output.finish_reason == "length":
            return Generation(token_ids, truncated=True)
        # vLLM may leave the stop token out of token_ids; count it, as the transformers backend does.
        if not token_ids or token_ids[-1] not in self.eos_ids:
            token_ids.append(min(self.eos_ids))
        return Generation(token_ids, truncated=False)


class _ConfigOnly:
    """Stands in for a model where only its generation config is needed (the vLLM engine holds the weights)."""

    def __init__(self, model_path: str):
        from transformers import GenerationConfig

        try:
            self.generation_config = GenerationConfig.from_pretrained(model_path)
        except OSError:  # no generation_config.json: the tokenizer's EOS alone
            self.generation_config = None


def vllm_available() -> bool:
    """Whether vLLM is installed and a CUDA device is present (vLLM runs on GPUs)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


# --------------------------------------------------------------------------------------------------
# Choosing and loading a backend: every failure a user can fix is one LapoError line


def choose_backend(requested: str) -> str:
    """``auto`` -> vLLM when it is installed and a GPU is there, else transformers."""
    if requested == "vllm" and not vllm_available():
        raise LapoError("--backend vllm needs vLLM and a CUDA GPU: pip install 'lapo[vllm]' on a GPU machine, "
                        "or use --backend transformers.")
    if requested == "auto":
        return "vllm" if vllm_available() else "transformers"
    return requested


def load_backend(settings: EvalSettings):
    """(backend, tokenizer): the model loaded for the chosen backend."""
    import torch

    from lapo.models.loading import load_model_and_tokenizer, load_tokenizer, model_path

    name = choose_backend(settings.backend)
    if name == "vllm":
        path = model_path(settings.model)
        tokenizer = load_tokenizer(path)
        return VLLMBackend(path, tokenizer, settings), tokenizer
    device = settings.device if settings.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model, tokenizer = load_model_and_tokenizer(settings.model, dtype=dtype)
    return TransformersBackend(model.to(device), tokenizer, settings), tokenizer


def make_backend(settings: EvalSettings, model, tokenizer):
    """(backend, tokenizer): around an in-memory model when given, else loaded from ``settings.model``."""
    if model is not None:
        return TransformersBackend(model, tokenizer, settings), tokenizer
    return load_backend(settings)
