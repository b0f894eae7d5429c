"""The use cases create-work, submit, results and batch: jobs in bulk, all or none.

A submission reads the jobs file twice, a line at a time (it is never held whole): first to
check every line and input file (and note each job's name), then to send. Nothing is sent
unless every line is good. One `docker compose exec` into the apache service then gets one
tar stream: the jobs' names, the inputs (named by content, jf_<md5>, for BOINC's download
hierarchy) and, after every PIECE jobs, their create_work lines. There the helper checks
the app and that no job name exists yet, makes a `batch` row and starts one `create_work
--stdin --batch ID`, which creates each piece's jobs while the next inputs arrive. Should
anything fail half-way, what was made is deleted: a submission is applied whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import client, docker
from boincserver.boinc import jobs as bj
from boincserver.container.jobs import STATUS_MEMBER
from boincserver.context import Project
from boincserver.errors import InvalidInput
from boincserver.inproject import helper_answer, in_apache, jobs_helper
from boincserver.job_stream import input_path, jobs_to_stream, name_record

SHOWN_ERRORS = 20


@dataclass
class Checked:
    """What the first pass found out about a jobs file."""

    jobs: int = 0
    files: int = 0
    bytes: int = 0
    digest: str = ""
    input_counts: set[int] = field(default_factory=set)
    unnamed: int = 0  # jobs whose names submit makes up
    longest_name: str = ""
    # What would stop the jobs if the app is a Docker app (docker_wrapper's rules); whether it
    # is one is asked only when this is not empty.
    docker_problems: list[str] = field(default_factory=list)  # the first SHOWN_ERRORS
    docker_count: int = 0
    docker_advice: str = ""

    def add_docker_problem(self, where: str, problem: docker.DockerJobError) -> None:
        self.docker_count += 1
        if len(self.docker_problems) < SHOWN_ERRORS:
            self.docker_problems.append(f"{where}: {problem.message}")
        self.docker_advice = self.docker_advice or problem.advice


@dataclass
class SubmitResult:
    app: str
    batch: int
    created: int
    files_sent: int
    bytes_sent: int
    seconds: float
    first: str | None = None
    dry_run: bool = False


def jobs_file_lines(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text ({exc.reason}); nothing was created") from None


def docker_problem(job: bj.Job, projdir: str) -> docker.DockerJobError | None:
    """What docker_wrapper could not run in a job (its name, its arguments), if anything."""
    try:
        if job.wu_name:
            docker.check_job_name(job.wu_name, projdir)
        docker.check_args(job.command_line)
    except docker.DockerJobError as exc:
        return exc
    return None


def check_jobs_file(path: Path, names_out: IO[bytes] | None = None) -> Checked:
    """Pass 1: every line parsed, every input file present, names unique in the file; and, kept
    aside, the lines a Docker app could not run (each name alone: its length with the project's
    folder on clients is for the caller to check, on the longest name). Each job's name, or its
    line number when it has none, goes to `names_out` (see job_stream.job_names).

    Raises InvalidInput listing the bad lines (with their numbers) if there is any.
    """
    if not path.is_file():
        raise InvalidInput(f"jobs file {path} does not exist; nothing was created")
    base = str(path.parent)
    errors: list[str] = []
    nerrors = 0
    names: set[bytes] = set()  # 8-byte digests: memory stays small for 100,000s of jobs
    checked = Checked()
    h = hashlib.sha256()

    def bad(msg: str) -> None:
        nonlocal nerrors
        nerrors += 1
        if len(errors) < SHOWN_ERRORS:
            errors.append(msg)

    def lines() -> Iterator[str]:
        for text in jobs_file_lines(path):
            h.update(text.encode())
            yield text

    for item in bj.parse_jobs(lines()):
        if isinstance(item, bj.LineError):
            bad(str(item))
            continue
        checked.jobs += 1
        checked.input_counts.add(len(item.files))
        checked.unnamed += not item.wu_name
        if names_out is not None:
            names_out.write(name_record(item))
        if item.command_line or item.wu_name:
            problem = docker_problem(item, "")
            if problem is not None:
                checked.add_docker_problem(f"line {item.lineno}", problem)
            elif item.wu_name and len(item.wu_name) > len(checked.longest_name):
                checked.longest_name = item.wu_name  # a good name alone: its length is checked later
        if item.wu_name:
            key = hashlib.blake2b(item.wu_name.encode(), digest_size=8).digest()
            if key in names:
                bad(f"line {item.lineno}: job name {item.wu_name!r} is used twice in the file")
            names.add(key)
        for name in item.files:
            try:
                st = os.stat(input_path(base, name))
            except OSError:
                bad(f"line {item.lineno}: input file {name} does not exist")
                continue
            if not stat.S_ISREG(st.st_mode):
                bad(f"line {item.lineno}: input {name} is not a file")
                continue
            checked.files += 1
            checked.bytes += st.st_size
        if item.command_line:
            try:
                bj.stdin_line(item.wu_name or "x", ["x"] * len(item.files), item.command_line, item.priority)
            except bj.JobsError as exc:
                bad(f"line {item.lineno}: {exc}")
    if nerrors:
        more = f"\n... and {nerrors - len(errors)} more" if nerrors > len(errors) else ""
        raise InvalidInput(f"{path}: {nerrors} bad line(s); nothing was created:\n" + "\n".join(errors) + more,
                           advice="correct these lines and submit again")
    if not checked.jobs:
        raise InvalidInput(f"{path} holds no jobs; nothing was created",
                           advice="one line per job: [--wu-name NAME] [--command-line ARGS] FILE...")
    checked.digest = h.hexdigest()
    return checked


@contextmanager
def refusals(prefix: str = ""):
    """BOINC's and Docker's rules broken by an argument, as our InvalidInput."""
    try:
        yield
    except boinc_apps.AppError as exc:
        raise InvalidInput(prefix + exc.message, advice=exc.advice) from None
    except bj.JobsError as exc:
        raise InvalidInput(prefix + str(exc)) from None


def work_option_args(options: dict | None) -> list[str]:
    """create_work's options for every job of the run: checked once, here, before anything
    is read or sent, and passed on as its arguments (boincserver-jobs submit appends them)."""
    with refusals():
        return bj.create_work_option_args(options or {})


def send(project: Project, app: str, jobs: Iterable[bj.Job], base: Path, prefix: str, ninputs: set[int],
         option_args: list[str], batch_name: str | None, files: dict[str, bytes] | None = None, *,
         recorded: IO[bytes] | None = None, njobs: int = 0) -> SubmitResult:
    """One exec into apache: the app checked (each job takes as many inputs as its template
    says, unless `ninputs` is empty: the jobs bring their own templates), `files` and the inputs
    staged, the jobs created by one create_work. `recorded`: check_jobs_file's name records of
    the `njobs` jobs (else `jobs` is a list, read for them)."""
    started = time.monotonic()
    folder = f"tmp_boincserver/boincserver-submit-{uuid.uuid4().hex}"
    feed = jobs_to_stream(jobs, base, prefix, folder, files, recorded, njobs)
    script = 'n=$2 && shift 2 && exec boincserver-jobs submit --inputs "$n" "$@"'
    result = helper_answer(in_apache(
        project, ["sh", "-c", script, "sh", app, ",".join(str(n) for n in sorted(ninputs)),
                  folder, app, batch_name or "-"] + option_args, stdin=feed))
    sent = feed.stager  # type: ignore[attr-defined]
    return SubmitResult(app, result["batch"], result["created"], sent.files, sent.bytes, time.monotonic() - started,
                        result.get("first"))


def project_dir_on_clients(project: Project) -> str:
    """The project's folder under a client's projects/ (part of docker_wrapper's image names)."""
    return client.escape_project_url(client.canonical_master_url(project.settings.master_url))


def refuse_for_docker_app(project: Project, app: str, checked: Checked) -> None:
    """If the app is a Docker app, the jobs' problems for docker_wrapper as InvalidInput.

    The project is asked only when there are problems: most jobs suit either kind of app."""
    if not checked.docker_count:
        return
    answer = jobs_helper(project, ["check-app", app, ",".join(str(n) for n in sorted(checked.input_counts))])
    if answer.get("docker"):
        more = checked.docker_count - len(checked.docker_problems)
        raise InvalidInput(f"app {app!r} is a Docker app and docker_wrapper cannot run {checked.docker_count} "
                           "job(s); nothing was created:\n" + "\n".join(checked.docker_problems)
                           + (f"\n... and {more} more" if more else ""), advice=checked.docker_advice)


def submit(project: Project, app: str, jobs_file: Path, options: dict | None = None, batch_name: str | None = None,
           wu_prefix: str | None = None, dry_run: bool = False) -> SubmitResult:
    """All the jobs of a jobs file as one BOINC batch, or nothing.

    A dry run does not ask the project, so it does not know if the app is a Docker app and
    leaves docker_wrapper's rules (job names, arguments) to the real submission."""
    started = time.monotonic()
    with refusals():
        boinc_apps.check_app_name(app)
    option_args = work_option_args(options)
    jobs_file = Path(jobs_file)
    with tempfile.TemporaryFile() as recorded:
        return _submit(project, app, jobs_file, check_jobs_file(jobs_file, recorded), recorded, option_args,
                       batch_name, wu_prefix, dry_run, started)


def _submit(project: Project, app: str, jobs_file: Path, checked: Checked, recorded: IO[bytes], option_args: list[str],
            batch_name: str | None, wu_prefix: str | None, dry_run: bool, started: float) -> SubmitResult:
    # Names follow from the file's content: the same file submitted twice is caught.
    prefix = wu_prefix or f"{app}_{checked.digest[:12]}"
    with refusals("--wu-prefix: "):
        bj.check_wu_name(f"{prefix}_1")
    projdir = "" if project is None else project_dir_on_clients(project)
    names = ([checked.longest_name] if checked.longest_name else []) \
        + ([f"{prefix}_{checked.jobs}"] if checked.unnamed else [])
    for name in names:
        try:
            docker.check_job_name(name, projdir)
        except docker.DockerJobError as exc:
            checked.add_docker_problem(f"job {name}", exc)
    if not dry_run:
        refuse_for_docker_app(project, app, checked)
    jobs = (j for j in bj.parse_jobs(jobs_file_lines(jobs_file)) if isinstance(j, bj.Job))
    if dry_run:
        with open(os.devnull, "wb") as sink:
            feed = jobs_to_stream(jobs, jobs_file.parent, prefix, "dry-run", None, recorded, checked.jobs)
            feed(sink)
        sent = feed.stager  # type: ignore[attr-defined]
        return SubmitResult(app, 0, checked.jobs, sent.files, sent.bytes, time.monotonic() - started, f"{prefix}_1",
                            dry_run=True)
    name = batch_name or f"{app} {jobs_file.name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    result = send(project, app, jobs, jobs_file.parent, prefix, checked.input_counts, option_args, name,
                  recorded=recorded, njobs=checked.jobs)
    result.seconds = time.monotonic() - started
    return result


