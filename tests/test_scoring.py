"""`lapo score` and `lapo stats` from the command line, as a user of another engine runs them."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lapo.cli import main
from lapo.core.checker import AnswerChecker
from lapo.core.stats import LengthStats
from lapo.errors import LapoError
from lapo.score import score_rows


def _rows():
    # problem a: correct lengths 10, 20, 30, 40, 50 -> band (22, 38); problem b: all wrong
    rows = [{"problem_id": "a", "completion": "\\boxed{4}", "answer": "4", "num_tokens": n} for n in (10, 20, 30, 40, 50)]
    rows.insert(2, {"problem_id": "b", "completion": "\\boxed{5}", "answer": "6", "num_tokens": 12})
    rows.append({"problem_id": "b", "completion": "no answer", "answer": "6", "num_tokens": 3})
    return rows


@pytest.fixture(scope="module")
def checker():
    with AnswerChecker() as c:
        yield c


def test_discovery_scores_group_split_across_the_file(checker):
    scored = score_rows(_rows(), "discovery", checker, decay=10)
    by_len = {r["num_tokens"]: r for r in scored if r["problem_id"] == "a"}
    assert by_len[30]["reward"] == pytest.approx(1.7) and by_len[20]["length_reward"] == pytest.approx(0.8)


def test_discovery_band_written_per_row(checker):
    assert score_rows(_rows(), "discovery", checker)[0]["band"] == [22.0, 38.0]


def test_internalization_uses_row_budget(checker):
    rows = [dict(r, budget=30) for r in _rows() if r["problem_id"] == "a"]
    scored = score_rows(rows, "internalization", checker, sigma=10)
    assert [r["reward"] for r in scored if r["num_tokens"] == 30] == [pytest.approx(1.8)]


def test_internalization_uses_target_map_without_budget(checker):
    scored = score_rows(_rows(), "internalization", checker, targets={"a": 50})
    assert [r["target"] for r in scored if r["problem_id"] == "a"] == [50.0] * 5


def test_missing_num_tokens_without_tokenizer_is_explained(checker):
    rows = [{"problem_id": "a", "completion": "x", "answer": "1"}]
    with pytest.raises(LapoError, match="--tokenizer"):
        score_rows(rows, "discovery", checker)


def test_cli_score_writes_every_line_back(tmp_path, capsys):
    src = tmp_path / "rollouts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    out = tmp_path / "scored.jsonl"
    assert main(["score", "--stage", "discovery", "--input", str(src), "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(l["problem_id"], l["correct"]) for l in lines] == [(r["problem_id"], r["answer"] == "4") for r in _rows()]


def test_cli_score_names_line_of_bad_input(tmp_path, capsys):
    src = tmp_path / "r.jsonl"
    src.write_text('{"problem_id": "a", "completion": "x"}\n')
    assert main(["score", "--stage", "discovery", "--input", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(r"^lapo score: .*r\.jsonl:1: missing field\(s\) answer", err)


def test_cli_stats_prints_summary(tmp_path, capsys):
    s = LengthStats()
    s.record("p", 1, [10, 20, 30], 8)
    path = s.save(tmp_path / "length_stats.jsonl")
    assert main(["stats", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target_quantiles"]["p50"] == 20.0


@pytest.mark.parametrize("bad", [-5, 10.7, "ten", True])
def test_num_tokens_must_be_a_whole_number_not_below_zero(checker, bad):
    rows = [dict(r, num_tokens=bad) if i == 2 else r for i, r in enumerate(_rows())]
    with pytest.raises(LapoError, match=rf"row 3: num_tokens {re.escape(repr(bad))} must be a whole number"):
        score_rows(rows, "discovery", checker)


def test_a_whole_float_is_a_token_count(checker):
    rows = [dict(r, num_tokens=float(r["num_tokens"])) for r in _rows()]
    assert score_rows(rows, "discovery", checker) == score_rows(_rows(), "discovery", checker)


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(len(_rows()))), stage=st.sampled_from(["discovery", "internalization"]))
def test_each_line_scores_the_same_whatever_the_order_of_the_file(checker, order, stage):
    rows = _rows()
    by_line = score_rows(rows, stage, checker, targets={"a": 30})
    shuffled = score_rows([rows[i] for i in order], stage, checker, targets={"a": 30})
    assert shuffled == [by_line[i] for i in order]


# ---------------------------------------------------------------------------------------- --method


from lapo.methods import registry  # noqa: E402

METHOD_FLAGS = {"thinkprune": ["--max-tokens", "40"], "dapo-overlong": ["--max-tokens", "50"]}


@pytest.mark.parametrize("name", sorted(registry.METHODS))
def test_cli_score_scores_every_method(name, tmp_path, capsys):
    src = tmp_path / "rollouts.jsonl"
    src.write_text("".join(json.dumps(dict(r, budget=30)) + "\n" for r in _rows()))
    assert main(["score", "--method", name, "--input", str(src), *METHOD_FLAGS.get(name, [])]) == 0
    scored = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(scored) == len(_rows()) and all(isinstance(r["reward"], float) for r in scored)


def test_score_kimi_ranks_a_group_by_length(checker):
    scored = score_rows(_rows(), "kimi", checker)
    assert [r["reward"] for r in scored if r["problem_id"] == "a"] == pytest.approx([1.5, 1.25, 1.0, 0.75, 0.5])


def test_score_thinkprune_zeroes_what_passes_the_cap(checker):
    scored = score_rows(_rows(), "thinkprune", checker, max_tokens=30)
    assert [r["reward"] for r in scored if r["problem_id"] == "a"] == [1, 1, 1, 0, 0]


def test_stage_is_an_alias_of_the_lapo_methods(checker):
    assert score_rows(_rows(), "discovery", checker) == score_rows(_rows(), "lapo-d", checker)


def test_a_cap_method_without_max_tokens_is_one_line(tmp_path, capsys):
    src = tmp_path / "r.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    assert main(["score", "--method", "dapo-overlong", "--input", str(src)]) == 2
    assert "needs the max completion length" in capsys.readouterr().err


def test_a_budget_method_without_budgets_is_one_line(tmp_path, capsys):
    src = tmp_path / "r.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    assert main(["score", "--method", "l1-exact", "--input", str(src)]) == 2
    assert "needs every line's budget" in capsys.readouterr().err


def test_a_knob_the_method_lacks_is_one_line(tmp_path, capsys):
    assert main(["score", "--method", "kimi", "--set", "sigma=2", "--input", str(tmp_path / "x.jsonl")]) == 2
    assert "method kimi has no knob sigma" in capsys.readouterr().err
