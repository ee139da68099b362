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
