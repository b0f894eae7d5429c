"""`boincserver-jobs`: apps, jobs, batches and results, in the apache service.

Run by `boincserver app|create-work|submit|results|batch` through `docker compose exec`, as
the BOINC user in PROJECT_ROOT. What to do is decided by boincserver on the host; this does
only what needs the project's files and database, and prints JSON (or, for `status --tar`, a
tar stream whose last member is the JSON).

Exit codes: 0 done, 2 no such command, 3 a problem the user can fix (the message is on
stderr as "boincserver-jobs: ...", nothing changed).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path
from typing import IO

from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import database, docker
from boincserver.boinc import jobs as bj
from boincserver.container import accounts, apps, common
from boincserver.container.common import ProjectFolder, Refused

NAME = "boincserver-jobs"
USER_MISTAKE = 3
# The last member of `status --tar`: the report, after the outputs.
STATUS_MEMBER = ".boincserver-status.json"
BATCH_DESCRIPTION = "boincserver submit"


def check_app(project: ProjectFolder, args: list[str]) -> dict:
    """Before anything is sent: app args[0] exists and takes as many inputs as each job has
    (args[1]: the jobs' input counts, comma-separated; none: the jobs bring their own
    templates). A Docker app's answer says "docker": true (docker_wrapper's rules apply to
    its jobs)."""
    app, counts = args[0], {int(n) for n in args[1].split(",") if n}
    cursor = project.cursor()
    if apps.app_row(cursor, app) is None:
        cursor.execute(database.APP_NAMES)
        known = ", ".join(r[0] for r in cursor.fetchall()) or "none yet"
        raise Refused(f"unknown app {app!r} (apps: {known}); nothing was created")
    cursor.execute(database.APPS_AND_VERSIONS)
    versions = next(a["versions"] for a in boinc_apps.apps_from_rows(cursor.fetchall()) if a["name"] == app)
    kind = {"docker": True} if any(docker.is_docker_plan_class(v["plan_class"])
                                   for v in versions if not v["deprecated"]) else {}
    if not counts:
        return {"app": app, "inputs": None, **kind}
    template = project.root / "templates" / f"{app}_in"
    if not template.is_file():
        raise Refused(f"app {app!r} has no input template templates/{app}_in")
    want = boinc_apps.template_input_count(template.read_text())
    bad = sorted(n for n in counts if n != want)
    if bad:
        raise Refused(f"app {app!r} takes {want} input file(s) a job, but job(s) have {bad[0]}; "
                      "nothing was created")
    return {"app": app, "inputs": want, **kind}


def submit(project: ProjectFolder, args: list[str]) -> dict:
    """Create the jobs of FOLDER/jobs.txt in one create_work --stdin run, all or none.

    args: FOLDER (relative to PROJECT_ROOT; removed afterwards), the app, the batch's name
    ("-": no batch), then create_work's options for all jobs."""
    folder, app, batch_name, option_args = project.root / args[0], args[1], args[2], args[3:]
    jobs_file = folder / "jobs.txt"
    try:
        with open(jobs_file) as f:
            names = [bj.stdin_line_wu_name(line) for line in f if line.strip()]
        cursor = project.cursor()
        row = apps.app_row(cursor, app)
        if row is None:
            raise Refused(f"unknown app {app!r}; nothing was created")
        taken = common.query_all(cursor, database.workunits_named(names))
        if taken:
            raise Refused(f"{len(taken)} job name(s) exist already, e.g. {taken[0][0]!r}: this jobs file was "
                          "submitted before (job names are unique); nothing was created")
        batch = 0
        if batch_name != "-":
            cursor.execute(*database.insert_batch(batch_name, row[0], len(names), BATCH_DESCRIPTION))
            batch = cursor.lastrowid
        cmd = bj.create_work_command(app, option_args, batch)
        started = time.monotonic()
        with open(jobs_file) as f:
            done = common.run_command(cmd, cwd=project.root, stdin=f)
        if done.returncode != 0:
            common.execute_all(cursor, database.undo_create_work(names, batch))
            raise Refused(f"create_work failed (exit {done.returncode}): "
                          f"{(done.stderr.strip() or done.stdout.strip())[-1000:]}; nothing was created")
        return {"batch": batch, "created": len(names), "create_work_seconds": round(time.monotonic() - started, 3),
                "first": names[0] if names else None}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _failures(cursor, workunit_ids: list[int]) -> dict[int, list[dict]]:
    """Each workunit's failed results: outcome, exit status, the tail of their stderr."""
    found: dict[int, list[dict]] = {}
    for wu_id, name, outcome, exit_status, stderr_out in common.query_all(cursor,
                                                                         database.failed_results(workunit_ids)):
        # stderr_out is a BLOB column: MySQLdb hands it over as bytes (whatever the client wrote).
        if isinstance(stderr_out, bytes):
            stderr_out = stderr_out.decode("utf-8", "replace")
        found.setdefault(wu_id, []).append(bj.failure_report(name, outcome, exit_status, stderr_out))
    return found


