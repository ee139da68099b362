"""The docs say what the code does: every `lapo ...` command they quote parses, and every API name they
document exists.

Commands come from every markdown file at the top of the repository and in docs/, found by pattern, not
listed here, so a new command or a new page is checked as soon as it exists:

- a command in a fenced code block is run through ``lapo.cli.main`` up to its own argument parser and
  stopped there (nothing runs, no model loads); `lapo train` then parses its recipe and overrides with
  ``load_run_config``, which loads nothing either;
- a usage line (``[--flag]``, ``a|b``, ``...`` or a PLACEHOLDER) and a command quoted inline in prose
  (often a fragment, such as `lapo eval --budget`) must name an existing command and only flags it has.

API names are the ``lapo.x.y`` and ``lapo.x.y.Name`` written in backticks: each must import or resolve.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from unittest.mock import patch

import pytest

from lapo.cli import COMMANDS
from lapo.cli import main as lapo_main

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
SPAN = re.compile(r"`([^`\n]+)`")
PLACEHOLDER = re.compile(r"(?<![A-Za-z])[A-Z][A-Z0-9_]+(?![a-z])")  # RECIPE, PATH_OR_ID, N ... (not LAPO-I)
API_NAME = re.compile(r"(?<![\w./-])lapo(?:\.[A-Za-z_]\w*)+")
FILE_SUFFIXES = {"log", "json", "jsonl", "yaml", "yml", "md", "png", "txt", "lock"}


@dataclass(frozen=True)
class Quoted:
    """One `lapo ...` command as a doc quotes it."""

    doc: str
    argv: tuple[str, ...]
    usage: bool  # a usage line or an inline fragment: check its command and flags only

    def __str__(self) -> str:
        return f"{self.doc}: lapo {' '.join(self.argv)}"


def _commands_in(line: str) -> list[str]:
    """The `lapo ...` commands of one shell line: each part of a && / ; / | chain, `-m lapo.cli` included."""
    line = re.sub(r"\s+#.*$", "", line)  # a trailing comment
    found = []
    for part in re.split(r"&&|;|\|(?![^\[]*\])", line):
        part = re.sub(r"^.*?-m lapo\.cli\s+", "lapo ", part.strip())
        if part.startswith("lapo ") and re.match(r"lapo [a-z]+(\s|$)", part):
            found.append(part[len("lapo "):])
    return found


def _is_usage(text: str) -> bool:
    return any(mark in text for mark in ("[", "...", "<", "|")) or bool(PLACEHOLDER.search(text))


def quoted_commands() -> list[Quoted]:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in FENCE.findall(text):
            for line in block.replace("\\\n", " ").splitlines():
                out += [Quoted(doc.name, tuple(_split(cmd)), _is_usage(cmd)) for cmd in _commands_in(line)]
        prose = FENCE.sub("", text)
        for span in SPAN.findall(prose):
            if re.match(r"lapo [a-z]+(\s|$)", span):
                out.append(Quoted(doc.name, tuple(_split(span[len("lapo "):])), True))
    return out


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command.replace("\\|", "|"))
    except ValueError:  # an unbalanced quote in a usage line
        return command.split()


COMMANDS_QUOTED = quoted_commands()


def test_the_docs_quote_commands_of_every_kind():
    # The extraction itself works: runnable commands and usage lines of several commands are found.
    assert {q.argv[0] for q in COMMANDS_QUOTED if not q.usage} >= {"train", "eval", "report", "score", "warmstart"}
    assert any(q.usage for q in COMMANDS_QUOTED)


# ------------------------------------------------------------------------------------------ parsing


class Parsed(Exception):
    """Raised by the patched argparse right after a command's own parser ran: nothing else runs."""

    def __init__(self, parser: argparse.ArgumentParser, namespace=None, extras=None):
        super().__init__(parser.prog)
        self.parser, self.namespace, self.extras = parser, namespace, extras


