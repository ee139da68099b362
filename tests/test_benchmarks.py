"""The benchmark scripts run: each one's tiny mode, in a subprocess, on CPU, in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_soak_tiny(tmp_path):
    out = tmp_path / "soak.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "soak.py"), "--steps", "5", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r["step"] for r in result["records"]] == [1, 2, 3, 4, 5]  # one memory reading per step
    assert all(r["rss_bytes"] > 0 for r in result["records"])
    assert result["summary"]["steps"] == 5 and result["length_records"] == 5 * 4  # 4 prompts a step, recorded
    assert "| growth after step 5 |" in done.stdout
