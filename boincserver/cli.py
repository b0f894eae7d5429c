"""The boincserver command line: parse, call the core, print. No Docker, jinja2 or SQL here."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from boincserver import __version__
from boincserver.console import Console
from boincserver.errors import BoincServerError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Stand up and run a self-hosted BOINC project server as a Docker Compose stack.",
                  context_settings={"help_option_names": ["--help", "-h"]})
base_image_app = typer.Typer(no_args_is_help=True, help="The pinned base OS image under boincserver's images.")
app.add_typer(base_image_app, name="base-image")

state = {"project_dir": Path.cwd()}
console = Console()


def _version(value: bool):
    if value:
        typer.echo(f"boincserver {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    project_dir: Path = typer.Option(Path("."), "--project-dir", "-C", help="The project folder (default: here)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Show steps, not the lines of builds."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
):
    state["project_dir"] = project_dir
    console.quiet = quiet


def _project():
    from boincserver import project
    from boincserver.engine import Engine
    return project.open_project(state["project_dir"], lambda d, name: Engine(d, name))


@app.command()
def init(
    directory: Path = typer.Argument(..., help="The new project folder; must not exist or be empty."),
    project: Optional[str] = typer.Option(None, help="Short name: lowercase letters, digits, '_' (default: the folder's name)."),
    url_base: str = typer.Option("http://127.0.0.1:8080", help="Where volunteers reach the server: http(s)://host[:port]."),
    boinc_user: str = typer.Option("boincadm", help="The Unix user that owns and runs the project."),
    project_root: Optional[str] = typer.Option(None, help="The project's path in the containers (default /home/USER/project)."),
    http_port: int = typer.Option(8080, help="The host port Apache is published on."),
    offline_signing: Optional[Path] = typer.Option(
        None, help="Keep the code-signing private key in this folder, never on the server."),
    registry: str = typer.Option("", help="Registry of the project's images: HOST:PORT/PATH, port and path optional (build --push; up pulls)."),
):
    """Scaffold a project folder: settings, compose.yaml, .env, image overlays, apps/."""
    from boincserver import project as core
    from boincserver.settings import Settings
    if offline_signing and offline_signing.expanduser().absolute().is_relative_to(directory.absolute()):
        from boincserver.errors import InvalidInput
        raise InvalidInput(f"{offline_signing} is inside the project folder, which is meant for git: "
                           "keep the code-signing key in a folder outside it")
    settings = Settings(project=project or directory.absolute().name, url_base=url_base,
                        boinc_user=boinc_user, project_root=project_root or "", http_port=http_port,
                        offline_signing_keys=str(offline_signing.expanduser().absolute()) if offline_signing else "",
                        registry=registry)
    for written in core.init(directory, settings):
        console.result(f"{written.state:9} {written.path}")
    if offline_signing:
        from boincserver import secrets
        from boincserver.boinc import keys
        pair = secrets.make_offline_keys(offline_signing)
        console.result(f"code-signing key {keys.fingerprint(pair.public)} kept offline in {offline_signing}")
    console.result(f"\nProject {settings.project!r} ready in {directory}: `cd {directory} && boincserver up`")


@app.command()
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
    p = _project()
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


@app.command()
def up(
    url_base: Optional[str] = typer.Option(None, help="Serve the project at this URL from now on (no rebuild)."),
    http_port: Optional[int] = typer.Option(None, help="Publish Apache on this host port from now on."),
    boinc_src: Optional[str] = typer.Option(None, help="BOINC source for a first build, where nothing can be downloaded."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Build what is missing, create the project the first time, start it and wait until it answers."""
    from boincserver import project as core
    p = _project()
    result = core.up(p, console, url_base=url_base, http_port=http_port, boinc_src=boinc_src)
    if json_out:
        console.json({"master_url": result.master_url, "local_url": result.local_url, "seconds": round(result.seconds, 1)})
    else:
        console.result(f"BOINC project {p.settings.project!r} is up at {result.master_url}")
        if result.local_url != result.master_url:
            console.result(f"(from this machine: {result.local_url})")


