"""``closedloop ui-user NAME``: a line for the sync-health page's users file (argon2 hash)."""

from __future__ import annotations

from typing import Annotated

import typer

from connectors.errors import ConfigError

__all__ = ["ui_user_command"]


def ui_user_command(
    name: Annotated[str, typer.Argument(help="The user's name (letters, digits, . _ @ + -).")],
    role: Annotated[
        str, typer.Option("--role", help="viewer (sees everything) or operator (also acts).")
    ] = "viewer",
) -> None:
    """Ask for a password and print ``name:role:hash`` for ``ui.users_file``."""
    from argon2 import PasswordHasher

    from sync.ui.settings import ROLES, parse_users

    if role not in ROLES:
        raise ConfigError(f"--role must be viewer or operator; got {role!r}")
    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        raise ConfigError("use a password of at least 10 characters")
    line = f"{name}:{role}:{PasswordHasher().hash(password)}"
    try:
        parse_users(line)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("users file line 1", "the user")) from None
    typer.echo(line)