def create_work(project: Project, app: str, files: list[Path], wu_name: str | None = None,
                command_line: str | None = None, options: dict | None = None) -> SubmitResult:
    """One job (no batch), through the same path as submit."""
    options = dict(options or {})
    priority = options.pop("priority", None)  # the job's own, on its line; the rest are the run's
    job = bj.Job(files=[str(Path(f).absolute()) for f in files], wu_name=wu_name,
                 command_line=command_line, priority=priority, lineno=1)
    with refusals():
        boinc_apps.check_app_name(app)
        if wu_name:
            bj.check_wu_name(wu_name)
    option_args = work_option_args(options)
    if not files:
        raise InvalidInput("create-work needs the job's input files")
    for f in files:
        if not Path(f).is_file():
            raise InvalidInput(f"input file {f} does not exist; no job was created")
    with refusals():
        bj.stdin_line(wu_name or "x", ["x"] * len(files), command_line, priority)
    prefix = f"{app}_{time.strftime('%Y%m%d%H%M%S')}_{uuid.uuid4().hex[:6]}"
    checked = Checked(jobs=1, input_counts={len(files)})
    problem = docker_problem(bj.Job([], wu_name or f"{prefix}_1", command_line), project_dir_on_clients(project))
    if problem is not None:
        checked.add_docker_problem(f"job {wu_name or prefix + '_1'}", problem)
    refuse_for_docker_app(project, app, checked)
    result = send(project, app, [job], Path("/"), prefix, {len(files)}, option_args, None)
    result.first = wu_name or f"{prefix}_1"
    return result


