"""`lapo report`: table values from fixed summaries, reading inputs leniently, and the plots written."""

import json
from pathlib import Path

import pytest

from lapo.errors import LapoError
from lapo.eval import report as rp
from lapo.eval import results
from lapo.eval.results import Run

PNG = b"\x89PNG\r\n\x1a\n"
# The paper's DeepScaleR rows (docs/METHOD.md, section 6; LAPO-I AIME24 38.3 instead of 38.1 so no average
# lands on a rounding tie); the per-benchmark token counts are made up.
PAPER = {
    "base": ([85.8, 35.5, 74.2, 54.6], [3000, 9000, 6000, 7000]),
    "LAPO-I": ([86.3, 38.3, 78.3, 56.3], [1800, 6000, 3600, 4200]),
}
BENCHES = ["math500", "aime24", "amc23", "olympiadbench"]


def summary(label, bench, acc, tokens, *, levels=None, budget="none", adherence=None, complete=True):
    return {"schema": results.EVAL_SCHEMA, "label": label, "model": label, "benchmark": bench, "k": 4,
            "complete": complete, "pass_at_1": acc, "mean_tokens": tokens, "by_level": levels or {},
            "settings": {"budget": budget}, "budget_adherence": adherence}


def paper_evals(skip=()):
    return [summary(m, b, a / 100, t) for m, (accs, toks) in PAPER.items()
            for b, a, t in zip(BENCHES, accs, toks) if (m, b) not in skip]


def cells_of(markdown, row_name):
    row = next(line for line in markdown.splitlines() if line.startswith(f"| {row_name} |"))
    return [c.strip() for c in row.strip("|").split(" | ")]


# ------------------------------------------------------------------------------------------- tables


def test_averages_are_means_of_benchmark_means():
    _, _, cells = results.grid(paper_evals())
    acc, tok = rp.averages(cells, "base", BENCHES)
    assert (acc, tok) == (pytest.approx((85.8 + 35.5 + 74.2 + 54.6) / 4), 6250.0)


def test_deltas_against_base_in_points_and_percent():
    _, _, cells = results.grid(paper_evals())
    d_acc, d_tok = rp.deltas(cells, "LAPO-I", "base", BENCHES)
    assert d_acc == pytest.approx((259.2 - 250.1) / 4) and d_tok == pytest.approx(100 * (3900 - 6250) / 6250)


def test_deltas_use_only_benchmarks_both_models_have():
    _, _, cells = results.grid(paper_evals(skip={("LAPO-I", "aime24")}))
    d_acc, _ = rp.deltas(cells, "LAPO-I", "base", BENCHES)
    assert d_acc == pytest.approx(((86.3 + 78.3 + 56.3) - (85.8 + 74.2 + 54.6)) / 3)


def test_main_table_row_holds_the_paper_values():
    table = rp.main_table(paper_evals(), base="base")
    assert cells_of(table, "LAPO-I") == ["LAPO-I", "86.3", "1800", "38.3", "6000", "78.3", "3600", "56.3", "4200",
                                         "64.8", "3900", "+2.3", "-37.6%"]


def test_main_table_leaves_average_empty_when_a_benchmark_is_missing():
    table = rp.main_table(paper_evals(skip={("LAPO-I", "aime24")}))
    assert cells_of(table, "LAPO-I")[3:5] == ["–", "–"] and cells_of(table, "LAPO-I")[-2:] == ["–", "–"]


def test_main_table_orders_benchmarks_like_the_paper():
    evals = [summary("m", b, 0.5, 100) for b in ("olympiadbench", "zzz", "math500")]
    header = rp.main_table(evals).splitlines()[0]
    assert header.index("MATH-500") < header.index("OlympiadBench") < header.index("zzz")


def test_incomplete_evaluations_are_marked():
    table = rp.main_table([summary("m", "math500", 0.5, 100, complete=False)])
    assert cells_of(table, "m")[1:3] == ["50.0*", "100*"] and "incomplete" in table


def test_budget_runs_get_their_own_row():
    evals = [summary("m", "counting", 0.9, 50), summary("m", "counting", 0.8, 40, budget="fixed:40")]
    assert results.grid(evals)[0] == ["m", "m [fixed:40]"]


def test_level_table_shows_minimal_length_and_ratio():
    levels = {"1": {"pass_at_1": 1.0, "mean_tokens": 40.0, "minimal_tokens": 20.0},
              "2": {"pass_at_1": 0.5, "mean_tokens": 90.0, "minimal_tokens": 30.0}}
    table = rp.level_table([summary("base", "counting", 0.75, 65, levels=levels)], "counting")
    assert cells_of(table, "2") == ["2", "30", "50.0", "90 (3.00×)"]


def test_level_table_is_empty_without_levels():
    assert rp.level_table(paper_evals(), "aime24") == ""