def _outputs(results: Path, batch: int, wu_name: str) -> list[tuple[str, str]]:
    try:
        return bj.outputs_of(wu_name, os.listdir(results / str(batch)))
    except FileNotFoundError:
        return []


def _add_report(tar: tarfile.TarFile, report: dict) -> None:
    data = json.dumps(report).encode()
    info = tarfile.TarInfo(STATUS_MEMBER)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def status(project: ProjectFolder, args: list[str]) -> dict | None:
    """The state of jobs: `--batch ID` or `--wu NAME...`; with --tar, their outputs too."""
    as_tar = "--tar" in args
    args = [a for a in args if a != "--tar"]
    batch = int(args[1]) if args and args[0] == "--batch" else None
    names = [] if batch is not None else [a for a in args if a != "--wu"]
    cursor = project.cursor()
    if batch:
        cursor.execute(database.BATCH_BY_ID, (batch,))
        if cursor.fetchone() is None:
            raise Refused(f"no batch {batch} (see `boincserver batch list`)")
    rows = common.query_all(cursor, database.jobs_of_batch(batch) if batch is not None
                            else database.jobs_named(names))
    found = {r[1] for r in rows}
    missing = [n for n in names if n not in found]
    if missing:
        raise Refused(f"no job named {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    tar = tarfile.open(fileobj=project.out, mode="w|") if as_tar else None
    results = project.root / "results"
    failures = _failures(cursor, [row[0] for row in rows if row[-1]])  # jobs with failed results
    jobs = []
    for row in rows:
        job = bj.job_report(*row[1:])
        if row[0] in failures:
            job["failures"] = failures[row[0]]
        if job["state"] == "done":
            for entry, open_name in _outputs(results, job["batch"], job["name"]):
                job["outputs"].append(open_name)
                if tar is not None:
                    tar.add(results / str(job["batch"]) / entry, arcname=f"{job['name']}/{open_name}",
                            recursive=False)
        jobs.append(job)
    report = {"batch": batch, "jobs": jobs, "summary": bj.jobs_summary(jobs)}
    if tar is None:
        return report
    _add_report(tar, report)
    tar.close()
    project.out.flush()
    return None


def batches(project: ProjectFolder, args: list[str]) -> list[dict]:
    cursor = project.cursor()
    cursor.execute(database.BATCHES)
    return [bj.batch_report(*row) for row in cursor.fetchall()]


def abort(project: ProjectFolder, args: list[str]) -> dict:
    """Cancel batch args[0]'s unfinished jobs (see boinc.database.abort_batch)."""
    batch = int(args[0])
    cursor = project.cursor()
    cursor.execute(database.BATCH_BY_ID, (batch,))
    if cursor.fetchone() is None:
        raise Refused(f"no batch {batch} (see `boincserver batch list`)")
    results, jobs, _ = common.execute_all(cursor, database.abort_batch(batch))
    return {"batch": batch, "jobs_cancelled": jobs, "results_cancelled": results}


COMMANDS = {**apps.COMMANDS, **accounts.COMMANDS, "check-app": check_app, "submit": submit,
            "status": status, "batches": batches, "abort": abort}


def main(argv: list[str] | None = None, *, root: Path | None = None, out: IO[bytes] | None = None,
         err: IO[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = sys.stdout.buffer if out is None else out
    err = sys.stderr if err is None else err
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: {NAME} {'|'.join(COMMANDS)} ...", file=err)
        return 2
    project = ProjectFolder(root or Path(os.environ.get("PROJECT_ROOT", ".")), out)
    try:
        answer = COMMANDS[argv[0]](project, argv[1:])
    except (Refused, boinc_apps.AppError, bj.JobsError) as exc:
        print(f"{NAME}: {exc}", file=err, flush=True)
        return USER_MISTAKE
    if answer is not None:
        out.write((json.dumps(answer) + "\n").encode())
        out.flush()
    return 0
