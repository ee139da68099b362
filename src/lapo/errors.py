"""The error of ``lapo eval`` and the modules it is built from (samples, generation)."""


class EvalError(Exception):
    """A problem the user can fix (bad flag, missing file); printed as one line, exit status 2."""
