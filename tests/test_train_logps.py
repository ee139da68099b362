"""lapo's CPU log-probabilities (only completion positions projected) equal TRL's own, values and gradients.

``LapoGRPOTrainer.compact_cpu_logps = False`` is TRL's ``_get_per_token_logps_and_entropies`` unchanged; both paths
run on the same tiny model and batch (left-padded prompts, right-padded completions, bf16 autocast as the SmolLM2
recipe trains, a temperature other than 1, a vocabulary split into several tiles), and must agree within float
tolerance.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import make_char_tokenizer, make_tiny_model  # noqa: E402

from lapo.train import trainer as trainer_module  # noqa: E402

COMPLETION = 6


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from datasets import Dataset

    from lapo.train.config import LapoGRPOConfig
    from lapo.train.trainer import LapoGRPOTrainer

    args = LapoGRPOConfig(output_dir=str(tmp_path_factory.mktemp("logps")), use_cpu=True, bf16=True,
                          report_to="none", per_device_train_batch_size=4, num_generations=2,
                          max_completion_length=COMPLETION, use_vllm=False, beta=0.0, temperature=0.7)
    tokenizer = make_char_tokenizer()
    return LapoGRPOTrainer(model=make_tiny_model(tokenizer, "llama"), args=args, processing_class=tokenizer,
                           reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
                           train_dataset=Dataset.from_dict({"prompt": ["P1", "P2"]}))


def _batch():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 250, (4, 5 + COMPLETION), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # a left-padded prompt
    mask[1, -3:] = 0  # a completion that ended early (padding after it)
    return ids, mask


def _logps(trainer, compact: bool):
    """(log-probs, entropies, gradient of their sum w.r.t. every weight) from one path."""
    model = trainer.model
    model.zero_grad()
    ids, mask = _batch()
    type(trainer).compact_cpu_logps = compact
    chunk, trainer_module.CPU_VOCAB_CHUNK = trainer_module.CPU_VOCAB_CHUNK, 100  # 3 tiles of the 261 words
    try:
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(model, ids, mask, COMPLETION,
                                                                         compute_entropy=True)
    finally:
        type(trainer).compact_cpu_logps, trainer_module.CPU_VOCAB_CHUNK = True, chunk
    (logps.sum() + entropies.sum()).backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return logps.detach(), entropies.detach(), grads


@pytest.fixture(scope="module")
def both(trainer):
    return _logps(trainer, compact=False), _logps(trainer, compact=True)


def test_per_token_log_probabilities_equal_trls(both):
    (trl, _, _), (lapo, _, _) = both
    torch.testing.assert_close(lapo, trl, rtol=1e-4, atol=1e-4)


def test_per_token_entropies_equal_trls(both):
    (_, trl, _), (_, lapo, _) = both
    torch.testing.assert_close(lapo, trl, rtol=1e-4, atol=1e-4)


def test_gradients_equal_trls(both):
    (_, _, trl), (_, _, lapo) = both
    torch.testing.assert_close(lapo, trl, rtol=1e-3, atol=1e-4)


def test_the_lapo_path_projects_only_completion_positions(trainer, monkeypatch):
    # Without this the comparison above could pass with both paths being TRL's.
    import trl.trainer.utils as trl_utils

    rows = []
    real = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *a: rows.append(hidden.shape[0]) or real(hidden, *a))
    ids, mask = _batch()
    with torch.no_grad():
        trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, COMPLETION)
    assert rows == [int(mask[:, -COMPLETION:].sum())]


def test_other_devices_keep_trls_choice():
    import trl.trainer.utils as trl_utils

    from lapo.train.trainer import compact_lm_head_on_cpu

    original = trl_utils._use_triton
    with compact_lm_head_on_cpu():
        inside = trl_utils._use_triton(torch.device("meta"))
    assert inside == original(torch.device("meta")) and trl_utils._use_triton is original


def test_activation_checkpointing_leaves_the_gradients_unchanged(trainer):
    # The SmolLM2 recipe checkpoints activations (memory); the recomputed forward must give the same gradients.
    model = trainer.model
    model.train()
    plain = _logps(trainer, compact=True)[2]
    calls, mlp = [], model.model.layers[0].mlp
    mlp.forward = lambda *a, _real=mlp.forward, **k: calls.append(1) or _real(*a, **k)  # hooks skip the recompute
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        checkpointed = _logps(trainer, compact=True)[2]
    finally:
        model.gradient_checkpointing_disable()
        del mlp.forward
    assert len(calls) == 2  # the layer ran again in backward: activations were recomputed, not kept
    torch.testing.assert_close(checkpointed, plain, rtol=1e-5, atol=1e-6)
