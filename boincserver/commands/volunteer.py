"""`boincserver volunteer`: a BOINC client on this machine that runs the project's apps (up,
status, down), and the same client for other machines (manifests)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from boincserver.commands.context import confirm_deletion, console, open_project

volunteer_app = typer.Typer(no_args_is_help=True,
                            help="A BOINC client on this machine that runs the project's apps, Docker apps too.")


@volunteer_app.command("up")
def up(
    attach: Optional[str] = typer.Option(None, help="Attach to another project instead: its master URL (needs --account-key-file)."),
    account_key_file: Optional[Path] = typer.Option(None, help="A file holding the account key to attach with."),
    client_src: Optional[str] = typer.Option(None, help="The BOINC client's source, where nothing can be downloaded."),
    timeout: float = typer.Option(180.0, help="Seconds to wait for the client to answer."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Start the client (default: attached to this project with its volunteer account's weak key)."""
    from boincserver import volunteer as core
    p = open_project()
    result = core.up(p, console, attach=attach, account_key_file=account_key_file, timeout=timeout,
                     client_src=client_src)
    if json_out:
        console.json({"url": result.url, "data_dir": result.data_dir, "changed": result.changed,
                      "built": result.built, "account": result.account, "docker": result.state.get("docker"),
                      "status": result.state, "warnings": [w[0] for w in result.warnings],
                      "seconds": round(result.seconds, 1)})
    else:
        for written in result.written:
            if written.state != "identical":
                console.result(f"{written.state:9} {written.path}")
        if result.account and result.account.get("created"):
            console.result(f"made the project's volunteer account {result.account['email']} "
                           f"(user {result.account['user_id']})")
        docker = result.state.get("docker")
        console.result(("the volunteer is running" if result.changed else "the volunteer was running; nothing changed")
                       + f": BOINC {result.state.get('client')} attached to {result.url}, "
                       + (f"Docker {docker['version']} ({docker['type']})" if docker else "no Docker"))
        console.result(f"its data: {result.data_dir}")
    for problem, fix in result.warnings:
        # Not an error: the client runs, and gets native jobs.
        typer.secho(f"Warning: {problem}. Fix: {fix}", err=True, fg="yellow" if console.tty else None)


@volunteer_app.command("status")
def status(json_out: bool = typer.Option(False, "--json", help="Print the client's own JSON.")):
    """The client's projects and tasks, and whether it found Docker."""
    from boincserver import volunteer as core
    state = core.status(open_project())
    if json_out:
        console.json(state)
        return
    docker = state.get("docker")
    console.result(f"BOINC client {state.get('client')}; Docker: "
                   + (f"{docker['version']} ({docker['type']})" if docker else
                      f"none ({state.get('docker_problem') or 'Docker apps are not run here'})"))
    console.result("projects:" if state.get("projects") else "projects: none attached")
    for p in state.get("projects") or []:
        console.result(f"  {p.get('name') or '(no reply yet)':20} {p.get('url')}  jobs succeeded {p.get('jobs_succeeded')}, "
                       f"failed {p.get('jobs_failed')}")
    console.result("tasks:" if state.get("tasks") else "tasks: none")
    for t in state.get("tasks") or []:
        console.result(f"  {t.get('name')}  {t.get('state')} {t.get('process') or ''}  "
                       f"{100 * (t.get('fraction_done') or 0):.0f}%  {t.get('project')}")


@volunteer_app.command("update")
def update():
    """Ask the client to contact its projects now (after an app or jobs were added)."""
    from boincserver import volunteer as core
    for url in core.update(open_project()):
        console.result(f"asked the client to contact {url}")


@volunteer_app.command("logs")
def logs(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    tail: Optional[str] = typer.Option(None, help="Lines from the end of the log."),
):
    """The client's log: its event log, Docker's check included."""
    from boincserver import volunteer as core
    raise typer.Exit(core.logs(open_project(), follow, tail))


@volunteer_app.command("down")
def down(
    data: bool = typer.Option(False, "--data", help="Also delete the client's data folder and the account key."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting the data."),
):
    """Stop the client and remove the Docker apps' containers and images it left behind."""
    from boincserver import volunteer as core
    p = open_project()
    if data:
        confirm_deletion(f"the volunteer's data and account key in {core.folder(p)}", yes)
    result = core.down(p, console, delete_data=data)
    console.result("stopped the volunteer" if result.stopped else "no volunteer was started here")
    for name in result.containers:
        console.result(f"removed container {name}")
    for ref in result.images:
        console.result(f"removed image {ref}")
    for path in result.deleted:
        console.result(f"deleted {path}")
    if result.stopped and not result.deleted:
        console.result(f"kept its data in {core.folder(p)} (`--data` deletes it)")


@volunteer_app.command("manifests")
def manifests(directory: Path = typer.Argument(..., help="The folder to write them to.")):
    """Write the volunteer for other machines: compose.yaml and .env, a Kubernetes DaemonSet, a README."""
    from boincserver import volunteer as core
    for written in core.manifests(open_project(), directory):
        console.result(f"{written.state:9} {written.path}")
