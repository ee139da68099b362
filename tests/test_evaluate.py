"""`lapo eval`: scoring fixed completions, resume, budgets in prompts, auto settings, a tiny model end to end."""

import json
from pathlib import Path

import pytest

from lapo.core.budget import parse_budget
from lapo.errors import LapoError
from lapo.eval import evaluate as ev
from lapo.eval import samples as sm
from lapo.eval.generation import TransformersBackend
from lapo.eval.samples import Generation
from lapo.eval.settings import EvalSettings

SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"


# ------------------------------------------------------------------------------------------- evaluation runs


class FixedBackend:
    """Returns fixed completions: sample 0 answers right, every other sample wrong; records prompts seen."""

    name = "fixed"

    def __init__(self, tokenizer, answers):
        self.tokenizer, self.answers, self.prompts, self.calls = tokenizer, answers, [], 0

    def generate(self, prompts, seeds):
        self.calls += 1
        self.prompts += list(prompts)
        out = []
        for prompt in prompts:
            text = self.answers(prompt)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            out.append(Generation(ids, truncated=False))
        return out


@pytest.fixture(scope="module")
def char_tok():
    """lapo's character-level tokenizer without a chat template (conftest's ``char_tokenizer`` has one)."""
    from lapo.models.tiny import build_char_tokenizer

    return build_char_tokenizer()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, char_tok):
    """A 2-layer Qwen2 with hidden size 32, saved like a checkpoint."""
    from lapo.models.tiny import build_tiny_model

    model = build_tiny_model(char_tok, hidden_size=32, num_heads=2, num_layers=2, max_position_embeddings=256)
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    char_tok.save_pretrained(path)
    return path


def _counting(tmp_path, **kw):
    base = dict(model="unused", dataset="counting", limit=4, k=2, max_new_tokens=16, out=str(tmp_path / "out"),
                progress=False, prompt_format="plain")
    return EvalSettings(**{**base, **kw})


def test_scoring_on_fixed_completions_matches_hand_counts(tmp_path, char_tok):
    from lapo.data.problems import load_problems

    problems = load_problems("counting", split="test", limit=4)
    gold = {p.problem: p.answer for p in problems}
    # Right answer for problems whose prompt contains an odd-indexed problem, wrong otherwise.
    right = {p.problem for p in problems[1::2]}

    def answers(prompt):
        text = next(t for t in gold if t in prompt)
        return f"xy\n</think>\\boxed{{{gold[text] if text in right else 'nope'}}}"

    backend = FixedBackend(char_tok, answers)
    summary = ev.evaluate(_counting(tmp_path), tokenizer=char_tok, backend=backend)
    # 2 of 4 problems right on both samples -> Pass@1 0.5; tokens = characters ("</think>" is one) + EOS
    right_tokens = 2 + 1 + 1 + len("\\boxed{}") + 1 + 1  # "xy", "\n", "</think>", boxed one-digit, EOS
    assert summary["pass_at_1"] == 0.5
    assert summary["mean_tokens"] == pytest.approx((right_tokens * 4 + (right_tokens + 3) * 4) / 8)


def test_samples_jsonl_has_the_documented_fields(tmp_path, char_tok):
    backend = FixedBackend(char_tok, lambda p: "\\boxed{1}")
    ev.evaluate(_counting(tmp_path, limit=1, k=1), tokenizer=char_tok, backend=backend)
    line = json.loads((tmp_path / "out" / sm.SAMPLES_FILE).read_text().splitlines()[0])
    assert set(line) == {"problem_id", "sample", "level", "subject", "budget", "tokens", "truncated", "correct",
                         "predicted", "answer", "completion", "minimal_tokens"}


def test_resume_generates_only_missing_samples(tmp_path, char_tok):
    backend = FixedBackend(char_tok, lambda p: "\\boxed{1}")
    ev.evaluate(_counting(tmp_path, k=1), tokenizer=char_tok, backend=backend)
    first = len(backend.prompts)
    ev.evaluate(_counting(tmp_path, k=3), tokenizer=char_tok, backend=backend)
    lines = (tmp_path / "out" / sm.SAMPLES_FILE).read_text().splitlines()
    assert (first, len(backend.prompts) - first, len(lines)) == (4, 8, 12)


class InterruptedBackend(FixedBackend):
    """Raises KeyboardInterrupt on its second call, as Ctrl-C in the middle of a run would."""

    def generate(self, prompts, seeds):
        if self.calls == 1:
            raise KeyboardInterrupt("Ctrl-C in the second batch")
        return super().generate(prompts, seeds)


def test_interrupted_eval_resumes_where_it_stopped(tmp_path, char_tok):
    settings = _counting(tmp_path, k=2, batch_size=3)
    with pytest.raises(KeyboardInterrupt, match="Ctrl-C in the second batch"):
        backend = InterruptedBackend(char_tok, lambda p: "\\boxed{1}")
        ev.evaluate(settings, tokenizer=char_tok, backend=backend)
    saved = sm.read_samples(tmp_path / "out" / sm.SAMPLES_FILE)
    backend = FixedBackend(char_tok, lambda p: "\\boxed{1}")
    summary = ev.evaluate(settings, tokenizer=char_tok, backend=backend)
    assert (len(saved), len(backend.prompts), summary["num_samples"]) == (3, 5, 8)


