"""`lapo quickstart --smoke`: the embedded default's whole code path on a tiny model built on the spot."""

import json
from pathlib import Path

import pytest

from lapo.quickstart import (
    QuickstartSettings,
    claims,
    grading,
    main,
    parse_args,
    run_config,
    starting_model,
)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    assert main(["--smoke", "--out", str(out)]) == 0
    return out


def test_smoke_evaluates_three_models(smoke_run):
    assert sorted(p.name for p in (smoke_run / "eval").iterdir()) == ["LAPO-D", "LAPO-I", "base"]


def test_smoke_trains_both_stages_into_final_models(smoke_run):
    assert all((smoke_run / "run" / stage / "final" / "config.json").is_file() for stage in ("discovery", "internalization"))


def test_smoke_report_has_level_table_claims_and_level_plot(smoke_run):
    report = (smoke_run / "report" / "report.md").read_text()
    assert "by difficulty level" in report and "The paper's claims on this run" in report
    assert any(p.suffix == ".png" and "level" in p.name for p in (smoke_run / "report").iterdir())


def test_smoke_records_wall_time(smoke_run):
    assert json.loads((smoke_run / "quickstart.json").read_text())["wall_s"] > 0


def _summary(tokens, acc, levels):
    return {"mean_tokens": tokens, "pass_at_1": acc, "by_level": {str(i + 1): {"mean_tokens": t} for i, t in enumerate(levels)}}


@pytest.mark.parametrize(
    "lapo_i, holds",
    [
        (_summary(60, 0.90, [40, 50, 60]), [True, True, True]),
        (_summary(70, 0.90, [40, 50, 60]), [False, True, True]),
        (_summary(60, 0.885, [40, 50, 60]), [True, False, True]),
        (_summary(60, 0.90, [40, 70, 60]), [True, True, False]),
    ],
)
def test_claims_are_checked_as_measured(lapo_i, holds):
    summaries = {"base": _summary(100, 0.90, [80, 100, 120]), "LAPO-I": lapo_i}
    assert [ok for _, _, ok in claims(summaries)] == holds


def test_base_flag_replaces_the_preset_model():
    assert starting_model(parse_args(["--base", "runs/my-base"])) == "runs/my-base"


def test_without_base_flag_the_preset_model_is_used():
    assert starting_model(QuickstartSettings(model="smollm2-135m-instruct")) == "smollm2-135m-instruct"


def test_every_model_is_graded_with_the_recipes_answer_fallback(tmp_path):
    # SmolLM2's recipe grades the last number; the base model must be graded that way too, not only LAPO's.
    settings = QuickstartSettings(model="smollm2-135m-instruct", out=tmp_path)
    assert grading(run_config(settings, settings.model), tmp_path).answer_fallback == "last_number"


def test_every_model_is_prompted_in_the_recipes_format(tmp_path):
    settings = QuickstartSettings(model="smollm2-135m-instruct", out=tmp_path)
    how = grading(run_config(settings, settings.model), tmp_path)
    assert json.loads(Path(how.prompt_format).read_text())["kind"] == "chat"
