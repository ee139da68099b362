"""`lapo compare` with its defaults, timed, with the machine's load beside it: benchmarks/results/compare_methods.json.

    python benchmarks/compare_methods.py --out benchmarks/results/compare_methods.json
    python benchmarks/compare_methods.py --work runs/compare-bench -- --methods plain,lapo-i --steps 4
    python benchmarks/compare_methods.py --amend --work runs/compare-bench --out RESULT.json  # add training curves

Runs ``lapo compare`` (default set and settings unless arguments follow ``--``) in a child process, samples the
1-minute load average every 15 s while it runs (the machine is shared: a figure without its load says little),
and writes the wall time, the child's CPU time (user + sys), peak RSS, the load samples and the comparison's
own ``compare.json`` (every Pass@1, token count and timing) into one JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


def sample_load(samples: list, stop: threading.Event, every_s: float = 15.0) -> None:
    while True:
        samples.append(round(os.getloadavg()[0], 2))
        if stop.wait(every_s):
            return


def training_curves(work: Path, methods) -> dict:
    """Each compared model's first and last training step: accuracy and mean length, from its run's log."""
    from lapo.compare import CompareSettings, model_dirs, training_runs, training_curve

    s = CompareSettings(methods=list(methods), out=work)
    return {m: training_curve(path.parent) for m, path in model_dirs(s, training_runs(s)).items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/compare_methods.json"))
    p.add_argument("--work", type=Path, default=Path("runs/compare-bench"), help="lapo compare's --out")
    p.add_argument("--amend", action="store_true", help="run nothing: add each run's training curve (first and last "
                   "step's accuracy and length, from its log) to an existing --out written from --work")
    p.add_argument("rest", nargs="*", help="arguments for lapo compare, after --")
    a = p.parse_args()
    if a.amend:
        result = json.loads(a.out.read_text())
        result["training"] = training_curves(a.work, result["compare"]["methods"])
        a.out.write_text(json.dumps(result, indent=1) + "\n")
        return 0
    command = [sys.executable, "-m", "lapo.cli", "compare", "--out", str(a.work), *a.rest]
    samples: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_load, args=(samples, stop), daemon=True)
    sampler.start()
    start = time.monotonic()
    done = subprocess.run(command)
    wall = time.monotonic() - start
    stop.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        print(f"lapo compare failed with exit status {done.returncode}", file=sys.stderr)
        return done.returncode
    result = {
        "command": "lapo " + " ".join(command[3:]),
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "cores": os.cpu_count(),
        "load_1min_samples": samples,
        "load_1min_mean": round(sum(samples) / len(samples), 2),
        "compare": json.loads((a.work / "compare.json").read_text()),
        "report": (a.work / "compare.md").read_text(),
    }
    result["training"] = training_curves(a.work, result["compare"]["methods"])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wall {wall / 60:.1f} min, CPU {result['cpu_s'] / 60:.1f} min, mean load {result['load_1min_mean']} "
          f"on {os.cpu_count()} cores; wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
