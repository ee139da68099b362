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


def test_measure_reports_every_level_of_the_problems(tmp_path):
    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=16)
    table = warmstart.measure(model, tokenizer, tmp_path, samples=1, problems=10, max_new_tokens=8)
    assert [f.level for f in table] == list(counting.LEVELS)


def test_measure_gives_the_figures_of_lapo_eval(tmp_path, capsys):
    """The warm-start table and `lapo eval` on the saved model agree: one way of counting and grading."""
    from lapo.eval.evaluate import main as eval_main

    tokenizer = build_char_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=16)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    table = warmstart.measure(model, tokenizer, tmp_path / "m", samples=2, problems=10, max_new_tokens=12, seed=3)
    assert eval_main(["--model", str(tmp_path / "m"), "--dataset", "counting", "--prompt-format", "plain", "--k", "2",
                      "--limit", "10", "--seed", "3", "--data-seed", "3", "--max-new-tokens", "12",
                      "--out", str(tmp_path / "eval"), "--no-progress"]) == 0
    levels = json.loads((tmp_path / "eval" / "summary.json").read_text())["by_level"]
    assert [(f.accuracy, f.mean_tokens, f.min_tokens) for f in table] == \
        [(m["pass_at_1"], m["mean_tokens"], m["minimal_tokens"]) for m in levels.values()]


def test_budgeted_measurement_draws_a_budget_between_one_and_two_minimal_lengths(tmp_path):
    problems = {p["id"]: p for p in counting.load_split("test", seed=0, n=20)}
    targets = json.loads(warmstart.measurement_budgets(tmp_path, 20, seed=0).read_text())
    assert set(targets) == set(problems)
    assert all(problems[i]["min_tokens"] <= n <= 2 * problems[i]["min_tokens"] for i, n in targets.items())


def test_budgeted_measurement_prompts_carry_the_budget_and_plain_ones_none(tmp_path):
    plain = warmstart.measure_settings(tmp_path, 1, 5, 0, 0.6, 0.95, 8, budgeted=False)
    budgeted = warmstart.measure_settings(tmp_path, 1, 5, 0, 0.6, 0.95, 8, budgeted=True)
    assert plain.budget == "none" and budgeted.budget == f"targets:{tmp_path / 'measure-budgets.json'}"


def test_init_continues_from_the_given_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM

    warmstart.main(["--out", str(tmp_path / "first"), "--max-steps", "1", *TINY])
    # Learning rate 0: the continued model must be the checkpoint itself, not a fresh model.
    warmstart.main(["--out", str(tmp_path / "second"), "--init", str(tmp_path / "first"),
                    "--budget-learning-rate", "0", *TINY])
    first = AutoModelForCausalLM.from_pretrained(tmp_path / "first")
    second = AutoModelForCausalLM.from_pretrained(tmp_path / "second")
    assert torch.equal(first.model.embed_tokens.weight, second.model.embed_tokens.weight)


def test_format_table_has_a_row_per_level_and_a_total():
    rows = [warmstart.LevelFigures(level, 0.5, 20.0, 10.0, 2.0, 4) for level in (1, 2)]
    assert len(warmstart.format_table(rows).splitlines()) == 2 + 2 + 1
