"""`lapo <command> [args]`: one entry point, each command owned by its module's `main(argv)`.

Every command raises :class:`lapo.errors.LapoError` for bad input; here it becomes one line
``lapo <command>: ...`` on stderr and exit status 2 (:func:`lapo.errors.run_command`), never a traceback.
"""

from __future__ import annotations

import importlib
import sys

from lapo.errors import run_command

# command -> (module, one-line help). Modules are imported lazily so `lapo score --help`
# never pays for importing torch.
COMMANDS = {
    "train": ("lapo.train.run", "run stage 1 (Discovery), the hand-off and stage 2 (Internalization)"),
    "eval": ("lapo.eval.evaluate", "Pass@1 over k samples, tokens, per-level breakdown, budget adherence"),
    "report": ("lapo.eval.report", "markdown tables and PNG plots from eval results and run directories"),
    "score": ("lapo.score", "score rollouts offline with any method's reward (LAPO-D, LAPO-I, L1, ...)"),
    "stats": ("lapo.score", "summarise a length-statistics file"),
    "compare": ("lapo.compare", "train length-control methods from one base model and compare them in one report"),
    "warmstart": ("lapo.warmstart", "SFT the overthinking base model of the embedded task"),
    "quickstart": ("lapo.quickstart", "the embedded default: base -> LAPO-D -> LAPO-I, evaluated and reported"),
}


def _usage() -> str:
    lines = ["usage: lapo <command> [options]", "", "commands:"]
    lines += [f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run `lapo <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"lapo: unknown command {name!r}; choose one of {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    entry = getattr(module, f"{name}_main", None) or module.main
    # Bad input (a LapoError, argparse's errors included) is one line `lapo <command>: ...`, exit status 2:
    # each command's main wears lapo.errors.command; run_command also holds the line for one that does not.
    return run_command(name, entry, rest)


if __name__ == "__main__":
    sys.exit(main())
