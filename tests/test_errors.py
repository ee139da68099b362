"""Bad input, command by command: one line ``lapo <command>: ...`` on stderr, exit status 2, no traceback.

Each row of ``CASES`` writes the files its command reads into a temporary folder, runs ``lapo.cli.main`` and
names the fragments the line must hold: the bad value and the fix. No model is ever loaded (the model paths
do not exist, and the checks run before any loading), and nothing reaches for the network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from lapo.cli import COMMANDS, main
from lapo.errors import LapoError, command, one_line

GOOD_ROW = {"problem_id": "p", "completion": "\\boxed{1}", "answer": "1", "num_tokens": 10}
NO_MODEL = "/nonexistent/model-that-must-not-load"


def _lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _row(**fields) -> str:
    return json.dumps({**GOOD_ROW, **fields})


def _binary(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _score(tmp: Path, *lines: str, extra: tuple[str, ...] = ()) -> list[str]:
    return ["score", "--stage", "discovery", "--input", str(_lines(tmp / "r.jsonl", *lines)), *extra]


def _run_dir(tmp: Path, targets: str | None = None, config: str | None = None) -> Path:
    run = tmp / "run"
    (run / "discovery").mkdir(parents=True)
    (run / "discovery" / "log_history.jsonl").write_text('{"step": 1}\n')
    if targets is not None:
        (run / "targets.json").write_text(targets)
    if config is not None:
        (run / "config.yaml").write_text(config)
    return run


def _eval_dir(tmp: Path, summary: str) -> Path:
    folder = tmp / "ev"
    folder.mkdir()
    (folder / "summary.json").write_text(summary)
    return folder


def _eval(tmp: Path, *extra: str) -> list[str]:
    return ["eval", "--model", "lapo-counting-base", "--dataset", "counting", "--limit", "2", "--k", "1",
            "--out", str(tmp / "out"), *extra]


def _eval_out_with_corrupt_config(tmp: Path) -> list[str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "eval_config.json").write_text("{not json")
    return _eval(tmp)


def _toy(tmp: Path) -> Path:
    return _lines(tmp / "toy.jsonl", *(json.dumps({"id": f"t{i}", "problem": f"P{i}", "answer": "7"}) for i in range(4)))


def _train(tmp: Path, *extra: str, recipe: str = "counting") -> list[str]:
    return ["train", "--config", recipe, f"output_dir={tmp / 'run'}", "use_cpu=true", "bf16=false", *extra]


# (id, argv from a temporary folder, fragments the one line must hold: the value and the fix)
Case = tuple[str, Callable[[Path], list[str]], tuple[str, ...]]
CASES: list[Case] = [
    # ---- lapo score
    ("score-malformed-json", lambda t: _score(t, '{"problem_id": '), ("r.jsonl:1", "not JSON", "one JSON object")),
    ("score-line-not-an-object", lambda t: _score(t, "[1, 2]"), ("r.jsonl:1", "not list", "must be a JSON object")),
    ("score-missing-field", lambda t: _score(t, '{"problem_id": "p", "completion": "x"}'),
     ("missing field(s) answer", "each line needs")),
    ("score-num-tokens-text", lambda t: _score(t, _row(num_tokens="ten")), ("num_tokens 'ten'", "whole number")),
    ("score-num-tokens-negative", lambda t: _score(t, _row(num_tokens=-5)), ("num_tokens -5", "0 or more")),
    ("score-num-tokens-fraction", lambda t: _score(t, _row(num_tokens=10.7)), ("num_tokens 10.7", "whole number")),
    ("score-num-tokens-bool", lambda t: _score(t, _row(num_tokens=True)), ("num_tokens True", "whole number")),
    ("score-budget-text", lambda t: _score(t, _row(budget="abc")), ("budget 'abc'", "positive whole number")),
    ("score-budget-zero", lambda t: _score(t, _row(budget=0)), ("budget 0", "positive whole number")),
    ("score-problem-id-null", lambda t: _score(t, _row(problem_id=None)), ("problem_id None", "string or an integer")),
    ("score-missing-file", lambda t: ["score", "--stage", "discovery", "--input", str(t / "missing.jsonl")],
     ("missing.jsonl", "--input FILE.jsonl")),
    ("score-binary-file", lambda t: ["score", "--stage", "discovery", "--input", str(_binary(t / "b.jsonl"))],
     ("b.jsonl:1", "NUL bytes", "JSON lines")),
    ("score-unknown-flag", lambda t: _score(t, _row(), extra=("--k", "3")), ("--k 3", "lapo score --help")),
    ("score-bad-float", lambda t: _score(t, _row(), extra=("--low", "abc")), ("--low 'abc'", "pass a number")),
    ("score-bad-stage", lambda t: ["score", "--stage", "third", "--input", "x"], ("'third'", "choose from")),
    ("score-low-above-high", lambda t: _score(t, _row(), extra=("--low", "80")), ("--low 80.0", "--low 30 --high 70")),
    ("score-negative-workers", lambda t: _score(t, _row(), extra=("--workers", "-1")), ("--workers -1", "0 or more")),
    ("score-corrupt-targets", lambda t: _score(t, _row(), extra=("--targets", str(_lines(t / "t.json", "{x")))),
     ("t.json", "not readable JSON", "regenerate")),
    ("score-tokenizer-nonexistent", lambda t: _score(t, _row(num_tokens=None), extra=("--tokenizer", "nonexistent")),
     ("--tokenizer 'nonexistent'", "hub id org/name")),
    ("score-missing-required", lambda t: ["score"], ("--input", "lapo score --help")),
    # ---- lapo stats
    ("stats-malformed-json", lambda t: ["stats", str(_lines(t / "s.jsonl", "not json"))],
     ("s.jsonl:1", "not a length record", '"lengths"')),
    ("stats-line-not-an-object", lambda t: ["stats", str(_lines(t / "s.jsonl", "[1]"))], ("s.jsonl:1", "list", "object")),
    ("stats-missing-field", lambda t: ["stats", str(_lines(t / "s.jsonl", '{"problem_id": "p", "step": 1}'))],
     ("missing field 'lengths'", "length_stats.jsonl")),
    ("stats-binary-file", lambda t: ["stats", str(_binary(t / "s.jsonl"))], ("s.jsonl:1", "NUL bytes")),
    ("stats-missing-file", lambda t: ["stats", str(t / "none.jsonl")], ("none.jsonl", "run stage 1 first")),
    ("stats-truncated-line", lambda t: ["stats", str(_write(t / "s.jsonl", '{"problem_id": "p"'))],
     ("s.jsonl:1", "truncated", "remove that line")),
    ("stats-bad-policy", lambda t: ["stats", "x", "--policy", "first"], ("'first'", "choose from")),
    # ---- lapo report
    ("report-corrupt-targets", lambda t: ["report", str(_run_dir(t, targets="{x")), "--out", str(t / "r")],
     ("targets.json", "not readable JSON", "regenerate")),
    ("report-bad-target-value", lambda t: ["report", str(_run_dir(t, targets='{"a": -3}')), "--out", str(t / "r")],
     ("'a' is -3", "positive integers")),
    ("report-corrupt-summary", lambda t: ["report", str(_eval_dir(t, "{x")), "--out", str(t / "r")],
     ("summary.json", "not readable JSON", "regenerate")),
    ("report-incomplete-summary", lambda t: ["report", str(_eval_dir(t, '{"schema": "lapo.eval/1"}')), "--out",
                                             str(t / "r")], ("lacks benchmark", "run the same `lapo eval` again")),
    ("report-corrupt-run-config", lambda t: ["report", str(_run_dir(t, config="a: [")), "--out", str(t / "r")],
     ("config.yaml", "not readable YAML")),
    ("report-missing-dir", lambda t: ["report", str(t / "missing-dir")], ("missing-dir does not exist", "run directory")),
    ("report-empty-dir", lambda t: ["report", str(t)], ("holds no lapo eval summary.json", "lapo eval --out")),
    # ---- lapo eval
    ("eval-corrupt-prompt-format", lambda t: _eval(t, "--prompt-format", str(_lines(t / "pf.json", "{x"))),
     ("pf.json", "not readable JSON")),
    ("eval-prompt-format-not-an-object", lambda t: _eval(t, "--prompt-format", str(_lines(t / "pf.json", "[1]"))),
     ("pf.json", "JSON list", "PromptFormat fields")),
    ("eval-prompt-format-unknown-field", lambda t: _eval(t, "--prompt-format", str(_lines(t / "pf.json", '{"kinds": 1}'))),
     ("kinds", "keep only PromptFormat fields")),
    ("eval-corrupt-budget-targets", lambda t: _eval(t, "--budget", f"targets:{_lines(t / 't.json', '{x')}"),
     ("t.json", "not readable JSON")),
    ("eval-budget-garbage", lambda t: _eval(t, "--budget", "fixed:-3"), ("'fixed:-3'", "fixed:N (N > 0)")),
    ("eval-model-nonexistent", lambda t: ["eval", "--model", "nonexistent", "--dataset", "counting"],
     ("--model 'nonexistent'", "hub id org/name")),
    ("eval-model-missing-folder", lambda t: ["eval", "--model", str(t / "runs" / "x" / "final"), "--dataset", "counting"],
     ("runs/x/final", "neither a model folder")),
    ("eval-model-offline", lambda t: ["eval", "--model", "lapo-test/not-cached", "--dataset", "counting"],
     ("'lapo-test/not-cached'", "HF_HUB_OFFLINE", "pass a local checkpoint folder")),
    ("eval-bad-int", lambda t: _eval(t, "--k", "abc"), ("--k 'abc'", "whole number")),
    ("eval-k-zero", lambda t: _eval(t, "--k", "0"), ("--k 0", "at least 1")),
    ("eval-bad-device", lambda t: _eval(t, "--device", "gpu"), ("--device 'gpu'", "cuda:N")),
    ("eval-corrupt-eval-config", _eval_out_with_corrupt_config, ("eval_config.json", "not readable JSON")),
    ("eval-unknown-dataset", lambda t: ["eval", "--model", "lapo-counting-base", "--dataset", "math50"],
     ("'math50'", "benchmark name")),
    ("eval-hub-dataset-offline", lambda t: ["eval", "--model", "lapo-counting-base", "--dataset", "math500"],
     ("HuggingFaceH4/MATH-500", "--data-dir")),
    ("eval-data-dir-without-the-file", lambda t: ["eval", "--model", "lapo-counting-base", "--dataset", "math500",
                                                  "--data-dir", str(t)], ("no math500.jsonl under", "--data-dir")),
    ("eval-corrupt-dataset", lambda t: ["eval", "--model", "lapo-counting-base", "--dataset",
                                        str(_lines(t / "d.jsonl", '{"problem": "1+1"}', "{x"))],
     ("d.jsonl:2", "not valid JSON")),
    ("eval-binary-dataset", lambda t: ["eval", "--model", "lapo-counting-base", "--dataset", str(_binary(t / "d.jsonl"))],
     ("d.jsonl", "not UTF-8 text")),
    ("eval-missing-dataset", lambda t: ["eval", "--model", "lapo-counting-base", "--dataset", str(t / "d.jsonl")],
     ("d.jsonl does not exist", "check the `dataset` path")),
    ("eval-dataset-without-answer", lambda t: ["eval", "--model", "lapo-counting-base", "--dataset",
                                               str(_lines(t / "d.jsonl", '{"problem": "1+1", "solution": "2"}'))],
     ("no answer field 'answer'", "answer_field")),
    ("eval-missing-required", lambda t: ["eval", "--dataset", "counting"], ("--model", "lapo eval --help")),
    # ---- lapo train
    ("train-bad-float", lambda t: _train(t, "sigma=abc"), ("sigma=abc", "give sigma a number")),
    ("train-bad-int", lambda t: _train(t, "max_steps=1.5"), ("max_steps=1.5", "whole number")),
    ("train-bad-bool", lambda t: _train(t, "online_tightening=maybe"), ("online_tightening", "maybe", "true/false")),
    ("train-missing-recipe", lambda t: _train(t, recipe=str(t / "none.yaml")), ("none.yaml does not exist", "--config")),
    ("train-unknown-key", lambda t: _train(t, "sigmaa=1"), ("sigmaa", "check the spelling")),
    ("train-unknown-flag", lambda t: _train(t, "--sigmaa", "1"), ("sigmaa", "check the spelling")),
    ("train-bad-stage", lambda t: _train(t, "--stage", "third"), ("'third'", "choose from")),
    ("train-corrupt-recipe", lambda t: _train(t, recipe=str(_lines(t / "r.yaml", "a: [")),), ("r.yaml", "not readable YAML")),
    ("train-recipe-not-a-mapping", lambda t: _train(t, recipe=str(_lines(t / "r.yaml", "- a")),), ("r.yaml", "YAML mapping")),
    ("train-negative-learning-rate", lambda t: _train(t, "learning_rate=-1"), ("learning_rate=-1.0", "1e-6")),
    ("train-bad-choice", lambda t: _train(t, "target_policy=first"), ("target_policy='first'", "pick one of those")),
    ("train-band", lambda t: _train(t, "band_low=80"), ("band_low=80", "band_low=30")),
    ("train-override-syntax", lambda t: _train(t, "sigma"), ("'sigma'", "key=value")),
    # a budget sentence without {n} used to surface only when stage 2 wrote its first prompt, after stage 1
    ("train-budget-template", lambda t: _train(t, "budget_template=abc"), ("'abc'", "{n} exactly once")),
    ("train-model-nonexistent", lambda t: _train(t, "model_name_or_path=nonexistent", f"dataset={_toy(t)}"),
     ("model_name_or_path 'nonexistent'", "hub id org/name")),
    ("train-dataset-missing", lambda t: _train(t, f"model_name_or_path={NO_MODEL}", f"dataset={t / 'none.jsonl'}"),
     ("none.jsonl does not exist", "`dataset` path")),
    ("train-stage2-without-stage1", lambda t: _train(t, f"model_name_or_path={NO_MODEL}", f"dataset={_toy(t)}",
                                                     "--stage", "internalization"),
     ("stage 2 needs a stage-1 target map", "lapo train --stage discovery")),
    # ---- lapo warmstart
    ("warmstart-measure-only-missing", lambda t: ["warmstart", "--measure-only", "--out", str(t / "nofolder")],
     ("nofolder holds none", "train it first")),
    ("warmstart-bad-int", lambda t: ["warmstart", "--max-steps", "abc"], ("--max-steps 'abc'", "whole number")),
    ("warmstart-share", lambda t: ["warmstart", "--budget-share", "2"], ("--budget-share 2.0", "between 0 and 1")),
    ("warmstart-negative", lambda t: ["warmstart", "--batch-size", "-4"], ("--batch-size -4", "0 or more")),
    ("warmstart-init-offline", lambda t: ["warmstart", "--init", "lapo-test/not-cached", "--out", str(t / "o")],
     ("--init 'lapo-test/not-cached'", "pass a local checkpoint folder")),
    ("warmstart-out-is-a-file", lambda t: ["warmstart", "--out", str(_lines(t / "f", "x"))], ("is a file", "folder")),
    # ---- lapo quickstart
    ("quickstart-override-typo", lambda t: ["quickstart", "--smoke", "--out", str(t / "qs"), "max_stepz=3"],
     ("max_stepz", "check the spelling")),
    ("quickstart-override-value", lambda t: ["quickstart", "--smoke", "--out", str(t / "qs"), "sigma=abc"],
     ("sigma=abc", "give sigma a number")),
    ("quickstart-k", lambda t: ["quickstart", "--k", "0", "--out", str(t / "qs")], ("--k 0", "at least 1")),
    ("quickstart-base-missing", lambda t: ["quickstart", "--base", str(t / "none"), "--out", str(t / "qs")],
     ("--base", "neither a model folder")),
    ("quickstart-bad-model", lambda t: ["quickstart", "--model", "gpt2"], ("'gpt2'", "choose from")),
]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_model_loads(monkeypatch):
    """Loading weights is a failure: every error must come from a check before any model loads (a shipped
    tokenizer, a few kilobytes, may be read to render prompts)."""
    from lapo.models import loading

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", refuse)
    monkeypatch.setattr(loading, "smollm2_checkpoint", refuse)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_with_exit_status_2(case, tmp_path, capsys):
    name, argv, fragments = case
    args = argv(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"lapo {args[0]}: "), err
    missing = [f for f in fragments if f not in err]
    assert not missing, f"{missing} not in: {err}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_refuses_an_unknown_flag_in_one_line(name, capsys):
    # Every command registered in lapo.cli, including ones added later: its parser's errors are LapoErrors.
    assert main([name, "--no-such-flag", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"lapo {name}: ") and "Traceback" not in err, err


def test_the_quickstart_checks_its_overrides_before_building_the_smoke_model(tmp_path, capsys):
    assert main(["quickstart", "--smoke", "--out", str(tmp_path / "qs"), "max_stepz=3"]) == 2
    assert not (tmp_path / "qs" / "smoke-base").exists()


@pytest.mark.parametrize("argv", [["eval", "--model", "nonexistent", "--dataset", "counting"],
                                  ["eval", "--model", "lapo-test/not-cached", "--dataset", "counting"]])
def test_a_model_that_cannot_load_fails_in_a_second_not_after_hub_retries(argv, capsys):
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 2.0  # the hub client's retries took about 50 s offline


def test_an_unreachable_hub_fails_fast_without_the_offline_switch(monkeypatch, capsys):
    # Nothing listens on port 9 of this machine: the probe is refused at once, no network involved.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert main(["eval", "--model", "lapo-test/not-cached", "--dataset", "counting"]) == 2
    assert "127.0.0.1 cannot be reached" in capsys.readouterr().err


def test_a_cached_model_loads_offline_without_the_hub(monkeypatch, tmp_path):
    from lapo.models.loading import hub_options

    snapshot = tmp_path / "hub" / "models--lapo-test--cached" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hub_options("lapo-test/cached") == {"local_files_only": True}


def test_a_multi_line_message_is_printed_on_one_line(capsys):
    @command("demo")
    def demo(argv):
        raise LapoError("first\nsecond\n\n  third")

    assert demo([]) == 2
    assert capsys.readouterr().err == "lapo demo: first second third\n"
    assert one_line(LapoError("a\nb")) == "a b"


def test_an_unknown_command_is_one_line(capsys):
    assert main(["trian"]) == 2
    assert capsys.readouterr().err == "lapo: unknown command 'trian'; choose one of " + \
        "train, eval, report, score, stats, compare, warmstart, quickstart.\n"


# The before-stop hook's probes, through the installed console script's code path in a fresh process.
HOOK_PROBES = [
    ("score", "--stage", "discovery", "--input", "{tmp}/missing.jsonl"),
    ("score", "--stage", "discovery", "--input", "{tmp}/bad.jsonl"),
    ("stats", "{tmp}/garbage.jsonl"),
    ("report", "{tmp}/missing-dir"),
]


@pytest.mark.parametrize("probe", HOOK_PROBES, ids=["score-missing", "score-ten", "stats-garbage", "report-missing"])
def test_a_fresh_process_prints_one_line_and_exits_2(probe, tmp_path):
    _lines(tmp_path / "bad.jsonl", _row(num_tokens="ten"))
    _lines(tmp_path / "garbage.jsonl", "not json")
    argv = [a.format(tmp=tmp_path) for a in probe]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    out = subprocess.run([sys.executable, "-m", "lapo.cli", *argv], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"lapo {argv[0]}: "), out.stderr
