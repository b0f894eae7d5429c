"""Commands that move a project's data: backup, restore, upgrade."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from boincserver.commands.context import console, open_project, passphrase

commands = typer.Typer()


@commands.command()
def backup(file: Path = typer.Argument(..., help="The new backup file (encrypted with a passphrase)."),
           json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    """Back up the database, the project and results volumes and the secrets into one file."""
    from boincserver import backup as core
    result = core.backup(open_project(), console, file, passphrase(confirm=True))
    if json_out:
        console.json(result.__dict__)
        return
    console.result(f"wrote {result.file} ({result.bytes} bytes, AES-256-GCM, scrypt key) in {result.seconds:.1f}s; "
                   "keep the passphrase apart")


@commands.command()
def restore(file: Path = typer.Argument(..., help="A file written by `boincserver backup`."),
            json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    """Put a backup into a project without data (after `down --volumes`); then `up`."""
    from boincserver import backup as core
    result = core.restore(open_project(), console, file, passphrase(confirm=False))
    if json_out:
        console.json(result)
        return
    console.result(f"restored {', '.join(result['restored'])} from the backup made {result['from']['made']}; "
                   "start it with `boincserver up`")


@commands.command()
def upgrade(backup_file: Optional[Path] = typer.Option(None, "--backup", help="Where the backup taken first goes (default: ~/.local/share/boincserver/backups/)."),
            dry_run: bool = typer.Option(False, "--dry-run", help="List what would change; change nothing."),
            json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    """Move the project to this boincserver's pins and BOINC release: backup, rebuild, install, BOINC's database updates."""
    from boincserver import upgrade as core
    result = core.upgrade(open_project(), console, lambda: passphrase(confirm=True), backup_file, dry_run=dry_run)
    if json_out:
        console.json(result)
    elif not result["upgraded"]:
        console.result(result["message"])
    else:
        moved = (f" (apache was down {result['downtime_seconds']} s)" if result.get("downtime_seconds") is not None
                 else "")
        console.result(f"upgraded to boincserver {result['pins']['boincserver']}, BOINC "
                       f"{core.release_name(result['pins']['boinc_commit'])}{moved}; database at revision "
                       f"{result['db_revision']}; backup taken first: {result['backup']}")
