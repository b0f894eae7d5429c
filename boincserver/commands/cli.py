"""The root of the command line: global options, each module's commands, and main()."""

from __future__ import annotations

from pathlib import Path

import typer

from boincserver import __version__
from boincserver.commands import apps, backup, images, jobs, mail, project, secrets, tls, users, volunteer
from boincserver.commands.context import console, state
from boincserver.commands.metavars import Root
from boincserver.errors import BoincServerError

app = typer.Typer(cls=Root, add_completion=False, no_args_is_help=True,
                  help="Stand up and run a self-hosted BOINC project server as a Docker Compose stack.",
                  context_settings={"help_option_names": ["--help", "-h"]})
# The order here is the order of `--help` and of the README's CLI reference: typer lists a
# group's commands first, then its subgroups.
app.add_typer(project.commands)
app.add_typer(images.commands)
app.add_typer(jobs.commands)
app.add_typer(backup.commands)
app.add_typer(images.base_image_app, name="base-image")
app.add_typer(secrets.secrets_app, name="secrets")
app.add_typer(apps.apps_app, name="app")
app.add_typer(jobs.batch_app, name="batch")
app.add_typer(users.users_app, name="user")
app.add_typer(images.ci_app, name="ci")
app.add_typer(volunteer.volunteer_app, name="volunteer")
app.add_typer(mail.mail_app, name="mail")
app.add_typer(tls.tls_app, name="tls")


def _version(value: bool):
    if value:
        typer.echo(f"boincserver {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    project_dir: Path = typer.Option(Path("."), "--project-dir", "-C", help="The project folder (default: here)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Show steps only, not each step of a build (its full log is kept in a file)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
):
    state["project_dir"] = project_dir
    console.start(quiet)


def main():
    """The console script `boincserver` and `python -m boincserver`."""
    try:
        app()
    except BoincServerError as exc:
        console.error(str(exc), exc.advice)
        raise SystemExit(1)
    except KeyboardInterrupt:
        console.error("interrupted", None)
        raise SystemExit(130)
