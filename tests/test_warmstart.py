"""`lapo warmstart`: SFT rows, a two-step run on a tiny model, and the measurement table."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from lapo import warmstart  # noqa: E402
from lapo.core.budget import parse_budget  # noqa: E402
from lapo.errors import LapoError  # noqa: E402
from lapo.models.tiny import build_char_tokenizer, build_tiny_model  # noqa: E402
from lapo.tasks import counting  # noqa: E402

TINY = ["--hidden-size", "16", "--layers", "2", "--heads", "2", "--batch-size", "4", "--threads", "1",
        "--budget-steps", "1"]


@pytest.fixture(scope="module")
def problems():
    return counting.load_split("train", seed=0, n=20)


def test_sft_prompts_end_with_the_think_tag(problems):
    rows = warmstart.build_sft_rows(problems, seed=0)
    assert all(prompt.endswith("<think>") for prompt in rows["prompt"])


def test_sft_completions_are_correct(problems):
    rows = warmstart.build_sft_rows(problems, seed=0)
    assert all(counting.is_correct(c, p["answer"]) for c, p in zip(rows["completion"], problems))


def test_no_budget_sentence_without_a_budget_share(problems):
    rows = warmstart.build_sft_rows(problems, seed=0, budget_share=0.0)
    assert not any(parse_budget(prompt) for prompt in rows["prompt"])


def test_budget_share_puts_a_sentence_after_the_think_tag():
    problems = counting.load_split("train", seed=0, n=400)
    rows = warmstart.build_sft_rows(problems, seed=0, budget_share=0.3)
    budgeted = [prompt for prompt in rows["prompt"] if parse_budget(prompt)]
    assert 0.2 < len(budgeted) / len(problems) < 0.4 and all("<think>I will" in prompt for prompt in budgeted)


def test_budget_share_leaves_the_completions_unchanged(problems):
    with_budgets = warmstart.build_sft_rows(problems, seed=0, budget_share=1.0)["completion"]
    assert with_budgets == warmstart.build_sft_rows(problems, seed=0, budget_share=0.0)["completion"]


def test_sft_rows_are_reproducible(problems):
    assert warmstart.build_sft_rows(problems, seed=4) == warmstart.build_sft_rows(problems, seed=4)


def test_command_line_overrides_the_recipe():
    cfg = warmstart.parse_args(["--max-steps", "7", "--learning-rate", "0.01"])
    assert (cfg.max_steps, cfg.learning_rate, cfg.hidden_size) == (7, 0.01, warmstart.WarmstartConfig().hidden_size)


def test_two_steps_save_a_loadable_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert warmstart.main(["--out", str(tmp_path), "--max-steps", "2", *TINY]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert model.config.vocab_size == len(tokenizer)


def test_two_steps_change_the_weights(tmp_path):
    from transformers import AutoModelForCausalLM

    warmstart.main(["--out", str(tmp_path), "--max-steps", "2", "--learning-rate", "0.01", *TINY])
    initial = build_tiny_model(build_char_tokenizer(), hidden_size=16, num_layers=2, num_heads=2, seed=0)
    trained = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert not torch.equal(initial.model.embed_tokens.weight, trained.model.embed_tokens.weight)


def _phases(monkeypatch, argv):
    """(steps, learning rate, budget share) of each SFT phase `lapo warmstart argv` runs (no training)."""
    calls = []

    def fake_sft(cfg, model, tokenizer, steps, learning_rate, warmup_steps, budget_share):
        calls.append((steps, learning_rate, budget_share))
        return model

    monkeypatch.setattr(warmstart, "_sft", fake_sft)
    warmstart.train(warmstart.parse_args(argv))
    return calls


def test_plain_phase_then_budget_phase(monkeypatch, tmp_path):
    argv = ["--out", str(tmp_path), *TINY, "--max-steps", "5", "--learning-rate", "0.01", "--budget-steps", "3",
            "--budget-learning-rate", "0.001", "--budget-share", "0.4"]
    assert _phases(monkeypatch, argv) == [(5, 0.01, 0.0), (3, 0.001, 0.4)]


def test_init_skips_the_plain_phase(monkeypatch, tmp_path):
    warmstart.main(["--out", str(tmp_path / "first"), "--max-steps", "1", *TINY])
    argv = ["--out", str(tmp_path / "second"), "--init", str(tmp_path / "first"), *TINY]
    assert [share for _, _, share in _phases(monkeypatch, argv)] == [warmstart.WarmstartConfig().budget_share]


def test_no_budget_phase_with_zero_budget_steps(monkeypatch, tmp_path):
    argv = ["--out", str(tmp_path), *TINY, "--max-steps", "2", "--budget-steps", "0"]
    assert [share for _, _, share in _phases(monkeypatch, argv)] == [0.0]


def test_every_option_has_help():
    assert set(warmstart.HELP) == set(vars(warmstart.WarmstartConfig()))


def test_fresh_model_without_plain_steps_is_refused():
    with pytest.raises(LapoError, match="--max-steps 0: a fresh model needs at least 1 plain step"):
        warmstart.parse_args(["--max-steps", "0"])


def test_run_record_is_written(tmp_path):
    warmstart.main(["--out", str(tmp_path), "--max-steps", "1", *TINY])
    record = json.loads((tmp_path / "lapo_warmstart.json").read_text())
    assert record["config"]["max_steps"] == 1


def test_measure_reports_every_level_of_the_problems():
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=16)
    problems = counting.load_split("test", seed=0, n=10)
    table = warmstart.measure(model, tokenizer, problems, samples=1, max_new_tokens=8)
    assert [f.level for f in table] == list(counting.LEVELS)


def test_budgeted_measurement_prompts_carry_a_budget_between_one_and_two_minimal_lengths():
    problems = counting.load_split("test", seed=0, n=20)
    jobs = warmstart.measurement_prompts(problems, samples=3, seed=0, budgeted=True)
    assert all(p["min_tokens"] <= parse_budget(prompt) <= 2 * p["min_tokens"] for p, prompt in jobs)


def test_plain_measurement_prompts_carry_no_budget():
    problems = counting.load_split("test", seed=0, n=20)
    assert not any(parse_budget(prompt) for _, prompt in warmstart.measurement_prompts(problems, 3, 0, False))


def test_init_continues_from_the_given_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM

    warmstart.main(["--out", str(tmp_path / "first"), "--max-steps", "1", *TINY])
    # Learning rate 0: the continued model must be the checkpoint itself, not a fresh model.
    warmstart.main(["--out", str(tmp_path / "second"), "--init", str(tmp_path / "first"),
                    "--budget-learning-rate", "0", *TINY])
    first = AutoModelForCausalLM.from_pretrained(tmp_path / "first")
    second = AutoModelForCausalLM.from_pretrained(tmp_path / "second")
    assert torch.equal(first.model.embed_tokens.weight, second.model.embed_tokens.weight)


def test_tabulate_gives_ratio_one_to_minimal_traces():
    # Results of a stand-in that always writes the minimal trace correctly: accuracy 1 and ratio 1 everywhere.
    problems = counting.load_split("test", seed=0, n=10)
    results = [(p["level"], True, p["min_tokens"], p["min_tokens"]) for p in problems]
    assert all(f.accuracy == 1.0 and f.ratio == 1.0 for f in warmstart._tabulate(results))


def test_format_table_has_a_row_per_level_and_a_total():
    rows = [warmstart.LevelFigures(level, 0.5, 20.0, 10.0, 2.0, 4) for level in (1, 2)]
    assert len(warmstart.format_table(rows).splitlines()) == 2 + 2 + 1
