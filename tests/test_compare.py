"""`lapo compare`: every default method trained from one tiny base model, evaluated alike, one report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lapo.cli import main
from lapo.compare import DEFAULT_METHODS, LABELS, CompareSettings, training_runs


@pytest.mark.slow
def test_compare_smoke_trains_evaluates_and_reports_every_default_method(tmp_path):
    out = tmp_path / "cmp"
    command = [sys.executable, "-m", "lapo.cli", "compare", "--smoke", "--out", str(out), "--sweep", "8,16"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)  # ~2 min on 2 loaded cores
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "compare.json").read_text())
    assert list(data["summaries"]) == ["base", *DEFAULT_METHODS]
    report = (out / "compare.md").read_text()
    assert all(f"| {LABELS[m]} |" in report for m in DEFAULT_METHODS)
    assert (out / "frontier.png").is_file() and (out / "levels.png").is_file() and (out / "sweep.png").is_file()
    assert set(data["sweep"]) == {"l1-exact", "l1-max", "lapo-i"}  # the budget-trained models


def test_lapo_d_and_lapo_i_come_from_one_lapo_run():
    assert training_runs(CompareSettings(methods=["plain", "lapo-d", "lapo-i"])) == {"plain": "plain", "lapo": "lapo"}


@pytest.mark.parametrize("flags, message", [
    (["--methods", "plain,l2"], "method 'l2' is unknown"),
    (["--methods", "kimi,kimi"], "names a method twice"),
    (["--steps", "0"], "--steps 0 must be at least 1"),
    (["--sweep", "20,x"], "--sweep '20,x' must be positive whole numbers"),
    (["--methods", "kimi", "method_args.sigma=1"], "method kimi has no knob sigma"),
])
def test_bad_input_is_one_line_before_anything_trains(flags, message, tmp_path, capsys):
    assert main(["compare", "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lapo compare: ") and message in err and "\n" not in err
    assert not (tmp_path / "o").exists()
