"""Offline scoring: any method's rewards on rollouts from any engine (`lapo score`), and `lapo stats`.

`lapo score --method NAME --input rollouts.jsonl [--max-tokens N]` (``--stage discovery|internalization``:
LAPO-D / LAPO-I) reads lines
``{"problem_id", "completion", "answer", "num_tokens"?, "budget"?}``, groups them by ``problem_id``
(a group may be spread over the file: order does not matter) and writes every line back with
``correct``, ``length_reward``, ``reward`` (and ``band`` for discovery, ``target`` for internalization).
``budget`` is the N of L1's and LAPO-I's prompts; ``--max-tokens`` the cap of thinkprune and dapo-overlong;
``--set KEY=VALUE`` sets a method's constant (docs/METHODS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

from lapo.core import length
from lapo.core.checker import DEFAULT_TIMEOUT_S, AnswerChecker
from lapo.core.io import load_targets, looks_binary
from lapo.core.stats import LengthStats
from lapo.errors import ArgumentParser, LapoError, command
from lapo.methods import registry
from lapo.methods.registry import score_group

REQUIRED = ("problem_id", "completion", "answer")
LINE_FORMAT = '{"problem_id", "completion", "answer", "num_tokens"?, "budget"?}'


def group_indices(problem_ids: Sequence[str]) -> dict[str, list[int]]:
    """Row indices per problem, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, pid in enumerate(problem_ids):
        groups.setdefault(str(pid), []).append(i)
    return groups


STAGE_METHODS = {"discovery": "lapo-d", "internalization": "lapo-i"}  # --stage: aliases of --method


def score_rows(
    rows: Sequence[dict],
    stage: str,
    checker: AnswerChecker,
    *,
    count_tokens: Callable[[str], int] | None = None,
    targets: dict[str, int] | None = None,
    weight: float | None = None,
    low: float = length.BAND_LOW,
    high: float = length.BAND_HIGH,
    decay: float = length.DECAY_TOKENS,
    sigma: float = length.SIGMA_TOKENS,
    knobs: dict | None = None,
    max_tokens: int | None = None,
) -> list[dict]:
    """Each row with ``correct``, ``num_tokens``, ``length_reward``, ``reward`` and the group's band/target.

    ``stage`` is a method of :mod:`lapo.methods` (``discovery`` / ``internalization`` stand for ``lapo-d`` /
    ``lapo-i``, whose constants are ``weight``, ``low``, ``high``, ``decay``, ``sigma``); other methods take
    ``knobs``; ``max_tokens`` is the cap of thinkprune and dapo-overlong.
    """
    spec = _spec(stage, knobs, weight=weight, low=low, high=high, decay=decay, sigma=sigma, max_tokens=max_tokens)
    rows = [dict(row) for row in rows]
    for number, row in enumerate(rows, start=1):
        problem = row_problem(row)
        if problem:
            raise LapoError(f"row {number}: {problem}")
    correct = checker.check_many([_text(r["completion"]) for r in rows], [_text(r["answer"]) for r in rows])
    for row, ok in zip(rows, correct):
        row["correct"] = ok
        row["num_tokens"] = _num_tokens(row, count_tokens)
    for pid, idx in group_indices([r["problem_id"] for r in rows]).items():
        group = [rows[i] for i in idx]
        score = score_group(spec, [r["correct"] for r in group], [r["num_tokens"] for r in group],
                            budgets=_budgets(spec, group, pid, targets), cap=max_tokens)
        extra = {"band": list(score.band) if score.band else None} if spec.name == "lapo-d" else {}
        if spec.name == "lapo-i":
            extra = {"target": score.target}
        for row, reward, length_reward in zip(group, score.rewards, score.length_rewards):
            row.update(reward=reward, length_reward=length_reward, **extra)
    return rows


def _spec(stage: str, knobs: dict | None, *, weight, low, high, decay, sigma, max_tokens):
    """The method a `lapo score` call scores with, its knobs checked (before any line is read)."""
    name = STAGE_METHODS.get(stage, stage)
    if name not in registry.METHODS:
        raise LapoError(f"method {stage!r} is unknown; choose one of {', '.join(registry.METHODS)} "
                        "(or --stage discovery / internalization).")
    lapo_knobs = {"lapo-d": {"low": low, "high": high, "decay": decay}, "lapo-i": {"sigma": sigma}}.get(name, {})
    if weight is not None and not lapo_knobs:
        raise LapoError(f"--weight is LAPO's; method {name} takes its constants as --set KEY=VALUE.")
    if weight is not None:
        lapo_knobs["weight"] = weight
    knobs = dict(knobs or {})
    if name == "thinkprune" and max_tokens is not None:
        knobs.setdefault("caps", [max_tokens])  # offline there are no rounds: the cap is the rollouts' limit
    spec = registry.resolve(name, {**lapo_knobs, **knobs}, max_length=max_tokens)
    if spec.method.needs_cap and max_tokens is None:
        raise LapoError(f"method {name} needs the max completion length the rollouts were generated with: "
                        "pass --max-tokens N.")
    return spec


