"""What every command module shares: the project folder given with -C, the console, the project."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from boincserver.console import Console

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


def passphrase(confirm: bool) -> str:
    """The backup passphrase: from the environment (for scripts), else asked for without echo."""
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    return typer.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm)


def confirm_deletion(what: str, yes: bool) -> None:
    """Ask before deleting data for good (exit 1 on no), unless --yes said so already."""
    if not yes and not typer.confirm(f"Delete {what} for good?"):
        raise typer.Exit(1)
