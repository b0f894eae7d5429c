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
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO

from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import configxml, database, docker
from boincserver.boinc import jobs as bj
from boincserver.boinc import outputs as bo
from boincserver.container import accounts, apps, common
from boincserver.container import lifecycle, metrics
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


# What `submit` reads on stdin: a tar stream of, in this order, the jobs' own templates
# (templates/...), FOLDER/names.txt (every job's name, one a line: checked and batched before
# anything is created), then the inputs (download/<fanout dir>/jf_<md5>), each before the
# piece of create_work lines that first names it: FOLDER/jobs-N.txt, the last FOLDER/jobs.txt.
# create_work runs while the stream comes: the lines of a piece go to it as the piece arrives.
NAMES_MEMBER = "names.txt"
LAST_PIECE = "jobs.txt"
PIECE = re.compile(r"jobs-[0-9]+\.txt")
WRITABLE = ("download/", "templates/")  # where the stream's files go, in PROJECT_ROOT
BLOCK = 512
CHUNK = 1 << 20
CUT_SHORT = "the transfer was cut short; nothing was created"


class TarStream:
    """The members of a tar stream, in order, for files of any size: regular files, folders
    (skipped) and GNU long names, as GNU tar and Python's tarfile write them. Python's
    tarfile spends about 25 µs on a member's header; this about 2 (100,000 inputs: 2.5 s)."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.left = 0  # bytes of the current member (and its padding) not read yet

    def _exactly(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise Refused(CUT_SHORT)
        return data

    def read(self, size: int) -> bytes:
        """The current member's data (`size` bytes, as yielded)."""
        data = self._exactly(size + (-size % BLOCK))
        self.left = 0
        return data[:size]

    def skip(self) -> None:
        while self.left:
            self.left -= len(self._exactly(min(self.left, CHUNK)))

    def copy(self, fd: int, size: int) -> None:
        """The current member's data written to fd."""
        while size:
            view = memoryview(self._exactly(min(size, CHUNK)))
            size -= len(view)
            self.left -= len(view)
            while view:
                view = view[os.write(fd, view):]
        self.skip()

    def __iter__(self):
        long_name = None
        while True:
            self.skip()
            header = self.stream.read(BLOCK)
            if not header.strip(b"\0"):  # the end: zero blocks, or the stream's end
                return
            if len(header) != BLOCK:
                raise Refused(CUT_SHORT)
            raw = header[124:136]
            size = int.from_bytes(raw[1:], "big") if raw[0] & 0x80 else int(raw.strip(b"\0 ") or b"0", 8)
            name = header[:100].split(b"\0", 1)[0]
            if header[257:263] == b"ustar\0" and header[345]:  # POSIX ustar: a prefix
                name = header[345:500].split(b"\0", 1)[0] + b"/" + name
            kind = header[156:157]
            self.left = size + (-size % BLOCK)
            if kind == b"L":
                long_name = self.read(size).split(b"\0", 1)[0]
                continue
            if long_name is not None:
                name, long_name = long_name, None
            if kind == b"5":
                continue
            if kind not in (b"0", b"\0"):
                raise Refused(f"the transfer holds a {kind.decode(errors='replace')!r} member {name!r}: "
                              "only files are expected; nothing was created")
            yield name.decode(), size


