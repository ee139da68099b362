"""The one error type a user can act on.

Every command raises :class:`LapoError` for bad input (a flag, a file, a recipe key, a value): one sentence
that names what was wrong, with the value, and what to do. ``lapo.cli.main`` prints it as one line
``lapo <command>: ...`` and exits with status 2, never with a traceback. It subclasses ``ValueError`` so that
code validating values (dataclass ``__post_init__`` under TRL's argument parser) can raise it unchanged.
"""


class LapoError(ValueError):
    """A problem the user can fix; the CLI prints it as one line and exits with status 2."""
