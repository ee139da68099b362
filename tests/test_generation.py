"""Generation backends: cutting at EOS, seeded nucleus sampling, and choosing a backend."""

import pytest

from lapo.errors import LapoError
from lapo.eval import generation as gen
from lapo.eval.samples import Generation

# ------------------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    "ids, truncated, kept",
    [([5, 6, 2, 0, 0], False, [5, 6, 2]), ([5, 6, 7], True, [5, 6, 7]), ([2], False, [2]), ([5, 3, 2], False, [5, 3])],
)
def test_cut_at_eos_keeps_the_eos_token(ids, truncated, kept):
    assert gen.cut_at_eos(ids, {2, 3}) == Generation(kept, truncated)


@pytest.mark.parametrize(
    "temperature, top_p, expected",
    [
        (1.0, 1.0, [0.5, 0.3, 0.15, 0.05]),
        (1.0, 0.7, [0.625, 0.375, 0.0, 0.0]),  # nucleus {0, 1}: mass before token 2 is 0.8 >= 0.7
        (0.5, 1.0, [p * p / 0.365 for p in (0.5, 0.3, 0.15, 0.05)]),
    ],
)
def test_sample_rows_draws_the_tempered_nucleus_distribution(temperature, top_p, expected):
    torch = pytest.importorskip("torch")
    n = 4000
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(n, 1)
    uniforms = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # exact quantiles: counts = n * p
    tokens = gen.sample_rows(logits, uniforms, temperature, top_p)
    freq = torch.bincount(tokens, minlength=4).double() / n
    assert freq.tolist() == pytest.approx(expected, abs=1.5 / n)


def test_vllm_backend_request_without_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(gen, "vllm_available", lambda: False)
    with pytest.raises(LapoError, match="pip install"):
        gen.choose_backend("vllm")


def _full_sort_nucleus(logits, uniforms, temperature, top_p):
    """The nucleus draw over the whole sorted vocabulary, as sample_rows did before its top-k fast path."""
    import torch

    probs = torch.softmax(logits.float() / temperature, dim=-1)
    probs, order = probs.sort(dim=-1, descending=True)
    probs = probs.masked_fill(probs.cumsum(-1) - probs >= top_p, 0.0)
    cdf = probs.cumsum(-1)
    pick = torch.searchsorted(cdf, uniforms.to(cdf.dtype).unsqueeze(1) * cdf[:, -1:], right=True)
    return order.gather(1, pick.clamp_(max=probs.shape[-1] - 1)).squeeze(1)


@pytest.mark.parametrize("spread", [0.5, 3.0, 12.0])  # flat rows (nucleus wider than the top k) to peaked ones
def test_sample_rows_draws_what_a_full_sort_of_the_vocabulary_draws(spread):
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(256, 5000, generator=generator) * spread
    logits[::3] *= 4  # a mix of wide and narrow nuclei in one batch
    uniforms = torch.rand(256, generator=generator, dtype=torch.float64)
    fast = gen.sample_rows(logits, uniforms, 0.6, 0.95)
    assert fast.tolist() == _full_sort_nucleus(logits, uniforms, 0.6, 0.95).tolist()
