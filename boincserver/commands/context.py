"""What every command module shares: the project folder given with -C, the console, the project."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from boincserver.console import Console
from boincserver.errors import InvalidInput

# Set by the root callback in cli.py before any command runs.
state = {"project_dir": Path.cwd()}
console = Console()

PASSPHRASE_ENV = "BOINCSERVER_BACKUP_PASSPHRASE"


def open_project():
    """The project in the folder given with -C, driving the real Docker engine."""
    # Imported here so that parsing and --help never load Docker's client.
    from boincserver import context
    from boincserver.engine import Engine
    return context.open_project(state["project_dir"], lambda d, name: Engine(d, name))


def can_ask() -> bool:
    """True if a person can answer a prompt: standard input is a terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced standard input
        return False


def passphrase(confirm: bool) -> str:
    """The backup passphrase: from the environment (for scripts), else asked for without echo.

    Without a terminal nothing is asked (getpass would warn, then read a line of the pipe):
    the error names the variable, before anything is read or written.
    """
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if not can_ask():
        raise InvalidInput("a backup passphrase is needed and there is no terminal to ask for it; nothing was changed",
                           advice=f"set {PASSPHRASE_ENV} in the environment (from a secrets manager, "
                                  "not a file in the project), or run the command in a terminal")
    return typer.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm)


def confirm_deletion(what: str, yes: bool) -> None:
    """Ask before deleting data for good (exit 1 on no), unless --yes said so already.

    Without a terminal to ask on, nothing is deleted and the error names --yes.
    """
    if yes:
        return
    if not can_ask():
        raise InvalidInput(f"deleting {what} needs a yes and there is no terminal to ask; nothing was deleted",
                           advice="pass --yes to delete without asking")
    if not typer.confirm(f"Delete {what} for good?"):
        raise typer.Exit(1)
