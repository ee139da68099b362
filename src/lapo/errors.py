"""The one error type a user can act on, the argument parser that raises it, and the one place it is printed.

Every command raises :class:`LapoError` for bad input (a flag, a file, a recipe key, a value): one sentence
that names what was wrong, with the value, and what to do. :func:`run_command` (through :func:`command`,
which every command's ``main`` wears, and ``lapo.cli.main``) prints it as one line ``lapo <command>: ...``
and exits with status 2, never with a traceback. It subclasses ``ValueError`` so that code validating values
(dataclass ``__post_init__`` under TRL's argument parser) can raise it unchanged.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from typing import Callable, NoReturn, Sequence

# argparse's message for a value its ``type`` refused, and what to write instead, by type.
_BAD_VALUE = re.compile(r"argument (?P<flag>[^:]+): invalid (?P<kind>\w+) value: (?P<value>.+)")
_KINDS = {"int": "a whole number", "float": "a number", "Path": "a path"}


class LapoError(ValueError):
    """A problem the user can fix; the CLI prints it as one line and exits with status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are :class:`LapoError`: one line naming the bad argument and
    the fix, instead of the usage text and ``SystemExit(2)``. ``--help`` still prints and exits 0."""

    def error(self, message: str) -> NoReturn:
        raise LapoError(argument_error(message, self.prog))


def argument_error(message: str, prog: str) -> str:
    """argparse's ``message`` as one sentence with the fix: what to write instead, and where the options are."""
    bad = _BAD_VALUE.fullmatch(message.strip())
    if bad and bad["kind"] in _KINDS:
        return (f"{bad['flag']} {bad['value']} is not {_KINDS[bad['kind']]}; pass {_KINDS[bad['kind']]} "
                f"(see `{prog} --help`).")
    return f"{message.rstrip('.')}; see `{prog} --help` for the options."


def one_line(error: BaseException) -> str:
    """The error's message on one line (a message quoting another library's may span several)."""
    return " ".join(part.strip() for part in str(error).splitlines() if part.strip())


def command(name: str):
    """Decorator of a command's ``main(argv)``: called with ``argv=None`` it reads ``sys.argv[1:]``, and bad input
    (a :class:`LapoError`) is one line ``lapo <name>: ...`` on stderr and exit status 2 (:func:`run_command`), so
    ``lapo <name>``, ``python -m`` and a test calling ``main(argv)`` all meet the same contract."""

    def wrap(main: Callable[[list[str]], int | None]) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(main)
        def entry(argv: Sequence[str] | None = None) -> int:
            return run_command(name, main, sys.argv[1:] if argv is None else argv)

        return entry

    return wrap


def run_command(command: str, main: Callable[[list[str]], int | None], argv: Sequence[str]) -> int:
    """``main(argv)``'s exit status; a :class:`LapoError` becomes ``lapo <command>: ...`` on stderr and status 2."""
    try:
        return int(main(list(argv)) or 0)
    except LapoError as error:
        message = one_line(error)
    except OSError as error:  # a path the user gave that cannot be read or written (missing folder, permissions)
        message = f"{one_line(error)}; check the path, its permissions and the free space."
    print(f"lapo {command}: {message}", file=sys.stderr)
    return 2
