"""Properties of the test suite itself: error tests name their error, and a run writes nothing into the checkout."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _raises_without_match(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        call = node if isinstance(node, ast.Call) else None
        if call is None or not (isinstance(call.func, ast.Attribute) and call.func.attr == "raises"):
            continue
        if getattr(call.func.value, "id", None) == "pytest" and not any(k.arg == "match" for k in call.keywords):
            found.append(f"{path.name}:{call.lineno}: {ast.unparse(call)}")
    return found


def test_every_pytest_raises_says_which_error_it_expects():
    # A bare pytest.raises(ValueError) passes on any ValueError, including one raised by a bug elsewhere.
    missing = [hit for path in sorted(TESTS.glob("*.py")) for hit in _raises_without_match(path)]
    assert not missing, "add match= to: " + "; ".join(missing)


def test_hypothesis_keeps_no_database_and_no_files_in_the_checkout():
    import os

    from hypothesis import settings

    assert settings().database is None
    storage = Path(os.environ["HYPOTHESIS_STORAGE_DIRECTORY"]).resolve()
    assert ROOT not in storage.parents and storage != ROOT
