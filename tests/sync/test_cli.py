"""The command line as a new user meets it: help for every command, clean errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.testing

from sync.cli import app

BIN = Path(sys.executable).parent / "closedloop"


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: Any, prefix: list[str]) -> None:
        # typer vendors its own click, so groups are recognised by shape, not by class.
        paths.append(prefix)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


COMMANDS = _command_paths()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_top_level_help_lists_every_command() -> None:
    result = _run("--help")
    assert result.returncode == 0
    top = {path[0] for path in COMMANDS if len(path) == 1}
    assert {"init", "config", "db", "mappings", "sandbox", "import", "serve"} <= top
    for name in top:
        assert name in result.stdout


@pytest.mark.parametrize("path", COMMANDS[1:], ids=" ".join)
def test_every_command_has_its_own_help(path: list[str]) -> None:
    runner = typer.testing.CliRunner()
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert " ".join(path) in result.output


def test_unknown_command_exits_2_with_usage() -> None:
    result = _run("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_unknown_option_exits_2_without_a_traceback() -> None:
    result = _run("db", "current", "--nope")
    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert "Traceback" not in result.stderr
