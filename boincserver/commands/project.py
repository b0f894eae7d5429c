"""Commands of a project's life: init, build, up, down, status, logs, exec, shell."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from boincserver.commands.context import confirm_deletion, console, open_project

commands = typer.Typer()


def read_ca_bundle(path: Optional[Path]) -> Optional[str]:
    """The text of --acme-ca-bundle FILE (checked as PEM by the settings)."""
    if path is None:
        return None
    from boincserver import tls
    return tls.read_pem_file(path, "ACME CA bundle", "--acme-ca-bundle").decode(errors="replace")


def on_swarm_now(p, swarm_flag: Optional[bool]) -> bool:
    """--swarm or --compose as given, else as the project was last brought up."""
    return swarm_flag if swarm_flag is not None else p.settings.deploy == "swarm"


@commands.command()
def init(
    directory: Path = typer.Argument(..., help="The new project folder, made with any missing parents; must be new or empty."),
    project: Optional[str] = typer.Option(None, help="Short name: lowercase letters, digits, '_' (default: the folder's name)."),
    url_base: str = typer.Option("http://127.0.0.1:8080", help="Where volunteers reach the server: http(s)://host[:port]."),
    boinc_user: str = typer.Option("boincadm", help="The Unix user that owns and runs the project."),
    project_root: Optional[str] = typer.Option(None, help="The project's path in the containers (default /home/USER/project)."),
    http_port: int = typer.Option(8080, help="The host port Apache is published on."),
    offline_signing: Optional[Path] = typer.Option(
        None, help="Keep the code-signing private key in this folder, never on the server."),
    registry: str = typer.Option("", help="Registry of the project's images: HOST:PORT/PATH, port and path optional (build --push; up pulls)."),
    work_slots: int = typer.Option(500, help="Slots of the scheduler's job array: at most this many jobs handed out a second; about 66 KB of shared memory each."),
    long_name: str = typer.Option("", help="The name the web pages show (default: the short name)."),
    description: str = typer.Option("", help="What the home page says the project does: plain text, a blank line between paragraphs."),
    https_port: int = typer.Option(0, help="The host port HTTPS is published on (default: the URL's port, or 443)."),
    tls: str = typer.Option("acme", help="For an https:// URL: acme (a certificate from an ACME CA), files (your own: `tls set`) or proxy (TLS ends in front)."),
    acme_directory: str = typer.Option("letsencrypt", help="The ACME CA: letsencrypt, letsencrypt-staging or a directory URL."),
    acme_email: str = typer.Option("", help="The ACME account's contact address (needed for acme)."),
    acme_ca_bundle: Optional[Path] = typer.Option(None, help="PEM file of a private ACME CA's TLS root, for Apache to trust it."),
    boinc_release: str = typer.Option("", help="The BOINC server release, by version or tag (default: the pinned one; `versions` lists the supported ones)."),
):
    """Scaffold a project folder: settings, compose.yaml, .env, image overlays, apps/."""
    from boincserver import project as core
    from boincserver.settings import Settings, check_boinc_release
    if offline_signing and offline_signing.expanduser().absolute().is_relative_to(directory.absolute()):
        from boincserver.errors import InvalidInput
        raise InvalidInput(f"{offline_signing} is inside the project folder, which is meant for git: "
                           "keep the code-signing key in a folder outside it")
    settings = Settings(project=project or directory.absolute().name, url_base=url_base,
                        boinc_user=boinc_user, project_root=project_root or "", http_port=http_port,
                        offline_signing_keys=str(offline_signing.expanduser().absolute()) if offline_signing else "",
                        registry=registry, work_slots=work_slots, long_name=long_name, description=description,
                        https_port=https_port, tls=tls, acme_directory=acme_directory, acme_email=acme_email,
                        acme_ca_bundle=read_ca_bundle(acme_ca_bundle) or "",
                        boinc_release=check_boinc_release(boinc_release).version)
    for written in core.init(directory, settings):
        console.result(f"{written.state:9} {written.path}")
    if offline_signing:
        from boincserver import secrets
        from boincserver.boinc import keys
        pair = secrets.make_offline_keys(offline_signing)
        console.result(f"code-signing key {keys.fingerprint(pair.public)} kept offline in {offline_signing}")
    console.result(f"\nProject {settings.project!r} ready in {directory}: `cd {directory} && boincserver up`")


@commands.command()
def build(
    boinc_src: Optional[str] = typer.Option(None, help="BOINC source: a git checkout or a release tarball (offline builds)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even what is up to date."),
    tag: List[str] = typer.Option([], "--tag", help="Also tag the project's images TAG (repeatable; never 'latest')."),
    push: bool = typer.Option(False, "--push", help="Push the images (and their content tag) to the registry."),
    registry: Optional[str] = typer.Option(None, help="HOST:PORT/PATH (port and path optional) instead of the `registry` setting."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Build the base images that are missing or outdated, then the project's images."""
    from boincserver import project as core
    p = open_project()
    core.check_docker(p.engine)
    result = core.build(p, console, boinc_src=boinc_src, force=force, tags=tag, push=push, registry=registry)
    if json_out:
        console.json(result.__dict__)
        return
    built = result.base_built + result.project_built
    console.result("built: " + ", ".join(built) if built else "everything is up to date; nothing was built")
    if result.pulled:
        console.result("pulled: " + ", ".join(result.pulled))
    for ref in result.pushed or result.tagged:
        console.result(("pushed   " if result.pushed else "tagged   ") + ref)


