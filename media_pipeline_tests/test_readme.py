"""The README cannot drift from the CLI: every command it shows exists, with the options shown.

Commands that need a real bucket are checked through their ``--help``; the demo and the analyst
query run for real in test_first_run.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from media_pipeline.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMAND = re.compile(r"^(?:\.venv/bin/)?media-pipeline\s")


def shell_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL):
        for line in block.splitlines():
            code = line.split(" #", 1)[0].strip()
            code = re.sub(r"\s+\([^\"']*\)$", "", code)  # a trailing "(each --help says more)"
            if code and lines and lines[-1].endswith(","):  # a list continued on this line
                lines[-1] += " " + code
            elif code:
                lines.append(code)
    return lines


def cli_invocations() -> list[tuple[list[str], list[str]]]:
    """(command path, options) for every `media-pipeline …` the README shows; a line may list
    alternatives (`refs add|remove`) and several groups separated by commas."""
    found: list[tuple[list[str], list[str]]] = []
    for line in shell_lines():
        if not COMMAND.match(line):
            continue
        rest = COMMAND.sub("", line)
        part: list[str] = []
        for token in shlex.split(rest):
            cleaned = token.strip("[]").replace("...", "")
            if cleaned.endswith(","):  # `members add|remove|list, tags …`: a new group
                part.append(cleaned[:-1])
                found.extend(_resolve(part))
                part = []
            elif cleaned:
                part.append(cleaned)
        if part:
            found.extend(_resolve(part))
    return found


def _resolve(tokens: list[str]) -> list[tuple[list[str], list[str]]]:
    paths: list[list[str]] = [[]]
    options: list[str] = []
    for token in tokens:
        if token.startswith("-"):
            options.append(token.split("=", 1)[0])
            continue
        words = token.split("|")
        nxt = []
        for path in paths:
            group = _command(path)
            if isinstance(group, click.Group) and all(w in group.commands for w in words):
                nxt.extend(path + [w] for w in words)
        if nxt:
            paths = nxt
    return [(path, options) for path in paths]


def _command(path: list[str]) -> click.Command:
    command: click.Command = cli
    for word in path:
        assert isinstance(command, click.Group), f"{path}: {word!r} under a plain command"
        command = command.commands[word]
    return command


def test_the_readme_shows_every_command_family() -> None:
    shown = {tuple(path[:1]) for path, _ in cli_invocations()}
    assert {(name,) for name in cli.commands} <= shown, "commands the README never shows"


def all_commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the group, subcommands included (``refs add``), as word paths."""
    found = []
    for name, command in group.commands.items():
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += all_commands(command, (*path, name))
    return found


def test_the_readme_shows_every_command_and_subcommand() -> None:
    """Like sqlite-utils' docs test: a command added without a README line fails here."""
    shown = {tuple(path[:n]) for path, _ in cli_invocations() for n in range(1, len(path) + 1)}
    commands = all_commands(cli)
    assert ("refs", "add") in commands and len(commands) > len(cli.commands)
    assert [" ".join(c) for c in commands if c not in shown] == []


@pytest.mark.parametrize("path,options", cli_invocations(),
                         ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_each_readme_command_exists_with_its_options(path: list[str],
                                                     options: list[str]) -> None:
    assert path, "a README line names no command"
    command = _command(path)
    if isinstance(command, click.Group):
        assert not options, f"{path} is a group; options {options} belong to a command"
        return
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for option in options:
        assert option in known | {"--help", "-h"}, f"media-pipeline {' '.join(path)} {option}"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_the_readme_dev_sh_commands_exist() -> None:
    dev = (ROOT / "dev.sh").read_text(encoding="utf-8")
    cases = set(re.findall(r"^\s+([a-z0-9-]+)\)", dev, flags=re.MULTILINE))
    used = {line.split()[1] for line in shell_lines() if line.startswith("./dev.sh ")}
    assert used and used <= cases
    assert {"demo", "test"} <= used
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./dev.sh test" in ci  # CI runs exactly the README's test command


def test_the_quick_start_is_the_first_code_block() -> None:
    first = re.search(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()
                if line.split("#")[0].strip()]
    assert commands == ["./dev.sh demo", "./dev.sh test"]