def test_a_second_eval_into_a_busy_folder_is_refused(tmp_path, char_tok):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "out"
    out.mkdir()
    with (out / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(LapoError, match="another lapo eval"):
            ev.evaluate(_counting(tmp_path), tokenizer=char_tok,
                        backend=FixedBackend(char_tok, lambda p: "\\boxed{1}"))


def test_completed_eval_rerun_generates_nothing(tmp_path, char_tok):
    backend = FixedBackend(char_tok, lambda p: "\\boxed{1}")
    ev.evaluate(_counting(tmp_path), tokenizer=char_tok, backend=backend)
    calls = backend.calls
    summary = ev.evaluate(_counting(tmp_path), tokenizer=char_tok, backend=backend)
    assert backend.calls == calls and summary["complete"]


def test_fixed_budget_is_written_into_every_prompt(tmp_path, char_tok):
    backend = FixedBackend(char_tok, lambda p: "\\boxed{1}")
    ev.evaluate(_counting(tmp_path, budget="fixed:37"), tokenizer=char_tok, backend=backend)
    assert {parse_budget(p) for p in backend.prompts} == {37}


def test_target_budgets_follow_the_stage1_map(tmp_path, char_tok):
    from lapo.data.problems import load_problems

    problems = load_problems("counting", split="test", limit=4)
    targets = {p.id: 20 + i for i, p in enumerate(problems)}
    (tmp_path / "targets.json").write_text(json.dumps(targets))
    backend = FixedBackend(char_tok, lambda p: "\\boxed{1}")
    summary = ev.evaluate(_counting(tmp_path, budget=f"targets:{tmp_path}", k=1), tokenizer=char_tok,
                          backend=backend)
    shown = {parse_budget(p) for p in backend.prompts}
    assert shown == set(targets.values()) and summary["budget_adherence"]["num_samples"] == 4


def test_auto_settings_come_from_the_training_run_config(tmp_path, char_tok):
    import yaml

    final = tmp_path / "run" / "internalization" / "final"
    final.mkdir(parents=True)
    lapo = {"prompt_kind": "plain", "plain_template": "Q: {problem}", "think_tag": "<t>",
            "answer_fallback": "last_number"}
    config = {"discovery": {"lapo": {}}, "internalization": {"lapo": lapo}}
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(config))
    fmt = ev.resolve_prompt_format("auto", str(final), char_tok)
    checking = ev.resolve_answer_checking(EvalSettings(model=str(final), dataset="counting"))
    assert (fmt.kind, fmt.plain_template, fmt.think_tag, checking[0]) == ("plain", "Q: {problem}", "<t>", "last_number")


def test_auto_prompt_format_without_a_run_follows_the_tokenizer(char_tok):
    assert ev.resolve_prompt_format("auto", "some/hub-id", char_tok).kind == "plain"


def test_missing_dataset_fails_before_the_model_loads(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ev, "load_tokenizer", lambda *a: pytest.fail("a tokenizer was loaded"))
    code = ev.main(["--model", "lapo-counting-base", "--dataset", str(tmp_path / "nope.jsonl"),
                    "--out", str(tmp_path / "o")])
    assert code == 2 and "nope.jsonl does not exist" in capsys.readouterr().err


def test_a_model_name_that_cannot_load_fails_before_the_problems_load(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ev, "load_eval_problems", lambda *a: pytest.fail("the problems were loaded"))
    code = ev.main(["--model", str(tmp_path / "no-model"), "--dataset", "counting", "--out", str(tmp_path / "o")])
    assert code == 2 and "no-model' is neither a model folder" in capsys.readouterr().err



def test_tiny_model_samples_do_not_depend_on_batch_size(tmp_path, tiny):
    def completions(batch, sub):
        settings = _counting(tmp_path, model=str(tiny), batch_size=batch, out=str(tmp_path / sub), temperature=1.0)
        ev.evaluate(settings)
        rows = sm.read_samples(tmp_path / sub / sm.SAMPLES_FILE)
        return {key: r["completion"] for key, r in rows.items()}

    assert completions(1, "b1") == completions(8, "b8")


def test_new_tokens_stop_at_the_model_context(tiny, char_tok):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny)  # max_position_embeddings = 256
    backend = TransformersBackend(model, char_tok, EvalSettings(model="m", dataset="d", max_new_tokens=400))
    assert (backend.new_token_limit(200), backend.new_token_limit(10)) == (56, 246)


def test_generation_leaves_torch_thread_count_as_it_found_it(tmp_path, tiny):
    import torch

    before = torch.get_num_threads()
    ev.evaluate(_counting(tmp_path, model=str(tiny), limit=1, k=1, max_new_tokens=3))
    assert torch.get_num_threads() == before