@commands.command()
def up(
    url_base: Optional[str] = typer.Option(None, help="Serve the project at this URL from now on (no rebuild)."),
    http_port: Optional[int] = typer.Option(None, help="Publish Apache on this host port from now on."),
    https_port: Optional[int] = typer.Option(None, help="Publish HTTPS on this host port from now on."),
    tls: Optional[str] = typer.Option(None, help="For an https:// URL: acme, files or proxy."),
    acme_directory: Optional[str] = typer.Option(None, help="The ACME CA: letsencrypt, letsencrypt-staging or a directory URL."),
    acme_email: Optional[str] = typer.Option(None, help="The ACME account's contact address."),
    acme_ca_bundle: Optional[Path] = typer.Option(None, help="PEM file of a private ACME CA's TLS root."),
    boinc_src: Optional[str] = typer.Option(None, help="BOINC source for a first build, where nothing can be downloaded."),
    swarm: Optional[bool] = typer.Option(None, "--swarm/--compose", help="Deploy on Docker Swarm (stack.yaml; needs a registry) or with Compose on this machine (default: as the last `up`)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Build what is missing, create the project the first time, start it and wait until it answers
    (for an https:// URL, until Apache serves its certificate). On Swarm: push the images, deploy
    the stack in order and wait until apache runs on a server node."""
    from boincserver import project as core
    p = open_project()
    changes = {"https_port": https_port, "tls": tls, "acme_directory": acme_directory, "acme_email": acme_email,
               "acme_ca_bundle": read_ca_bundle(acme_ca_bundle)}
    if on_swarm_now(p, swarm):
        from boincserver import swarm as on_swarm
        done = on_swarm.up(p, console, url_base=url_base, http_port=http_port, changes=changes)
        if json_out:
            console.json({"master_url": done.master_url, "stack": done.stack, "nodes": done.nodes,
                          "seconds": round(done.seconds, 1)})
        else:
            console.result(f"BOINC project {p.settings.project!r} is up on Docker Swarm (stack {done.stack}) "
                           f"at {done.master_url}")
            console.result("  " + ", ".join(f"{service} on {node}" for service, node in done.nodes.items()))
        return
    if p.settings.deploy == "swarm":  # --compose: a project of this machine from now on
        p.engine.compose_refusal = None
        changes["deploy"] = "compose"
    result = core.up(p, console, url_base=url_base, http_port=http_port, boinc_src=boinc_src, changes=changes)
    if json_out:
        console.json({"master_url": result.master_url, "local_url": result.local_url, "seconds": round(result.seconds, 1)})
    else:
        console.result(f"BOINC project {p.settings.project!r} is up at {result.master_url}")
        if result.local_url != result.master_url:
            console.result(f"(from this machine: {result.local_url})")


@commands.command()
def down(
    volumes: bool = typer.Option(False, "--volumes", help="Also delete the database, project files and secrets."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting volumes."),
    swarm: Optional[bool] = typer.Option(None, "--swarm/--compose", help="Remove the Swarm stack, or stop the Compose project (default: as the last `up`)."),
    json_out: bool = typer.Option(False, "--json", help="Print what was removed as JSON (Swarm)."),
):
    """Stop the project; with --volumes also delete all of its data. On Swarm: remove the stack
    (services, networks) and wait until it is gone; with --volumes also the database password's
    secret and, on the nodes swarm_nodes names, the project's volumes."""
    from boincserver import project as core
    p = open_project()
    if volumes:
        confirm_deletion(f"project {p.settings.project!r}'s database, files and secrets", yes)
    if on_swarm_now(p, swarm):
        from boincserver import swarm as on_swarm
        done = on_swarm.down(p, console, volumes)
        if json_out:
            console.json(done)
            return
        console.result(f"removed stack {done['stack']}" + ("" if volumes else "; the data is kept"))
        for node, names in done["volumes"].items():
            console.result(f"  removed on {node}: {', '.join(names) or 'no volumes'}")
        for node, names in done["left"].items():
            console.result(f"  left on {node} (not in swarm_nodes): {', '.join(names)}; there: "
                           f"`docker volume rm {' '.join(names)}`")
        return
    core.down(p, console, volumes)
    console.result("stopped" + (" and deleted its volumes" if volumes else "; the data is kept"))


@commands.command()
def status(json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
           swarm: Optional[bool] = typer.Option(None, "--swarm/--compose", help="The Swarm stack's services and nodes, or the Compose project's (default: as the last `up`).")):
    """Service states and BOINC's own bin/status; on Swarm, each service's tasks and nodes."""
    from boincserver import project as core
    p = open_project()
    if on_swarm_now(p, swarm):
        from boincserver import swarm as on_swarm
        data = on_swarm.status(p)
        if json_out:
            console.json(data)
            return
        console.result(f"project {data['project']}  {data['master_url']}  (Docker Swarm, stack {data['stack']})")
        for row in data["services"]:
            where = "; ".join(f"{t['node']}: {t['state']}" + (f" ({t['error']})" if t["error"] else "")
                              for t in row["tasks"]) or "no task"
            console.result(f"  {row['service']:12} {row['replicas']:6} {where}")
        console.result("nodes:")
        for n in data["nodes"]:
            console.result(f"  {n['hostname']:16} {n['state']:6} {n['availability']:7} {', '.join(n['roles'])}")
        return
    data = core.status(p, console)
    if json_out:
        console.json(data)
        return
    console.result(f"project {data['project']}  {data['master_url']}")
    for row in data["services"]:
        extra = f" ({row['health']})" if row["health"] else (f" (exit {row['exit_code']})" if row["state"] == "exited" else "")
        console.result(f"  {row['service']:12} {row['state']}{extra}")
    if data["bin_status"]:
        console.result("\nbin/status:")
        console.result(data["bin_status"].rstrip())
    for line in figure_lines(data.get("metrics") or {}):
        console.result(line)
    https = data.get("tls")
    if https:
        served = https.get("served")
        console.result(f"\nHTTPS ({https['mode']}): " + (f"certificate until {served['not_after']}, by {served['issuer']}"
                                                        if served else "no certificate served yet"))
        acme = https.get("acme") or {}
        if acme.get("problem"):
            console.result(f"  ACME: {acme['problem']}\n  fix: {acme['advice']}")


def figure_lines(figures: dict) -> list[str]:
    """The figures of /metrics in a few lines (status's terminal view)."""
    if not figures:
        return []
    if "error" in figures:
        return ["", f"metrics: not available ({figures['error']})"]
    lines = ["", "metrics (as URL_BASE/metrics shows them):"]
    if not figures.get("database_up"):
        return lines + [f"  database: not answering ({figures.get('database_error', '')})"]
    totals: dict[str, int] = {}
    for states in figures.get("results", {}).values():
        for state, count in states.items():
            totals[state] = totals.get(state, 0) + count
    lines.append("  results: " + (", ".join(f"{n} {s.replace('_', ' ')}" for s, n in totals.items()) or "none"))
    backlog = figures.get("transitioner_backlog", {})
    lines.append(f"  transitioner backlog: {backlog.get('workunits', 0)} due, oldest {backlog.get('seconds', 0):.0f} s")
    lines.append(f"  results received in the last hour: {figures.get('results_received_last_hour', 0)}")
    feeder = figures.get("feeder") or {}
    if feeder:
        lines.append(f"  feeder: {feeder['filled']} of {feeder['slots']} slots filled")
    down = [name for name, up in figures.get("daemons", {}).items() if not up]
    lines.append(f"  daemons not running: {', '.join(down)}" if down else "  daemons: all running")
    return lines


@commands.command()
def logs(
    services: List[str] = typer.Argument(None, help="Services (default: all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    tail: Optional[str] = typer.Option(None, help="Lines from the end of each log."),
):
    """Show the services' logs."""
    p = open_project()
    raise typer.Exit(p.engine.compose_logs(services or [], follow, tail))


@commands.command(name="exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    service: str = typer.Argument(..., help="mysql, apache or makeproject."),
    command: List[str] = typer.Argument(..., help="The command and its arguments."),
    root_user: bool = typer.Option(False, "--root", help="As root instead of the BOINC user."),
):
    """Run a command in a running service (apache: as the BOINC user, in PROJECT_ROOT)."""
    raise typer.Exit(_run_in(service, command, root_user))


@commands.command()
def shell(service: str = typer.Argument("apache", help="mysql, apache or makeproject."),
          root_user: bool = typer.Option(False, "--root", help="As root instead of the BOINC user.")):
    """An interactive shell in a running service."""
    raise typer.Exit(_run_in(service, ["bash"], root_user, tty=True))


def _run_in(service: str, command: list[str], root_user: bool, tty: bool = False) -> int:
    import sys
    p = open_project()
    apache = service == "apache"
    return p.engine.exec(
        service, command, interactive=True, tty=tty and sys.stdin.isatty(),
        # apache's own user is the BOINC user (compose.yaml): root must be asked for by name.
        user="root" if root_user else (p.settings.boinc_user if apache else None),
        workdir=p.settings.project_root if apache else None).code