# -- results and batches ------------------------------------------------------------------
def _safe_member(name: str) -> tuple[str, str] | None:
    parts = name.split("/")
    if len(parts) != 2 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    return parts[0], parts[1]


def unpack_outputs(stream, out: Path) -> dict:
    """A results tar stream (boincserver-jobs status --tar, locally or through the results
    endpoint) unpacked: its report, with the files written as OUT/<job>/<output name> under
    "copied" and OUT under "out"."""
    out.mkdir(parents=True, exist_ok=True)
    report = None
    copied = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            data = tar.extractfile(member)
            if member.name == STATUS_MEMBER:
                report = json.loads(data.read())
                continue
            where = _safe_member(member.name)
            if where is None or not member.isfile() or data is None:
                continue
            target = out / where[0] / where[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                while chunk := data.read(1 << 16):
                    f.write(chunk)
            copied.append(str(target))
    return {**(report or {}), "copied": copied, "out": str(out)}


def results(project: Project, wu_names: list[str] | None = None, batch: int | None = None,
            out: Path | None = None) -> dict:
    """The state of jobs (by name or batch) and, with `out`, their outputs copied there as
    OUT/<job>/<output name>."""
    if bool(wu_names) == (batch is not None):
        raise InvalidInput("say which jobs: --wu NAME (one or more) or --batch ID")
    args = ["status"] + (["--batch", str(batch)] if batch is not None else ["--wu", *wu_names])
    if out is None:
        return jobs_helper(project, args)
    out = Path(out)
    return jobs_helper(project, args + ["--tar"], consume=lambda stream: unpack_outputs(stream, out))


def batches(project: Project) -> list[dict]:
    return jobs_helper(project, ["batches"])


def abort(project: Project, batch: int) -> dict:
    return jobs_helper(project, ["abort", str(batch)])


def retire(project: Project, batch: int) -> dict:
    """Retire a batch whose jobs are all done or failed: the project's clean-up task then
    deletes its rows, its inputs nothing else uses and its outputs (boinc/lifecycle.py)."""
    return jobs_helper(project, ["retire", str(batch)])
