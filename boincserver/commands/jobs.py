"""Commands about jobs: create-work, submit, results, and the `batch` group."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from boincserver.commands.context import console, open_project

commands = typer.Typer()
batch_app = typer.Typer(no_args_is_help=True, help="Batches of jobs made by `submit`: list, abort, retire.")

# create_work's options that create-work and submit both take: name -> (type, help), in help order.
WORK_OPTIONS = {
    "target_nresults": (int, "Results made per job (create_work's default: 1)."),
    "min_quorum": (int, "Agreeing results needed to validate a job."),
    "max_error_results": (int, "Failed results before the job fails (retries = N - 1)."),
    "max_total_results": (int, "Results sent at most before the job fails."),
    "max_success_results": (int, "Successful results at most before the job fails."),
    "delay_bound": (int, "Seconds a client has to return a result."),
    "rsc_fpops_est": (float, "Estimated floating-point operations of a job."),
    "priority": (int, "Higher priorities are sent first."),
}


REMOTE_HELP = ("A project elsewhere, by its URL (…/PROJECT/): speak BOINC's remote submission over "
               "HTTP(S), as the account of --authenticator-file; no Docker or project folder needed here.")
AUTHENTICATOR_HELP = "With --remote: the file holding the account's authenticator (from `user add`; chmod 600)."
# The two options of every command that can work on a remote project.
RemoteUrl = Annotated[Optional[str], typer.Option("--remote", metavar="URL", help=REMOTE_HELP)]
AuthenticatorFile = Annotated[Optional[Path], typer.Option("--authenticator-file", metavar="FILE",
                                                           help=AUTHENTICATOR_HELP)]


def remote_project(url: Optional[str], authenticator_file: Optional[Path]):
    """The remote project of --remote and --authenticator-file, or None for the local one."""
    from boincserver.errors import InvalidInput
    if url is None and authenticator_file is None:
        return None
    if url is None or authenticator_file is None:
        raise InvalidInput("--remote and --authenticator-file go together",
                           advice="give both: --remote URL --authenticator-file FILE")
    from boincserver import remote
    return remote.connect(url, authenticator_file)


def with_work_options(command):
    """Put the WORK_OPTIONS where `command` has its `work_options` parameter.

    Typer reads a command's options from its signature, so the options are written into the
    signature once here instead of twice by hand; `command` receives those given as one dict.
    """
    signature = inspect.signature(command, eval_str=True)
    params = []
    for param in signature.parameters.values():
        if param.name != "work_options":
            params.append(param)
            continue
        params += [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[kind],
                                     default=typer.Option(None, help=text))
                   for name, (kind, text) in WORK_OPTIONS.items()]

    @functools.wraps(command)
    def parsed(**given):
        chosen = {name: given.pop(name) for name in WORK_OPTIONS}
        return command(**given, work_options={k: v for k, v in chosen.items() if v is not None})

    parsed.__signature__ = signature.replace(parameters=params)
    return parsed


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


@commands.command("create-work")
@with_work_options
def create_work_cmd(
    words: Optional[List[str]] = typer.Argument(
        None, metavar="APP FILE | -- COMMAND ARG",
        help="The app's name and the job's input files, in the app's order; with --image, after "
             "--, the command to run in the image and its arguments (none: the image's own CMD)."),
    image: Optional[str] = typer.Option(
        None, help="Run the command in this Docker image, as `docker run IMAGE COMMAND ARG...` would, "
                   "on a volunteer with Docker (BOINC's docker_wrapper; the image is built there from "
                   "FROM IMAGE, so the volunteer's engine must have or pull it)."),
    inputs: List[Path] = typer.Option(
        [], "--input", metavar="FILE",
        help="With --image: a file put into the command's working folder (/app) under its own name "
             "(repeatable)."),
    outputs: List[str] = typer.Option(
        [], "--output", metavar="NAME",
        help="With --image: a file the command writes in its working folder, returned as a result file "
             "(repeatable; `results --out` copies it). None given: no file comes back, only the task's "
             "log (what the command printed)."),
    wu_name: Optional[str] = typer.Option(None, help="The job's name (unique; default: generated)."),
    command_line: Optional[str] = typer.Option(None, help="Arguments given to the app (not with --image)."),
    keys_dir: Optional[Path] = typer.Option(
        None, help="With --image, on a project whose signing key is kept offline: the folder holding "
                   "code_sign_private, to sign the generic Docker app the first job installs."),
    work_options: Optional[dict] = None,  # the WORK_OPTIONS, written in by with_work_options
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Create one job: of APP from local input files (they are staged for you), or, with --image,
    one that runs a command in a Docker image (boinc2docker's one-liner)."""
    from boincserver.errors import InvalidInput
    words = list(words or [])
    if image is not None:
        if command_line is not None:
            raise InvalidInput("--command-line is for apps; with --image the command and its arguments "
                               "come after --", advice="write: create-work --image IMAGE -- COMMAND ARG...")
        from boincserver import docker_jobs
        result = docker_jobs.create_work(open_project(), image, words, inputs, outputs, wu_name, work_options,
                                         keys_dir / "code_sign_private" if keys_dir else None)
    else:
        if inputs or outputs or keys_dir:
            raise InvalidInput("--input, --output and --keys-dir go with --image; an app's input files follow "
                               "its name",
                               advice="write: create-work APP FILE... (or add --image IMAGE)")
        if not words:
            raise InvalidInput("create-work needs an app and the job's input files, or --image",
                               advice="write: create-work APP FILE... or create-work --image IMAGE -- COMMAND")
        from boincserver import jobs
        result = jobs.create_work(open_project(), words[0], [Path(f) for f in words[1:]], wu_name, command_line,
                                  work_options)
    _print_submitted(result, json_out)


