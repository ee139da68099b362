"""Produced against requested length of the budget-trained models of a `lapo compare` run (L1-Exact, L1-Max,
LAPO-I): `lapo eval --budget sweep:...` on each, with its own budget sentence, into one JSON and one plot.

    python benchmarks/budget_sweep.py --compare runs/compare-bench --budgets 20,40,60,80 \
        --out benchmarks/results/budget_sweep.json

Each model is evaluated on the counting test split at every N (``fixed:N``), k samples per problem,
temperature 0.6, top_p 0.95; per N the JSON holds the produced mean tokens, L1's signed mean relative error
(L - N) / N, mean |L - N| / N, the share off by more than 10%, and Pass@1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from lapo.compare import LABELS
from lapo.eval.evaluate import run_sweep, sweep_points
from lapo.eval.plots import plot_sweep
from lapo.eval.settings import EvalSettings
from lapo.methods.registry import get


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compare", type=Path, required=True, help="the --out folder of a finished lapo compare")
    p.add_argument("--budgets", default="20,40,60,80")
    p.add_argument("--limit", type=int, default=40)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=160, help="the recipe's max completion length")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/budget_sweep.json"))
    a = p.parse_args()
    data = json.loads((a.compare / "compare.json").read_text())
    budgets = [int(v) for v in a.budgets.split(",")]
    base_format = json.loads((a.compare / "prompt_format.json").read_text())
    results, work = {}, Path(tempfile.mkdtemp(prefix="lapo-sweep-"))
    for method in ("l1-exact", "l1-max", "lapo-i"):
        if method not in data["methods"]:
            continue
        run = "lapo" if method == "lapo-i" else method
        model = a.compare / "runs" / run / ("internalization" if method == "lapo-i" else "discovery") / "final"
        fmt = work / f"{method}.json"
        sentence = data["methods"][method]["constants"].get("sentence") or get(method).budget_template
        fmt.write_text(json.dumps({**base_format, "budget_template": sentence}))
        settings = EvalSettings(model=str(model), dataset="counting", k=a.k, limit=a.limit, max_new_tokens=a.max_new_tokens,
                                out=str(work / method), label=LABELS[method], prompt_format=str(fmt),
                                answer_fallback="none", budget=f"sweep:{a.budgets}", progress=False)
        summaries, _ = run_sweep(settings, budgets)
        results[method] = sweep_points(summaries)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"compare": str(a.compare), "budgets": budgets, "limit": a.limit, "k": a.k,
                                 "points": results}, indent=1) + "\n")
    plot_sweep({LABELS[m]: pts for m, pts in results.items()}, a.out.with_suffix(".png"))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