def _budgets(spec, group: list[dict], problem_id: str, targets: dict[str, int] | None) -> list | None:
    """Each row's N: L1 reads every line's ``budget``; LAPO-I one N per problem (else the target map)."""
    if spec.name == "lapo-i":
        return [_group_budget(group, problem_id, targets)] * len(group)
    if not spec.method.needs_budget:
        return None
    missing = [r for r in group if r.get("budget") is None]
    if missing:
        raise LapoError(f"method {spec.name} needs every line's budget (the N of its prompt), and a line of problem "
                        f"{problem_id!r} has none; add \"budget\" to every line.")
    return [float(r["budget"]) for r in group]


def _text(value: object) -> str:
    """A field as text; JSON null is empty (an answer of null is no answer, never the string "None")."""
    return "" if value is None else str(value)


def _whole(value: object, minimum: int) -> bool:
    """A JSON number that is a whole number >= ``minimum`` (``412.0`` counts; ``10.7``, ``"10"``, ``true`` do not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return float(value).is_integer() and value >= minimum


def row_problem(row: object) -> str | None:
    """What is wrong with one rollout line, as the first half of an error sentence; None when it is usable."""
    if not isinstance(row, dict):
        return f"a line must be a JSON object {LINE_FORMAT}, not {type(row).__name__}."
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        return f"missing field(s) {', '.join(missing)}; each line needs {LINE_FORMAT}."
    if not isinstance(row["problem_id"], (str, int)) or isinstance(row["problem_id"], bool):
        return f"problem_id {row['problem_id']!r} must be a string or an integer."
    tokens = row.get("num_tokens")
    if tokens is not None and not _whole(tokens, 0):
        return (f"num_tokens {tokens!r} must be a whole number of completion tokens, 0 or more; fix it, or leave "
                "it out and pass --tokenizer to count the tokens.")
    budget = row.get("budget")
    if budget is not None and not _whole(budget, 1):
        return f"budget {budget!r} must be a positive whole number of tokens (the N of the prompt) or null."
    return None


def _num_tokens(row: dict, count_tokens: Callable[[str], int] | None) -> int:
    if row.get("num_tokens") is not None:
        return int(row["num_tokens"])  # a whole number: row_problem() refused anything else
    if count_tokens is None:
        raise LapoError(
            f"row of problem {row['problem_id']!r} has no num_tokens: add it to every line or pass --tokenizer."
        )
    return count_tokens(str(row["completion"]))


def _group_budget(group: list[dict], problem_id: str, targets: dict[str, int] | None) -> float | None:
    """The group's N: the rows' ``budget``, else the target map's entry; None means the group median."""
    budgets = {r.get("budget") for r in group} - {None}
    if len(budgets) > 1:
        raise LapoError(f"problem {problem_id!r} has rows with different budgets {sorted(budgets)}: one per problem.")
    if budgets:
        return float(budgets.pop())
    return float(targets[problem_id]) if targets and problem_id in targets else None


# -------------------------------------------------------------------------------------------------- I/O


def read_rollouts(path: Path) -> list[dict]:
    """JSON lines with at least problem_id, completion and answer; errors name the file, the line and the fix."""
    if not path.is_file():
        raise LapoError(f"no rollout file at {path}; pass --input FILE.jsonl, one JSON object {LINE_FORMAT} a line.")
    rows = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if looks_binary(line):
                raise LapoError(f"{path}:{number}: holds NUL bytes (a binary file?); --input must be JSON lines, "
                                f"one object {LINE_FORMAT} a line.")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise LapoError(f"{path}:{number}: not JSON ({error}); each line must be one JSON object "
                                f"{LINE_FORMAT}.") from None
            problem = row_problem(row)
            if problem:
                raise LapoError(f"{path}:{number}: {problem}")
            rows.append(row)
    return rows