@commands.command()
@with_work_options
def submit(
    app_name: str = typer.Argument(..., metavar="APP", help="The app's name."),
    jobs_file: Path = typer.Option(..., "--jobs", help="One job a line: [--wu-name N] [--command-line ARGS] [--priority N] FILE..."),
    batch_name: Optional[str] = typer.Option(None, help="The batch's name (default: app, file and time)."),
    wu_prefix: Optional[str] = typer.Option(None, help="Prefix of generated job names (default: from the file's content)."),
    work_options: Optional[dict] = None,  # the WORK_OPTIONS, written in by with_work_options
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the file and build the transfer, send nothing."),
    remote: RemoteUrl = None,
    authenticator_file: AuthenticatorFile = None,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Create all jobs of a jobs file as one batch: one transfer, one create_work; all or none."""
    there = remote_project(remote, authenticator_file)
    if there is not None:
        from boincserver import remote as remote_submission
        try:
            result = remote_submission.submit(there, app_name, jobs_file, work_options, batch_name, wu_prefix,
                                              dry_run, progress=console.step)
        finally:
            there.close()
    else:
        from boincserver import jobs
        project = None if dry_run else open_project()
        result = jobs.submit(project, app_name, jobs_file, work_options, batch_name, wu_prefix, dry_run)
    _print_submitted(result, json_out)


@commands.command()
def results(
    wu: List[str] = typer.Option([], "--wu", help="A job's name (repeatable)."),
    batch: Optional[int] = typer.Option(None, help="All jobs of this batch."),
    out: Optional[Path] = typer.Option(None, help="Copy the outputs here, as OUT/JOB/OUTPUT."),
    remote: RemoteUrl = None,
    authenticator_file: AuthenticatorFile = None,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Jobs done, pending or failed; with --out their assimilated outputs copied out."""
    there = remote_project(remote, authenticator_file)
    if there is not None:
        from boincserver import remote as remote_submission
        try:
            data = remote_submission.results(there, list(wu), batch, out)
        finally:
            there.close()
    else:
        from boincserver import jobs
        data = jobs.results(open_project(), list(wu), batch, out)
    if json_out:
        console.json(data)
    else:
        for job in data["jobs"]:
            failures = job.get("failures", [])
            extra = ", ".join(job.get("errors", []) + [f"{f['outcome']} (exit {f['exit_status']})" for f in failures]) \
                or ", ".join(job["outputs"])
            console.result(f"{job['name']:40} {job['state']:8} {extra}")
            if failures:  # the last failure's own words: the client's message, then what the
                # program wrote (a Docker job's container, else the tail of the task's stderr)
                last = failures[-1]
                words = last.get("container_output") or last["stderr_tail"]
                for line in ([last["message"]] if last["message"] else []) + words.splitlines():
                    console.result(f"    {line}")
        s = data["summary"]
        console.result(f"done {s['done']}, pending {s['pending']}, failed {s['failed']}"
                       + (f"; {len(data['copied'])} file(s) copied to {data['out']}" if out else ""))
    if data["summary"]["failed"]:
        raise typer.Exit(2)


def _on(remote: Optional[str], authenticator_file: Optional[Path], local, far):
    """local(project) here, or far(remote) on the project of --remote."""
    there = remote_project(remote, authenticator_file)
    if there is None:
        return local(open_project())
    try:
        return far(there)
    finally:
        there.close()


@batch_app.command("list")
def batch_list(
    remote: RemoteUrl = None,
    authenticator_file: AuthenticatorFile = None,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Batches with their jobs done, pending and failed (with --remote: the account's own, retired
    ones aside)."""
    from boincserver import jobs
    from boincserver import remote as remote_submission
    data = _on(remote, authenticator_file, jobs.batches, remote_submission.batches)
    if json_out:
        console.json(data)
        return
    for b in data:
        console.result(f"{b['id']:5} {b['app'] or '?':14} {b['state']:12} jobs {b['jobs']:6} done {b['done']:6} "
                       f"pending {b['pending']:6} failed {b['failed']:6}  {b['name']}")
    if not data:
        console.result("no batches yet")


@batch_app.command("abort")
def batch_abort(
    batch_id: int = typer.Argument(..., metavar="ID", help="The batch's id (see `batch list`)."),
    remote: RemoteUrl = None,
    authenticator_file: AuthenticatorFile = None,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Cancel a batch's jobs that are not done; results already sent are not waited for."""
    from boincserver import jobs
    from boincserver import remote as remote_submission
    data = _on(remote, authenticator_file, lambda p: jobs.abort(p, batch_id),
               lambda r: remote_submission.abort(r, batch_id))
    if json_out:
        console.json(data)
    elif "jobs_cancelled" in data:
        console.result(f"batch {data['batch']} aborted: {data['jobs_cancelled']} job(s) cancelled")
    else:
        console.result(f"batch {data['batch']} aborted")


@batch_app.command("retire")
def batch_retire(
    batch_id: int = typer.Argument(..., metavar="ID", help="The batch's id (see `batch list`)."),
    remote: RemoteUrl = None,
    authenticator_file: AuthenticatorFile = None,
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
):
    """Retire a batch whose jobs are all done or failed, so that the project deletes it.

    Within 5 minutes the project's clean-up deletes its jobs, its outputs and the inputs no
    other job uses: copy the outputs first (`results --batch ID --out DIR`)."""
    from boincserver import jobs
    from boincserver import remote as remote_submission
    data = _on(remote, authenticator_file, lambda p: jobs.retire(p, batch_id),
               lambda r: remote_submission.retire(r, batch_id))
    if json_out:
        console.json(data)
    else:
        console.result(f"batch {data['batch']} {'was retired already' if data.get('was_retired') else 'retired'}: "
                       "its jobs, outputs and inputs are deleted at the project's next clean-up (every 5 minutes)")