@contextmanager
def stopped_at_the_parser(parse: bool = True):
    """argparse parses (``parse``), then stops the command; or it stops before parsing, to read the flags."""
    original = argparse.ArgumentParser.parse_known_args

    def parse_known_args(self, args=None, namespace=None):
        if not parse:
            raise Parsed(self)
        ns, extras = original(self, args, namespace)
        raise Parsed(self, ns, extras)

    def parse_args(self, args=None, namespace=None):
        if not parse:
            raise Parsed(self)
        ns, extras = original(self, args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        raise Parsed(self, ns, [])

    with patch.object(argparse.ArgumentParser, "parse_known_args", parse_known_args), \
            patch.object(argparse.ArgumentParser, "parse_args", parse_args):
        yield


def _parse(argv: tuple[str, ...], capsys, parse: bool = True) -> Parsed:
    with stopped_at_the_parser(parse):
        try:
            code = lapo_main(list(argv))
        except Parsed as parsed:
            return parsed
    pytest.fail(f"`lapo {' '.join(argv)}` did not reach its parser (exit {code}): {capsys.readouterr().err.strip()}")


def _train_keys() -> set[str]:
    from trl import ModelConfig

    from lapo.train.config import LapoConfig, LapoGRPOConfig

    return {f.name for cls in (LapoConfig, LapoGRPOConfig, ModelConfig) for f in fields(cls)}


def _known_flag(flag: str, parser: argparse.ArgumentParser, command: str) -> bool:
    name = flag.split("=", 1)[0]
    if name in parser._option_string_actions:
        return True
    # `lapo train` (and the quickstart's overrides) take every recipe key as --key value
    key = name[2:].replace("-", "_").split(".")[-1]
    return command in ("train", "quickstart") and key in _train_keys()


@pytest.mark.parametrize("quoted", COMMANDS_QUOTED, ids=[str(q) for q in COMMANDS_QUOTED])
def test_every_quoted_command_parses(quoted, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # recipe paths in the docs are relative to the repository
    command, args = quoted.argv[0], quoted.argv[1:]
    assert command in COMMANDS, f"{quoted}: no such command; the commands are {', '.join(COMMANDS)}"
    if quoted.usage:
        parser = _parse((command,), capsys, parse=False).parser
        flags = [a.strip("[]|") for a in args if a.strip("[").startswith("--")]
        unknown = [f for f in flags if not _known_flag(f, parser, command)]
        assert not unknown, f"{quoted}: `lapo {command}` has no flag {', '.join(unknown)}"
        return
    parsed = _parse(quoted.argv, capsys)
    if command == "train":  # the recipe and every override, parsed into both stages' configurations
        _parse_train(parsed)


def _parse_train(parsed: Parsed) -> None:
    from lapo.train.config import load_run_config

    args, overrides = parsed.namespace, list(parsed.extras)
    # GPU recipes parse on a CPU machine without the optional extras once the settings that need a GPU or an
    # extra (bf16 on CUDA, vLLM, DeepSpeed, tensorboard) are turned off; every other key and value is checked.
    machine = ["use_cpu=true", "use_vllm=false", "deepspeed=null", "report_to=none"]
    load_run_config(args.config, [*overrides, *machine], stage=args.stage, resume=args.resume)


def test_accelerate_configs_quoted_in_the_docs_exist():
    quoted = {m for doc in DOCS for m in re.findall(r"--config_file\s+(\S+)", doc.read_text(encoding="utf-8"))}
    assert quoted, "no accelerate launch command found in the docs"
    missing = sorted(q for q in quoted if not (ROOT / q).is_file())
    assert not missing, f"accelerate configs quoted in the docs but not in the repository: {missing}"


# ------------------------------------------------------------------------------------------ API names


def documented_names() -> list[tuple[str, str]]:
    names = set()
    for doc in DOCS:
        # Inline code in the prose, a span may wrap onto the next line.
        for span in re.findall(r"`([^`]+)`", FENCE.sub("", doc.read_text(encoding="utf-8"))):
            for name in API_NAME.findall(span):
                if name.rsplit(".", 1)[-1] not in FILE_SUFFIXES:
                    names.add((doc.name, name))
    return sorted(names)


def resolve(name: str) -> object:
    """The module or object ``name`` (``lapo.core.stats.LengthStats.load``) names; raises if there is none."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


NAMES = documented_names()


def test_the_docs_document_api_names():
    assert len(NAMES) > 20  # the extraction works


@pytest.mark.parametrize("doc, name", NAMES, ids=[f"{d}:{n}" for d, n in NAMES])
def test_every_documented_api_name_exists(doc, name):
    try:
        resolve(name)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"{doc} documents `{name}`, which does not exist ({error})")


# ------------------------------------------------------------------------------------------ recipes by name


@pytest.mark.parametrize("name, expected", [
    ("counting", "counting/config.yaml"),
    ("deepscaler-1.5b", "deepscaler-1.5b/config.yaml"),
    ("deepscaler-1.5b/lora-1gpu.yaml", "deepscaler-1.5b/lora-1gpu.yaml"),  # the README's LoRA recipe
    (str(Path(__file__).resolve().parents[1] / "src/lapo/recipes/counting"), "counting/config.yaml"),  # a folder
])
def test_shipped_recipes_resolve_by_name(name, expected, tmp_path, monkeypatch):
    from lapo.train.config import PACKAGED_RECIPES, resolve_recipe

    monkeypatch.chdir(tmp_path)  # not from the checkout's recipes/ link: from the installed package
    assert resolve_recipe(name) == PACKAGED_RECIPES / expected


@pytest.mark.parametrize("name", ["deepscaler-1.5b/none.yaml", "../counting/config.yaml", "nonexistent"])
def test_a_recipe_name_that_is_not_shipped_is_refused(name, tmp_path, monkeypatch):
    from lapo.errors import LapoError
    from lapo.train.config import resolve_recipe

    monkeypatch.chdir(tmp_path)
    with pytest.raises(LapoError, match=rf"recipe {re.escape(str(Path(name)))} does not exist; pass --config"):
        resolve_recipe(name)


# ------------------------------------------------------------------------------------------ files and tests


def quoted_files() -> list[tuple[str, str, str]]:
    """(doc, path, test name or "") for every ``tests/...py[::name]`` and ``benchmarks/...py`` a doc quotes."""
    found = set()
    for doc in DOCS:
        for path, name in re.findall(r"\b((?:tests|benchmarks)/[\w/]+\.py)(?:::(\w+))?", doc.read_text(encoding="utf-8")):
            found.add((doc.name, path, name))
    return sorted(found)


FILES = quoted_files()


@pytest.mark.parametrize("doc, path, name", FILES, ids=[f"{d}:{p}::{n}" for d, p, n in FILES])
def test_every_quoted_test_or_script_exists(doc, path, name):
    file = ROOT / path
    assert file.is_file(), f"{doc} quotes {path}, which does not exist"
    assert not name or re.search(rf"^\s*def {name}\b", file.read_text(encoding="utf-8"), re.MULTILINE), \
        f"{doc} quotes {path}::{name}, which does not exist"