def _write_new(path: str, data: TarStream | IO[bytes], size: int) -> None:
    """A member's data as a new file; a file there already is left alone (staged inputs are
    named by their content, templates too), as tar's --skip-old-files did."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        if isinstance(data, TarStream):
            data.skip()
        return
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return _write_new(path, data, size)
    try:
        if isinstance(data, TarStream):
            data.copy(fd, size)
        else:
            view = memoryview(data.read())
            while view:
                view = view[os.write(fd, view):]
    except BaseException:
        os.unlink(path)  # never half a file under a name that says its content
        raise
    finally:
        os.close(fd)


class Submission:
    """One `submit` run: the batch, create_work fed as the pieces come, undone whole if any
    step fails."""

    def __init__(self, project: ProjectFolder, app: str, batch_name: str, option_args: list[str]):
        self.project, self.app, self.batch_name, self.option_args = project, app, batch_name, option_args
        config = (project.root / "config.xml").read_text()
        self.download_url = configxml.get_element(config, "download_url")
        self.fanout = int(configxml.get_element(config, "uldl_dir_fanout") or bj.DEFAULT_FANOUT)
        template = project.root / "templates" / f"{app}_in"
        # create_work gives gzipped inputs a <gzipped_url>, never a --remote_file one: such
        # projects' inputs are read by create_work.
        self.remote = bool(self.download_url) and not (template.is_file() and "<gzip" in template.read_text())
        # Inputs received since the last piece, where create_work looks: name -> (path, bytes).
        self.sizes: dict[str, tuple[str, int]] = {}
        self.names: list[str] = []
        self.expected: set[str] = set()
        self.batch = 0
        self.lines = 0
        self.proc: subprocess.Popen | None = None
        self.output = tempfile.TemporaryFile()
        self.started = 0.0

    def start(self, names: list[str]) -> None:
        """The names checked against the database, the batch made, create_work started."""
        cursor = self.project.cursor()
        row = apps.app_row(cursor, self.app)
        if row is None:
            raise Refused(f"unknown app {self.app!r}; nothing was created")
        taken = common.query_all(cursor, database.workunits_named(names))
        if taken:
            raise Refused(f"{len(taken)} job name(s) exist already, e.g. {taken[0][0]!r}: this jobs file was "
                          "submitted before (job names are unique); nothing was created")
        self.names, self.expected = names, set(names)  # from here on, undo() cleans up
        if self.batch_name != "-":
            cursor.execute(*database.insert_batch(self.batch_name, row[0], len(names), BATCH_DESCRIPTION))
            self.batch = cursor.lastrowid
        self.started = time.monotonic()
        self.proc = subprocess.Popen(bj.create_work_command(self.app, self.option_args, self.batch),
                                     cwd=self.project.root, stdin=subprocess.PIPE, stdout=self.output,
                                     stderr=subprocess.STDOUT)

    def staged(self, relpath: str, size: int) -> None:
        name = relpath.rsplit("/", 1)[-1]
        where = bj.dir_hier_path(name, self.fanout)
        if relpath == "download/" + where:
            self.sizes[name] = where, size

    def described(self, name: str) -> tuple[str, int] | None:
        """Where clients fetch a staged input and its size, for create_work's --remote_file."""
        where, size = self.sizes.get(name) or (bj.dir_hier_path(name, self.fanout), None)
        if size is None:  # sent earlier in the stream or by an earlier submission
            try:
                size = os.stat(f"{self.project.root}/download/{where}").st_size
            except OSError:
                return None  # create_work says it is missing
        return f"{self.download_url}/{where}", size

    def feed(self, text: str) -> None:
        if self.proc is None:
            raise Refused(f"create_work lines came before the jobs' names; {CUT_SHORT}")
        lines = []
        for line in text.splitlines():
            if not line.strip():
                continue
            if bj.stdin_line_wu_name(line) not in self.expected:
                raise Refused(f"job {bj.stdin_line_wu_name(line)!r} was not among the names checked: the jobs "
                              "file changed while it was sent; nothing was created")
            lines.append(bj.with_remote_files(line, self.described) if self.remote else line)
        self.lines += len(lines)
        self.sizes.clear()
        try:
            self.proc.stdin.write(("\n".join(lines) + "\n").encode() if lines else b"")
        except BrokenPipeError:  # create_work stopped half-way
            raise self.failed() from None

    def failed(self) -> Refused:
        code = self.proc.wait()
        self.output.seek(0)
        said = self.output.read().decode(errors="replace").strip()
        return Refused(f"create_work failed (exit {code}): {said[-1000:]}; nothing was created")

    def finish(self) -> dict:
        if self.proc is None:
            raise Refused(CUT_SHORT)
        if self.lines != len(self.names):
            raise Refused(f"{self.lines} job line(s) came for {len(self.names)} name(s): the jobs file changed "
                          "while it was sent; nothing was created")
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        if self.proc.wait() != 0:
            raise self.failed()
        return {"batch": self.batch, "created": len(self.names),
                "create_work_seconds": round(time.monotonic() - self.started, 3),
                "first": self.names[0] if self.names else None}

    def undo(self) -> None:
        """What was made removed: create_work stopped first (it inserts in pieces)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        if self.names:
            common.execute_all(self.project.cursor(), database.undo_create_work(self.names, self.batch))


def submit(project: ProjectFolder, args: list[str], stream: IO[bytes] | None = None) -> dict:
    """Stage the inputs and create the jobs of the tar stream on stdin (see NAMES_MEMBER), all
    or none, in one create_work --stdin run.

    args: --inputs COUNTS (check_app's), FOLDER (the stream's folder for its names and
    pieces), the app, the batch's name ("-": no batch), then create_work's options for all jobs."""
    if args[:1] != ["--inputs"] or len(args) < 5:
        raise Refused("usage: submit --inputs COUNTS FOLDER APP BATCH [CREATE_WORK_OPTION...]")
    counts, folder, app, batch_name, option_args = args[1], args[2].rstrip("/") + "/", args[3], args[4], args[5:]
    check_app(project, [app, counts])
    tar = TarStream(open(sys.stdin.fileno(), "rb", buffering=CHUNK, closefd=False) if stream is None else stream)
    run = Submission(project, app, batch_name, option_args)
    try:
        for name, size in tar:
            if name.startswith(folder):
                member = name[len(folder):]
                if member == NAMES_MEMBER and run.proc is None:
                    run.start([n for n in tar.read(size).decode().split("\n") if n])
                elif member == LAST_PIECE or PIECE.fullmatch(member):
                    run.feed(tar.read(size).decode())
                else:
                    raise Refused(f"unexpected member {name!r} in the transfer; nothing was created")
            elif name.startswith(WRITABLE) and not {"", ".", ".."} & set(name.split("/")):
                if name.startswith("templates/"):  # a job's own: small, and read for <gzip
                    data = tar.read(size)
                    run.remote = run.remote and b"<gzip" not in data
                    _write_new(f"{project.root}/{name}", io.BytesIO(data), size)
                else:
                    _write_new(f"{project.root}/{name}", tar, size)
                    run.staged(name, size)
            else:
                raise Refused(f"unexpected member {name!r} in the transfer; nothing was created")
        return run.finish()
    except BaseException:
        run.undo()
        raise
    finally:
        run.output.close()


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


class NotYours(Refused):
    """A batch or job of another account's, asked for by status's `owner` (see outputs.py)."""


def status(project: ProjectFolder, args: list[str], owner: int | None = None) -> dict | None:
    """The state of jobs: `--batch ID` or `--wu NAME...`; with --tar, their outputs too.
    With `owner` (a user id): only jobs of batches that account owns, NotYours otherwise."""
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
    if owner is not None:
        owners = dict(common.query_all(cursor, bo.batch_owners([batch] if batch is not None else [r[2] for r in rows])))
        refusal = (bo.batch_refusal(owner, batch, owners.get(batch)) if batch is not None
                   else bo.jobs_refusal(owner, [(r[1], r[2]) for r in rows], owners))
        if refusal:
            raise NotYours(refusal)
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


def nudge_stalled(project: ProjectFolder, args: list[str]) -> dict:
    """After a crash or a database restart: see boinc.database.nudge_stalled_workunits."""
    cursor = project.cursor()
    (nudged,) = common.execute_all(cursor, [database.nudge_stalled_workunits()])
    return {"workunits_nudged": nudged}


COMMANDS = {**apps.COMMANDS, **accounts.COMMANDS, "check-app": check_app, "submit": submit,
            "status": status, "batches": batches, "abort": abort, "nudge-stalled": nudge_stalled}
COMMANDS.update(lifecycle.COMMANDS)  # retire, clean-batches: the batch life cycle
COMMANDS.update(metrics.COMMANDS)  # the server's health, as /metrics shows it


def main(argv: list[str] | None = None, *, root: Path | None = None, out: IO[bytes] | None = None,
         err: IO[str] | None = None, inp: IO[bytes] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = sys.stdout.buffer if out is None else out
    err = sys.stderr if err is None else err
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: {NAME} {'|'.join(COMMANDS)} ...", file=err)
        return 2
    project = ProjectFolder(root or Path(os.environ.get("PROJECT_ROOT", ".")), out)
    try:
        answer = submit(project, argv[1:], inp) if argv[0] == "submit" else COMMANDS[argv[0]](project, argv[1:])
    except (Refused, boinc_apps.AppError, bj.JobsError) as exc:
        print(f"{NAME}: {exc}", file=err, flush=True)
        return USER_MISTAKE
    if answer is not None:
        out.write((json.dumps(answer) + "\n").encode())
        out.flush()
    return 0
