"""Budgets per problem and the sample files of an evaluation folder: seeds, torn lines, resume checks."""

import json

import pytest

from lapo.errors import LapoError
from lapo.eval import samples as sm


def rec(pid, correct, tokens, *, sample=0, truncated=False, level=None, budget=None, **extra):
    return {"problem_id": pid, "sample": sample, "correct": correct, "tokens": tokens, "truncated": truncated,
            "level": level, "budget": budget, **extra}


# ------------------------------------------------------------------------------------------- budgets


@pytest.mark.parametrize(
    "spec, expected",
    [("none", ("none", None)), ("fixed:256", ("fixed", 256)), ("targets:runs/x/t.json", ("targets", "runs/x/t.json"))],
)
def test_parse_budget_spec(spec, expected):
    assert sm.parse_budget_spec(spec) == expected


@pytest.mark.parametrize("spec", ["fixed:0", "fixed:abc", "targets:", "budget", "none:3"])
def test_parse_budget_spec_rejects_bad_values(spec):
    with pytest.raises(LapoError, match="--budget"):
        sm.parse_budget_spec(spec)


def test_targets_budget_from_run_dir_reports_missing_problems(tmp_path):
    (tmp_path / "targets.json").write_text(json.dumps({"a": 120, "b": 300}))
    budgets, missing = sm.assign_budgets(["a", "b", "c"], f"targets:{tmp_path}")
    assert (budgets, missing) == ({"a": 120, "b": 300, "c": None}, ["c"])


def test_targets_budget_refuses_a_map_that_covers_no_problem(tmp_path):
    (tmp_path / "targets.json").write_text(json.dumps({"x": 120}))
    with pytest.raises(LapoError, match="none of the 2 problems"):
        sm.assign_budgets(["a", "b"], f"targets:{tmp_path / 'targets.json'}")


# ------------------------------------------------------------------------------------------- samples on disk


def test_sample_seed_depends_only_on_seed_problem_and_index():
    seeds = {sm.sample_seed(s, p, i) for s in (0, 1) for p in ("a", "b") for i in (0, 1)}
    assert len(seeds) == 8 and sm.sample_seed(0, "a", 1) == sm.sample_seed(0, "a", 1)


def test_read_samples_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(rec("a", 1, 5, sample=0)) + "\n" + '{"problem_id": "a", "sam')
    assert list(sm.read_samples(path)) == [("a", 0)]


def test_repair_tail_cuts_the_unterminated_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text('{"x": 1}\n{"x": ')
    sm.repair_tail(path)
    assert path.read_text() == '{"x": 1}\n'


def test_resume_refuses_other_sampling_settings(tmp_path):
    (tmp_path / sm.CONFIG_FILE).write_text(json.dumps({"model": "m", "temperature": 0.6}))
    with pytest.raises(LapoError, match="temperature"):
        sm.check_resumable(tmp_path, {"model": "m", "temperature": 1.0})


# Every setting that changes what a sample is, with another value (written out here, not read from
# SAMPLE_DEFINING, so that dropping one from the resume check fails a test) ...
CHANGES = {"model": "other", "dataset": "aime24", "split": "train", "temperature": 1.0, "top_p": 0.9,
           "max_new_tokens": 100, "seed": 1, "data_seed": 1, "budget": "fixed:50",
           "prompt_format": {"kind": "plain"}, "answer_fallback": "last_number"}
# ... and those that only decide which samples exist, where, or how fast they come.
SAME_SAMPLES = {"k", "limit", "batch_size", "backend", "label", "device", "tensor_parallel_size",
                "gpu_memory_utilization", "data_dir", "out", "overwrite", "progress", "budget_tolerance"}


def _settings(**changes) -> dict:
    from dataclasses import asdict

    from lapo.eval.settings import EvalSettings

    return {**asdict(EvalSettings(model="m", dataset="math500")), **changes}


@pytest.mark.parametrize("key", sorted(CHANGES))
def test_a_resume_under_another_sample_defining_setting_is_refused(tmp_path, key):
    (tmp_path / sm.CONFIG_FILE).write_text(json.dumps(_settings()))
    with pytest.raises(LapoError, match=rf"other settings \({key}: "):
        sm.check_resumable(tmp_path, _settings(**{key: CHANGES[key]}))


@pytest.mark.parametrize("key", sorted(SAME_SAMPLES - {"out", "overwrite", "progress"}))
def test_a_resume_with_other_speed_or_size_settings_is_allowed(tmp_path, key):
    (tmp_path / sm.CONFIG_FILE).write_text(json.dumps(_settings()))
    sm.check_resumable(tmp_path, _settings(**{key: "changed"}))


def test_every_eval_setting_is_either_sample_defining_or_not():
    from dataclasses import fields

    from lapo.eval.settings import EvalSettings

    assert {f.name for f in fields(EvalSettings)} == set(CHANGES) | SAME_SAMPLES