@app.command()
def down(
    volumes: bool = typer.Option(False, "--volumes", help="Also delete the database, project files and secrets."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before deleting volumes."),
):
    """Stop the project; with --volumes also delete all of its data."""
    from boincserver import project as core
    p = _project()
    if volumes and not yes:
        if not typer.confirm(f"Delete project {p.settings.project!r}'s database, files and secrets for good?"):
            raise typer.Exit(1)
    core.down(p, console, volumes)
    console.result("stopped" + (" and deleted its volumes" if volumes else "; the data is kept"))


@app.command()
def status(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Service states and BOINC's own bin/status."""
    from boincserver import project as core
    data = core.status(_project(), console)
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


@app.command()
def logs(
    services: List[str] = typer.Argument(None, help="Services (default: all)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    tail: Optional[str] = typer.Option(None, help="Lines from the end of each log."),
):
    """Show the services' logs."""
    p = _project()
    raise typer.Exit(p.engine.compose_logs(services or [], follow, tail))


@app.command(name="exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    service: str = typer.Argument(..., help="mysql, apache or makeproject."),
    command: List[str] = typer.Argument(..., help="The command and its arguments."),
    root_user: bool = typer.Option(False, "--root", help="As root instead of the BOINC user."),
):
    """Run a command in a running service (apache: as the BOINC user, in PROJECT_ROOT)."""
    raise typer.Exit(_run_in(service, command, root_user))


@app.command()
def shell(service: str = typer.Argument("apache", help="mysql, apache or makeproject."),
          root_user: bool = typer.Option(False, "--root", help="As root instead of the BOINC user.")):
    """An interactive shell in a running service."""
    raise typer.Exit(_run_in(service, ["bash"], root_user, tty=True))


def _run_in(service: str, command: list[str], root_user: bool, tty: bool = False) -> int:
    import sys
    p = _project()
    apache = service == "apache"
    return int(p.engine.compose_exec(
        service, command, tty=tty and sys.stdin.isatty(),
        user=None if root_user or not apache else p.settings.boinc_user,
        workdir=p.settings.project_root if apache else None, capture=False))


@app.command()
def doctor(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Check what `up` needs; for each missing thing, the one command that fixes it."""
    from boincserver import doctor as checks
    results = checks.run_all(state["project_dir"])
    if json_out:
        console.json([r.__dict__ for r in results])
    else:
        for r in results:
            console.result(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.detail}")
            if not r.ok and r.fix:
                console.result(f"     fix: {r.fix}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command()
def versions(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """What this boincserver pins: BOINC's release and commit, the base images."""
    from boincserver import pins
    data = {"boincserver": __version__, "boinc_release": pins.BOINC_RELEASE, "boinc_commit": pins.BOINC_COMMIT,
            "base_os_image": pins.BASE_OS_IMAGE,
            "base_images": {n: pins.base_image(n) for n in pins.BASE_IMAGE_NAMES}}
    if json_out:
        console.json(data)
    else:
        for k, v in data.items():
            if isinstance(v, dict):
                for n, t in v.items():
                    console.result(f"{k}.{n:12} {t}")
            else:
                console.result(f"{k:24} {v}")


secrets_app = typer.Typer(no_args_is_help=True, help="The project's secrets: show, rotate, back up, restore.")
keys_app = typer.Typer(no_args_is_help=True, help="The code-signing key: keep it offline, rotate it, sign files.")
secrets_app.add_typer(keys_app, name="keys")
app.add_typer(secrets_app, name="secrets")
PASSPHRASE_ENV = "BOINCSERVER_BACKUP_PASSPHRASE"


def _passphrase(confirm: bool) -> str:
    import os
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    return typer.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm)


@secrets_app.command("show")
def secrets_show(reveal: bool = typer.Option(False, "--reveal", help="Also print the values."),
                 json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Each secret's name, kind and fingerprint (values only with --reveal)."""
    from boincserver import secrets
    p = _project()
    secrets.recover(p, console)
    rows = secrets.show(p, reveal=reveal)
    if json_out:
        console.json(rows)
        return
    for r in rows:
        state = r["fingerprint"] or "not set"
        extra = f"  private key: {r['private_key']}" if "private_key" in r else ""
        console.result(f"{r['name']:10} {r['kind']:8} {state}{extra}")
        if reveal and r.get("value") is not None:
            console.result(f"           {r['value']}")


@secrets_app.command("rotate")
def secrets_rotate(names: List[str] = typer.Argument(..., help="db, ops, mail, recaptcha, upload, or all."),
                   stdin: bool = typer.Option(False, "--stdin", help="Read the new value (mail, recaptcha) from standard input.")):
    """Give secrets new values that really take effect (MariaDB, Apache, the daemons)."""
    import sys
    from boincserver import secrets
    value = sys.stdin.read() if stdin else None
    done = secrets.rotate(_project(), console, names, value)
    console.result("rotated: " + ", ".join(done))


@secrets_app.command("backup")
def secrets_backup(file: Path = typer.Argument(..., help="The new, encrypted backup file.")):
    """Write every secret into FILE, encrypted and authenticated with a passphrase."""
    from boincserver import secrets
    size = secrets.backup(_project(), file, _passphrase(confirm=True))
    console.result(f"wrote {file} ({size} bytes, AES-256-GCM, scrypt key); keep the passphrase apart")


@secrets_app.command("restore")
def secrets_restore(file: Path = typer.Argument(..., help="A file written by `secrets backup`.")):
    """Put the secrets of a backup back into effect (a wrong passphrase changes nothing)."""
    from boincserver import secrets
    done = secrets.restore(_project(), console, file, _passphrase(confirm=False))
    console.result("restored: " + ", ".join(done))


@secrets_app.command("scan")
def secrets_scan(image: List[str] = typer.Option([], "--image", help="Also scan this image (repeatable)."),
                 json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Search every image layer and the project folder for every secret value."""
    from boincserver import secrets
    report = secrets.scan(_project(), image)
    if json_out:
        console.json(report)
    else:
        console.result(f"searched {len(report['images'])} images and the project folder for: "
                       + ", ".join(report["secrets_searched"]))
        for where, found in report["findings"].items():
            console.result(f"FOUND {', '.join(found)} in {where}")
        if not report["findings"]:
            console.result("no secret found")
    if report["findings"]:
        raise typer.Exit(1)


@keys_app.command("export")
def keys_export(keys_dir: Path = typer.Argument(..., help="A folder outside every container.")):
    """Move the code-signing private key off the server into KEYS_DIR (offline signing)."""
    from boincserver import secrets
    fp = secrets.export_private_key(_project(), console, keys_dir)
    console.result(f"code-signing key {fp} is now only in {keys_dir}; sign apps with "
                   f"`boincserver secrets keys sign --keys-dir {keys_dir} FILE...`")


@keys_app.command("rotate")
def keys_rotate():
    """A new code-signing key; attached clients accept it through BOINC's key-change files."""
    from boincserver import secrets
    fp, released = secrets.rotate_code_sign(_project(), console)
    console.result(f"new code-signing key {fp}")
    for r in released:
        console.result(f"re-released {r['app']} {r['platform']}: {r['from']} -> {r['to']}")


@keys_app.command("sign")
def keys_sign(files: List[Path] = typer.Argument(..., help="Application files to sign."),
              keys_dir: Path = typer.Option(..., help="The folder holding code_sign_private.")):
    """Write FILE.sig beside each file, signed here; update_versions then uses the .sig."""
    from boincserver import secrets
    for sig in secrets.sign_files(files, keys_dir):
        console.result(f"created   {sig}")


@base_image_app.command("ensure")
def base_image_ensure():
    """Have the pinned base OS image: present, pulled, or made with debootstrap (offline)."""
    from boincserver import images, pins
    from boincserver.engine import Engine
    engine = Engine()
    engine.check_engine()
    how = images.ensure_os_image(engine, pins.BASE_OS_IMAGE, console.step)
    console.result(f"{pins.BASE_OS_IMAGE}: {how}")


# -- apps, jobs, results, batches -------------------------------------------------------------
apps_app = typer.Typer(no_args_is_help=True, help="The project's BOINC applications: add, list.")
app.add_typer(apps_app, name="app")
batch_app = typer.Typer(no_args_is_help=True, help="Batches of jobs made by `submit`: list, abort.")
app.add_typer(batch_app, name="batch")


def _work_options(target_nresults, min_quorum, max_error_results, max_total_results, max_success_results,
                  delay_bound, rsc_fpops_est, priority) -> dict:
    return {k: v for k, v in dict(
        target_nresults=target_nresults, min_quorum=min_quorum, max_error_results=max_error_results,
        max_total_results=max_total_results, max_success_results=max_success_results,
        delay_bound=delay_bound, rsc_fpops_est=rsc_fpops_est, priority=priority).items() if v is not None}


_OPT_TARGET = typer.Option(None, help="Results made per job (create_work's default: 1).")
_OPT_QUORUM = typer.Option(None, help="Agreeing results needed to validate a job.")
_OPT_ERRORS = typer.Option(None, help="Failed results before the job fails (retries = N - 1).")
_OPT_TOTAL = typer.Option(None, help="Results sent at most before the job fails.")
_OPT_SUCCESS = typer.Option(None, help="Successful results at most before the job fails.")
_OPT_DELAY = typer.Option(None, help="Seconds a client has to return a result.")
_OPT_FPOPS = typer.Option(None, help="Estimated floating-point operations of a job.")
_OPT_PRIORITY = typer.Option(None, help="Higher priorities are sent first.")


@apps_app.command("add")
def app_add(
    name: str = typer.Argument(..., help="The app's short name (lowercase letters, digits, '_')."),
    exe: Optional[Path] = typer.Option(None, help="The executable (for --wrapper: the program the wrapper runs)."),
    platform: str = typer.Option("x86_64-pc-linux-gnu", help="BOINC platform of the executable[__plan_class]."),
    wrapper: bool = typer.Option(False, "--wrapper", help="Run --exe under BOINC's wrapper (job.xml generated)."),
    example: Optional[str] = typer.Option(None, help="Install a ready app of examples/ (uppercase, wordcount)."),
    inputs: List[str] = typer.Option([], "--input", help="An input file's name as the app opens it (repeatable; default: in)."),
    outputs: List[str] = typer.Option([], "--output", help="An output file's name (repeatable; default: out)."),
    friendly_name: Optional[str] = typer.Option(None, help="The name volunteers see."),
    wrapper_args: Optional[str] = typer.Option(None, help="--wrapper: the program's command line."),
    keys_dir: Optional[Path] = typer.Option(None, help="Sign with the offline code_sign_private in this folder."),
    validator: str = typer.Option("sample_trivial_validator", help="The validator daemon ('' for none)."),
    assimilator: str = typer.Option("sample_assimilator", help="The assimilator daemon ('' for none)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Install an app (or its next version): files signed, registered, validator and assimilator set."""
    from boincserver import apps
    from boincserver.boinc.apps import AppSpec
    from boincserver.errors import InvalidInput
    if example:
        if exe:
            raise InvalidInput("give --example or --exe, not both")
        spec = apps.load_example(example, name)
    else:
        spec = AppSpec(name=name, exe=str(exe) if exe else "", wrapper=wrapper)
    spec.platform = platform
    spec.inputs = list(inputs) or spec.inputs
    spec.outputs = list(outputs) or spec.outputs
    spec.friendly_name = friendly_name or spec.friendly_name
    spec.wrapper_command_line = wrapper_args or spec.wrapper_command_line
    spec.validator, spec.assimilator = validator, assimilator
    result = apps.add(_project(), spec, keys_dir / "code_sign_private" if keys_dir else None)
    if json_out:
        console.json(result.__dict__)
        return
    console.result(f"app {result.app} version {result.version} ({result.platform}) installed in "
                   f"{result.seconds:.1f}s, signed with {result.signed_with}")
    for daemon in result.daemons_added:
        console.result(f"  daemon added: {daemon}")


@apps_app.command("list")
def app_list(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """The project's apps, their versions and daemons."""
    from boincserver import apps
    data = apps.list_apps(_project())
    if json_out:
        console.json(data)
        return
    for a in data:
        versions = ", ".join(f"{v['version'] // 100}.{v['version'] % 100:02d} {v['platform']}"
                             + (f"__{v['plan_class']}" if v["plan_class"] else "") for v in a["versions"])
        console.result(f"{a['name']:16} {versions or 'no version'}")
        for d in a["daemons"]:
            console.result(f"{'':16} daemon: {d}")
    if not data:
        console.result("no apps yet: `boincserver app add uppercase --example uppercase`")


def _print_submitted(result, json_out: bool) -> None:
    if json_out:
        console.json(result.__dict__)
        return
    what = "would create" if result.dry_run else "created"
    rate = result.created / result.seconds if result.seconds else 0
    console.result(f"{what} {result.created} job(s) of {result.app}"
                   + (f" in batch {result.batch}" if result.batch else "")
                   + f" ({result.files_sent} input file(s), {result.bytes_sent} bytes sent; "
                     f"{result.seconds:.1f}s, {rate:.0f} jobs/s)")
    if result.first:
        console.result(f"first job: {result.first}")


@app.command("create-work")
def create_work_cmd(
    app_name: str = typer.Argument(..., metavar="APP", help="The app's name."),
    files: List[Path] = typer.Argument(..., help="The job's input files, in the app's order."),
    wu_name: Optional[str] = typer.Option(None, help="The job's name (unique; default: generated)."),
    command_line: Optional[str] = typer.Option(None, help="Arguments given to the app."),
    target_nresults: Optional[int] = _OPT_TARGET, min_quorum: Optional[int] = _OPT_QUORUM,
    max_error_results: Optional[int] = _OPT_ERRORS, max_total_results: Optional[int] = _OPT_TOTAL,
    max_success_results: Optional[int] = _OPT_SUCCESS, delay_bound: Optional[int] = _OPT_DELAY,
    rsc_fpops_est: Optional[float] = _OPT_FPOPS, priority: Optional[int] = _OPT_PRIORITY,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Create one job from local input files (they are staged for you)."""
    from boincserver import jobs
    result = jobs.create_work(_project(), app_name, files, wu_name, command_line, _work_options(
        target_nresults, min_quorum, max_error_results, max_total_results, max_success_results,
        delay_bound, rsc_fpops_est, priority))
    _print_submitted(result, json_out)


@app.command()
def submit(
    app_name: str = typer.Argument(..., metavar="APP", help="The app's name."),
    jobs_file: Path = typer.Option(..., "--jobs", help="One job a line: [--wu-name N] [--command-line ARGS] [--priority N] FILE..."),
    batch_name: Optional[str] = typer.Option(None, help="The batch's name (default: app, file and time)."),
    wu_prefix: Optional[str] = typer.Option(None, help="Prefix of generated job names (default: from the file's content)."),
    target_nresults: Optional[int] = _OPT_TARGET, min_quorum: Optional[int] = _OPT_QUORUM,
    max_error_results: Optional[int] = _OPT_ERRORS, max_total_results: Optional[int] = _OPT_TOTAL,
    max_success_results: Optional[int] = _OPT_SUCCESS, delay_bound: Optional[int] = _OPT_DELAY,
    rsc_fpops_est: Optional[float] = _OPT_FPOPS, priority: Optional[int] = _OPT_PRIORITY,
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the file and build the transfer, send nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Create all jobs of a jobs file as one batch: one transfer, one create_work; all or none."""
    from boincserver import jobs
    project = None if dry_run else _project()
    result = jobs.submit(project, app_name, jobs_file, _work_options(
        target_nresults, min_quorum, max_error_results, max_total_results, max_success_results,
        delay_bound, rsc_fpops_est, priority), batch_name, wu_prefix, dry_run)
    _print_submitted(result, json_out)


@app.command()
def results(
    wu: List[str] = typer.Option([], "--wu", help="A job's name (repeatable)."),
    batch: Optional[int] = typer.Option(None, help="All jobs of this batch."),
    out: Optional[Path] = typer.Option(None, help="Copy the outputs here, as OUT/JOB/OUTPUT."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Jobs done, pending or failed; with --out their assimilated outputs copied out."""
    from boincserver import jobs
    data = jobs.results(_project(), list(wu), batch, out)
    if json_out:
        console.json(data)
    else:
        for job in data["jobs"]:
            extra = ", ".join(job.get("errors", [])) or ", ".join(job["outputs"])
            console.result(f"{job['name']:40} {job['state']:8} {extra}")
        s = data["summary"]
        console.result(f"done {s['done']}, pending {s['pending']}, failed {s['failed']}"
                       + (f"; {len(data['copied'])} file(s) copied to {data['out']}" if out else ""))
    if data["summary"]["failed"]:
        raise typer.Exit(2)


@batch_app.command("list")
def batch_list(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Batches with their jobs done, pending and failed."""
    from boincserver import jobs
    data = jobs.batches(_project())
    if json_out:
        console.json(data)
        return
    for b in data:
        console.result(f"{b['id']:5} {b['app'] or '?':14} {b['state']:12} jobs {b['jobs']:6} done {b['done']:6} "
                       f"pending {b['pending']:6} failed {b['failed']:6}  {b['name']}")
    if not data:
        console.result("no batches yet")


@batch_app.command("abort")
def batch_abort(batch_id: int = typer.Argument(..., metavar="ID", help="The batch's id (see `batch list`)."),
                json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Cancel a batch's jobs that are not done; results already sent are not waited for."""
    from boincserver import jobs
    data = jobs.abort(_project(), batch_id)
    if json_out:
        console.json(data)
    else:
        console.result(f"batch {data['batch']} aborted: {data['jobs_cancelled']} job(s) cancelled")


# -- backup, restore, upgrade, ci -------------------------------------------------------------
@app.command()
def backup(file: Path = typer.Argument(..., help="The new backup file (encrypted with a passphrase)."),
           json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    """Back up the database, the project and results volumes and the secrets into one file."""
    from boincserver import backup as core
    result = core.backup(_project(), console, file, _passphrase(confirm=True))
    if json_out:
        console.json(result.__dict__)
        return
    console.result(f"wrote {result.file} ({result.bytes} bytes, AES-256-GCM, scrypt key) in {result.seconds:.1f}s; "
                   "keep the passphrase apart")


@app.command()
def restore(file: Path = typer.Argument(..., help="A file written by `boincserver backup`."),
            json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    """Put a backup into a project without data (after `down --volumes`); then `up`."""
    from boincserver import backup as core
    result = core.restore(_project(), console, file, _passphrase(confirm=False))
    if json_out:
        console.json(result)
        return
    console.result(f"restored {', '.join(result['restored'])} from the backup made {result['from']['made']}; "
                   "start it with `boincserver up`")


@app.command()
def upgrade(backup_file: Optional[Path] = typer.Option(None, "--backup", help="Where the backup taken first goes (default: ~/.local/share/boincserver/backups/)."),
            json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")):
    """Move the project to this boincserver's pins: backup, rewrite, rebuild, BOINC's upgrade_db."""
    from boincserver import upgrade as core
    p = _project()
    if not core.plan(p).changes:
        passphrase = ""  # a no-op asks for nothing
    else:
        passphrase = _passphrase(confirm=True)
    result = core.upgrade(p, console, passphrase, backup_file)
    if json_out:
        console.json(result)
    elif not result["upgraded"]:
        console.result(result["message"])
    else:
        console.result(f"upgraded to boincserver {result['pins']['boincserver']}, BOINC "
                       f"{result['pins']['boinc_commit'][:12]}; database at revision {result['db_revision']}; "
                       f"backup taken first: {result['backup']}")


ci_app = typer.Typer(no_args_is_help=True, help="Continuous integration: build and push the project's images.")
app.add_typer(ci_app, name="ci")


@ci_app.command("github")
def ci_github(branch: str = typer.Option("main", help="The branch whose pushes push the images."),
              install: Optional[str] = typer.Option(None, help="How CI installs boincserver: a pip requirement (default: this version).")):
    """Write a GitHub Actions workflow that builds the images, and on BRANCH pushes them."""
    from boincserver import ci
    from boincserver.settings import load
    written = ci.write_github(state["project_dir"], load(state["project_dir"]), branch=branch, install=install)
    console.result(f"{written.state:9} {written.path}")


def main():
    try:
        app()
    except BoincServerError as exc:
        console.error(str(exc), exc.advice)
        raise SystemExit(1)
    except KeyboardInterrupt:
        console.error("interrupted", None)
        raise SystemExit(130)