def token_counter(name_or_path: str) -> Callable[[str], int]:
    """Counts completion tokens with a Hugging Face tokenizer (no special tokens added); a name that cannot be
    loaded is a :class:`LapoError` (:func:`lapo.models.loading.load_tokenizer`)."""
    from lapo.models.loading import load_tokenizer

    tokenizer = load_tokenizer(name_or_path, "--tokenizer")
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _json_line(row: dict) -> str:
    """One output line; text UTF-8 cannot hold (lone surrogates from ``\\ud800`` escapes) stays escaped."""
    line = json.dumps(row, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(row)
    return line + "\n"


def _write_lines(rows: Iterable[dict], out: str | None) -> None:
    text = "".join(_json_line(r) for r in rows)
    if out in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")


def _score_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="lapo score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--method", choices=registry.names(), help="the method whose reward scores the lines")
    which.add_argument("--stage", choices=["discovery", "internalization"], help="alias of --method lapo-d / lapo-i")
    p.add_argument("--max-tokens", type=int, help="the max completion length: the cap of thinkprune and dapo-overlong")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a constant of the method (e.g. --set alpha=0.003); repeat for more")
    p.add_argument("--input", required=True, type=Path, help="rollouts as JSON lines")
    p.add_argument("--output", default="-", help="where to write the scored lines (default: stdout)")
    p.add_argument("--tokenizer", help="tokenizer name or path, to count tokens of lines without num_tokens")
    p.add_argument("--targets", type=Path, help="stage-1 target map (targets.json) for lines without budget")
    p.add_argument("--weight", type=float, help="length-reward weight (default 0.7 discovery, 0.8 internalization)")
    p.add_argument("--low", type=float, default=length.BAND_LOW, help="band's low percentile (paper: 30)")
    p.add_argument("--high", type=float, default=length.BAND_HIGH, help="band's high percentile (paper: 70)")
    p.add_argument("--decay", type=float, default=length.DECAY_TOKENS, help="tokens over which the band reward decays (paper: 100)")
    p.add_argument("--sigma", type=float, default=length.SIGMA_TOKENS, help="width of the stage-2 Gaussian (paper: 120)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per answer check")
    p.add_argument("--answer-fallback", default="none", choices=["none", "last_number"])
    p.add_argument("--workers", type=int, default=2, help="math-verify worker processes")
    return p


@command("score")
def score_main(argv: list[str]) -> int:
    args = _score_parser().parse_args(argv)
    if not 0 <= args.low < args.high <= 100:
        raise LapoError(f"--low {args.low} must be below --high {args.high}, both within [0, 100]; the paper "
                        "uses --low 30 --high 70.")
    for flag, value, ok in (("--decay", args.decay, args.decay > 0), ("--sigma", args.sigma, args.sigma > 0),
                            ("--weight", args.weight, args.weight is None or args.weight >= 0),
                            ("--timeout", args.timeout, args.timeout > 0), ("--workers", args.workers, args.workers >= 0)):
        if not ok:
            raise LapoError(f"{flag} {value} is out of range: --decay, --sigma and --timeout must be positive, "
                            "--weight and --workers 0 or more.")
    knobs = _knobs(args.set)
    method = args.method or STAGE_METHODS[args.stage]
    _spec(method, knobs, weight=args.weight, low=args.low, high=args.high, decay=args.decay, sigma=args.sigma,
          max_tokens=args.max_tokens)  # bad method input fails before the file is read
    rows = read_rollouts(args.input)
    targets = load_targets(args.targets) if args.targets else None
    counter = token_counter(args.tokenizer) if args.tokenizer else None
    with AnswerChecker(timeout_s=args.timeout, fallback=args.answer_fallback, workers=args.workers) as checker:
        scored = score_rows(
            rows, method, checker, count_tokens=counter, targets=targets, weight=args.weight,
            low=args.low, high=args.high, decay=args.decay, sigma=args.sigma, knobs=knobs, max_tokens=args.max_tokens,
        )
    _write_lines(scored, args.output)
    return 0


def _knobs(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise LapoError(f"--set {item!r} must be KEY=VALUE, e.g. --set alpha=0.003.")
        out[key.strip()] = value.strip()
    return out


@command("stats")
def stats_main(argv: list[str]) -> int:
    p = ArgumentParser(prog="lapo stats", description="Summarise a length-statistics file (length_stats.jsonl).")
    p.add_argument("file", type=Path)
    p.add_argument("--policy", default="last", choices=["last", "stage", "last_epoch"])
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    summary = LengthStats.load(args.file).summary(policy=args.policy)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    """The summary as lines a person reads: counts, target quantiles, a text histogram."""
    lines = [f"{key:>22}: {summary[key]}" for key in
             ("records", "problems", "solved_problems", "correct_completions", "sampled_completions", "steps", "policy")]
    if "target_quantiles" in summary:
        quantiles = "  ".join(f"{k}={v:.0f}" for k, v in summary["target_quantiles"].items())
        lines += ["", f"target length quantiles: {quantiles}", "", "target histogram:"]
        peak = max(b["count"] for b in summary["target_histogram"]) or 1
        for b in summary["target_histogram"]:
            bar = "#" * round(40 * b["count"] / peak)
            lines.append(f"  {b['low']:>8.0f} - {b['high']:<8.0f} {b['count']:>6}  {bar}")
    return "\n".join(lines)


main = score_main