def test_warm_model_scores_its_taught_answers(tmp_path, warm_model_dir, toy_problems):
    # conftest's warm model answers "P<i><think>" with 1-8 "x", "</think>\\boxed{7}" (gold, ~75%) or "{3}".
    settings = EvalSettings(model=str(warm_model_dir), dataset=str(toy_problems), k=8, max_new_tokens=32,
                            out=str(tmp_path / "w"), progress=False, prompt_format="plain")
    summary = ev.evaluate(settings)
    rows = sm.read_samples(tmp_path / "w" / sm.SAMPLES_FILE).values()
    # A correct sample is 1-8 "x", "</think>" (one token), "\\boxed{7}" (9) and EOS: 12 to 19 tokens.
    assert 0.5 <= summary["pass_at_1"] <= 0.95 and {r["tokens"] for r in rows if r["correct"]} <= set(range(12, 20))


def test_cli_on_tiny_model_writes_summary(tmp_path, tiny, capsys):
    out = tmp_path / "cli"
    code = ev.main(["--model", str(tiny), "--dataset", "counting", "--limit", "3", "--k", "2",
                    "--max-new-tokens", "12", "--out", str(out), "--no-progress"])
    summary = json.loads((out / sm.SUMMARY_FILE).read_text())
    assert code == 0 and (summary["num_samples"], summary["schema"]) == (6, ev.EVAL_SCHEMA)


def test_truncated_samples_used_every_new_token(tmp_path, tiny):
    ev.evaluate(_counting(tmp_path, model=str(tiny), max_new_tokens=5, temperature=1.0))
    rows = sm.read_samples(tmp_path / "out" / sm.SAMPLES_FILE).values()
    assert {r["tokens"] for r in rows if r["truncated"]} == {5}


# ------------------------------------------------------------------------------------------- shared benchmark data


@pytest.mark.skipif(not (SHARED_DATA / "math500.jsonl").exists(), reason="../shared/data is not present")
def test_math500_slice_breaks_down_by_level_and_subject(tmp_path, char_tok):
    from lapo.data.problems import load_problems

    problems = load_problems("math500", data_dir=SHARED_DATA, limit=6)
    gold = {p.problem: p.answer for p in problems}

    def answers(prompt):
        return "\\boxed{%s}" % next(a for text, a in gold.items() if text in prompt)

    backend = FixedBackend(char_tok, answers)
    settings = EvalSettings(model="unused", dataset="math500", data_dir=str(SHARED_DATA), limit=6, k=1,
                            out=str(tmp_path / "m"), progress=False, prompt_format="plain")
    summary = ev.evaluate(settings, tokenizer=char_tok, backend=backend)
    levels = {str(p.level) for p in problems}
    assert set(summary["by_level"]) == levels and set(summary["by_subject"]) == {p.subject for p in problems}


@pytest.mark.skipif(not (SHARED_DATA / "aime24.jsonl").exists(), reason="../shared/data is not present")
def test_aime24_slice_pass_at_1_on_fixed_completions(tmp_path, char_tok):
    from lapo.data.problems import load_problems

    problems = load_problems("aime24", data_dir=SHARED_DATA, limit=8)  # row 8 has the gold "025"
    gold = {p.problem: p.answer for p in problems}
    seen: dict[str, int] = {}

    def answers(prompt):
        # First sample of each problem: the gold as an integer (AIME golds like "025" must still match);
        # second sample: off by one. Pass@1 is then exactly 0.5.
        text = next(t for t in gold if t in prompt)
        seen[text] = seen.get(text, 0) + 1
        return "\\boxed{%d}" % (int(gold[text]) + (seen[text] - 1))

    settings = EvalSettings(model="unused", dataset="aime24", data_dir=str(SHARED_DATA), limit=8, k=2,
                            out=str(tmp_path / "a"), progress=False, prompt_format="plain", batch_size=1)
    summary = ev.evaluate(settings, tokenizer=char_tok, backend=FixedBackend(char_tok, answers))
    assert summary["pass_at_1"] == 0.5


def test_budget_sweep_evaluates_each_n_and_plots_produced_against_requested(tmp_path, tiny):
    out = tmp_path / "sweep"
    code = ev.main(["--model", str(tiny), "--dataset", "counting", "--limit", "2", "--k", "1", "--max-new-tokens",
                    "8", "--out", str(out), "--no-progress", "--budget", "sweep:5,12", "--prompt-format", "plain"])
    points = json.loads((out / "sweep.json").read_text())
    assert code == 0 and [p["requested"] for p in points] == [5, 12] and (out / "sweep.png").is_file()


def test_fixed_budget_reports_l1s_signed_error_and_off_budget_share(tmp_path, char_tok):
    backend = FixedBackend(char_tok, lambda p: "\\boxed{1}")  # 10 tokens with EOS, for a budget of 6
    summary = ev.evaluate(_counting(tmp_path, budget="fixed:6", budget_tolerance=0.2), tokenizer=char_tok,
                          backend=backend)
    adh = summary["budget_adherence"]
    assert (adh["signed_rel_error"], adh["off_budget"]) == (pytest.approx(4 / 6), 1.0)
