"""Agreement of lapo's answer checker with plain math-verify (issue 15.2), class by class.

Builds the corpus of ``tests/answer_corpus.py``: its hand-written cases plus every gold answer of the
benchmark files (``--data-dir``, default ``../shared/data`` beside the checkout) rewritten into equal and
different answers inside completions. Each pair gets two verdicts:

- plain math-verify, default settings: ``verify(parse("$" + gold + "$"), parse(completion))``;
- ``lapo.core.checker.AnswerChecker`` (``--workers`` processes, ``--timeout`` seconds, math-verify's 5 s by
  default so that only the answer checking differs), and how many of its verdicts the fast path gave.

Prints, per class of rewrite, how often each says "correct" and where they differ, with the documented
reason (``answer_corpus.EXCEPTIONS``) or "UNEXPLAINED"; writes JSON to ``--out``.

    python benchmarks/answer_agreement.py --out benchmarks/results/answer_agreement.json
    python benchmarks/answer_agreement.py --tiny        # the hand-written cases only: the test of this script
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
BENCHMARKS = ("math500", "aime24", "amc23", "olympiadbench", "gsm8k_test")
sys.path.insert(0, str(ROOT / "tests"))


def load_golds(data_dir: Path, names: list[str]) -> list[str]:
    golds = []
    for name in names:
        path = data_dir / f"{name}.jsonl"
        if not path.is_file():
            raise SystemExit(f"answer_agreement: {path} is absent; pass --data-dir or --tiny.")
        lines = path.read_text(encoding="utf-8").splitlines()
        golds += [json.loads(line)["answer"] for line in lines if line.strip()]
    return golds


def verdicts(cases, workers: int, timeout: float) -> dict:
    """Both verdicts of every case, the fast path's share, and the seconds each took."""
    from answer_corpus import reference_verdict

    from lapo.core.checker import AnswerChecker
    from lapo.core.equivalence import quick_equal
    from lapo.core.extract import extract_answer

    start = time.perf_counter()
    reference = [reference_verdict(c.completion, c.gold) for c in cases]
    reference_s = time.perf_counter() - start
    with AnswerChecker(timeout_s=timeout, workers=workers) as checker:
        checker.check("\\boxed{\\sqrt{2}}", "\\sqrt{2}+0")  # workers started before the clock
        start = time.perf_counter()
        lapo = checker.check_many([c.completion for c in cases], [c.gold for c in cases])
        lapo_s = time.perf_counter() - start
    answers = [extract_answer(c.completion) for c in cases]
    fast = sum(a is not None and quick_equal(a, c.gold) is not None for a, c in zip(answers, cases))
    return {"reference": reference, "lapo": lapo, "fast_path_decided": fast,
            "reference_s": reference_s, "lapo_s": lapo_s}


def tally(cases, reference: list[bool], lapo: list[bool]) -> tuple[dict, list[dict]]:
    """Per class: pairs, "correct" per checker, differences; and every difference with its reason."""
    from answer_corpus import explain

    by_kind: dict[str, Counter] = defaultdict(Counter)
    differences = []
    for case, ref, ours in zip(cases, reference, lapo):
        counts = by_kind[case.kind]
        counts["pairs"] += 1
        counts["math_verify_correct"] += ref
        counts["lapo_correct"] += ours
        if ref != ours:
            counts["differ"] += 1
            differences.append({"kind": case.kind, "gold": case.gold, "completion": case.completion[-300:],
                                "math_verify": ref, "lapo": ours, "reason": explain(case, ref, ours) or "UNEXPLAINED"})
    return {k: dict(v) for k, v in sorted(by_kind.items())}, differences


def markdown(by_kind: dict, differences: list[dict]) -> str:
    lines = ["| class | pairs | math-verify correct | lapo correct | differ |", "|---|---:|---:|---:|---:|"]
    for kind, c in by_kind.items():
        row = [kind, c["pairs"], c["math_verify_correct"], c["lapo_correct"], c.get("differ", 0)]
        lines.append("| " + " | ".join(map(str, row)) + " |")
    reasons = Counter((d["reason"], d["math_verify"], d["lapo"]) for d in differences)
    lines += ["", "| reason | math-verify | lapo | pairs |", "|---|---|---|---:|"]
    lines += [f"| {r} | {m} | {o} | {n} |" for (r, m, o), n in reasons.most_common()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder of <benchmark>.jsonl files")
    p.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="comma-separated benchmark file names")
    p.add_argument("--every", type=int, default=1, help="rewrite every n-th gold answer only")
    p.add_argument("--workers", type=int, default=2, help="math-verify worker processes of the AnswerChecker")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per check (math-verify's default is 5)")
    p.add_argument("--tiny", action="store_true", help="the hand-written cases only")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    from answer_corpus import HAND_CASES, rewritten_pairs

    golds = [] if args.tiny else load_golds(args.data_dir, args.benchmarks.split(","))[:: args.every]
    cases = list(HAND_CASES) + rewritten_pairs(golds)
    got = verdicts(cases, args.workers, args.timeout)
    by_kind, differences = tally(cases, got["reference"], got["lapo"])
    print(markdown(by_kind, differences))
    print(f"\n{len(cases)} pairs; fast path decided {got['fast_path_decided']}; "
          f"math-verify {got['reference_s']:.1f} s, lapo {got['lapo_s']:.1f} s; unexplained differences: "
          f"{sum(d['reason'] == 'UNEXPLAINED' for d in differences)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        timing = {k: got[k] for k in ("fast_path_decided", "reference_s", "lapo_s")}
        result = {"command": " ".join(["python", "benchmarks/answer_agreement.py", *(argv or sys.argv[1:])]),
                  "pairs": len(cases), "golds": len(golds), **timing, "by_kind": by_kind, "differences": differences}
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