def test_adherence_table_keeps_its_columns_despite_pipes_in_the_header():
    adh = {"num_samples": 8, "mean_rel_error": 0.125, "within_10pct": 0.5, "spearman": 0.8, "mean_budget": 40.0}
    table = rp.adherence_table([summary("m", "counting", 0.8, 40, budget="fixed:40", adherence=adh)])
    counts = {line.replace("\\|", "").count("|") for line in table.splitlines()}
    assert counts == {9}


def test_adherence_table_shows_l1s_signed_error_and_off_budget_share():
    adh = {"num_samples": 8, "mean_rel_error": 0.125, "signed_rel_error": -0.1, "off_budget": 0.25,
           "within_10pct": 0.5, "spearman": None, "mean_budget": 40.0}
    table = rp.adherence_table([summary("m", "counting", 0.8, 40, budget="fixed:40", adherence=adh)])
    assert "| -0.100 | 25.0 |" in table


def test_targets_table_leaves_out_the_sentinel():
    run = Run("r", Path("."), targets={"a": 10, "b": 20, "c": 30, "d": 4096}, sentinel=4096)
    assert cells_of(rp.targets_table([run]), "r") == ["r", "4", "3", "12", "20", "28"]


# ------------------------------------------------------------------------------------------- reading inputs


def write_eval(folder: Path, s: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(s))
    return folder


def write_run(folder: Path, steps=30) -> Path:
    for stage, offset in (("discovery", 0.0), ("internalization", 0.5)):
        (folder / stage).mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"step": s, "reward": offset + s / steps, "lapo/accuracy": 0.8,
                             "completions/mean_length": 100 - s}) for s in range(1, steps + 1)]
        lines.append('{"step": 30, "train_runt')  # a run killed mid-write
        (folder / stage / "log_history.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "targets.json").write_text(json.dumps({f"p{i}": 20 + i for i in range(50)} | {"x": 4096}))
    write_trainer_config(folder, "max_completion_length=4096")
    return folder


def write_trainer_config(folder: Path, *overrides: str) -> None:
    """The config.yaml that `lapo train` writes (lapo.train.rundir.config_as_run of a parsed recipe)."""
    import yaml

    from lapo.train.config import load_run_config
    from lapo.train.rundir import config_as_run

    run = load_run_config("counting", [f"output_dir={folder}", *overrides])
    (folder / "config.yaml").write_text(yaml.safe_dump(config_as_run(run)))


def test_collect_finds_nested_summaries_and_skips_foreign_ones(tmp_path):
    write_eval(tmp_path / "evals" / "a" / "math500", summary("a", "math500", 0.5, 100))
    write_eval(tmp_path / "evals" / "b", {"schema": "something else"})
    evals, runs = results.collect([tmp_path / "evals"])
    assert [e["label"] for e in evals] == ["a"] and runs == []


def test_collect_reads_a_run_directory_with_its_sentinel(tmp_path):
    _, runs = results.collect([write_run(tmp_path / "run")])
    assert (len(runs[0].targets), runs[0].sentinel, len(runs[0].logs["discovery"])) == (51, 4096, 30)


def test_the_sentinel_is_the_fallback_target_when_one_is_set(tmp_path):
    folder = write_run(tmp_path / "run")
    write_trainer_config(folder, "max_completion_length=4096", "fallback_target=999")
    assert results.collect([folder])[1][0].sentinel == 999


def test_collect_rejects_a_folder_with_nothing_to_report(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LapoError, match="no lapo eval summary"):
        results.collect([tmp_path / "empty"])


# ------------------------------------------------------------------------------------------- the report


def test_report_writes_markdown_and_every_plot(tmp_path):
    levels = {str(lv): {"pass_at_1": 0.9, "mean_tokens": 10.0 * lv, "minimal_tokens": 5.0 * lv} for lv in (1, 2, 3)}
    base = write_eval(tmp_path / "e" / "base", summary("base", "counting", 0.9, 20, levels=levels))
    lapo = write_eval(tmp_path / "e" / "lapo", summary("lapo", "counting", 0.9, 12, levels=levels))
    run = write_run(tmp_path / "run")
    rp.build_report([base, lapo, run], tmp_path / "report", base="base")
    names = ["frontier.png", "levels.png", "targets.png", "training-run.png", "report.md"]
    heads = [(tmp_path / "report" / n).read_bytes()[:8] for n in names]
    assert heads[:4] == [PNG] * 4 and heads[4] == b"# LAPO r"


def test_report_names_the_models_when_base_is_unknown(tmp_path):
    folder = write_eval(tmp_path / "e", summary("lapo", "counting", 0.9, 12))
    with pytest.raises(LapoError, match="lapo"):
        rp.build_report([folder], tmp_path / "r", base="nope")


def test_cli_prints_the_table(tmp_path, capsys):
    folder = write_eval(tmp_path / "e", summary("lapo", "counting", 0.9, 12))
    code = rp.main([str(folder), "--out", str(tmp_path / "r")])
    assert code == 0 and "| lapo | 90.0 | 12 |" in capsys.readouterr().out
