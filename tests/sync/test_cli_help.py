"""Every command's help, as a user reads it on an 80-column terminal: no option's help text
loses words (rich markup once ate "[default: ...]", leaving "The config file .")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from sync.cli import app

_BOX = re.compile(r"[\u2500-\u257f]")


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command's path (typer vendors its own click, so groups are known by .commands)."""
    yield path
    if hasattr(group, "commands"):
        for name, command in sorted(group.commands.items()):
            yield from _commands(command, (*path, name))


def _flat(text: str) -> str:
    return " ".join(_BOX.sub(" ", text).split())


def test_every_options_help_reads_in_full_at_80_columns() -> None:
    root = typer.main.get_command(app)
    checked = 0
    for path in _commands(root):
        command = root
        for name in path:
            command = command.commands[name]
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        assert max(len(line) for line in result.output.splitlines()) <= 80, path
        shown = _flat(result.output)
        for param in command.params:
            text = getattr(param, "help", None)
            if not text:
                continue
            assert _flat(text) in shown, (path, param.name, text)
            checked += 1
    assert checked > 100


def test_the_config_options_help_names_its_default() -> None:
    result = CliRunner().invoke(app, ["runs", "--help"], env={"COLUMNS": "80"})
    assert "The config file (default: $CLOSEDLOOP_CONFIG or ./closedloop.yaml)." in _flat(
        result.output
    )
