"""Remote submission: submit, results and batches of a project elsewhere, over HTTP(S) only.

A submitter's machine needs no Docker and no project folder: it has the project's URL and the
authenticator of an account that may submit (`boincserver user add` on the server). Jobs go
through BOINC's own handlers (boinc/submit_rpc.py has their protocol): the jobs file is checked
whole first (the same checks as a local `submit`), every input is named by its content and
sent once, only if the project lacks it (job_file.php), then one create_batch and one
submit_batch. Should anything fail after the batch was made, the batch is aborted and retired:
no job of a failed submission runs. Outputs come from boincserver's own results endpoint,
which answers only the batch's owner (the same report and outputs as a local `results`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx

from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import jobs as bj
from boincserver.boinc import submit_rpc as rpc
from boincserver.errors import BoincServerError, InvalidInput
from boincserver.jobs import (SHOWN_ERRORS, SubmitResult, check_jobs_file, jobs_file_lines, refusals,
                              unpack_outputs)
from boincserver.job_stream import input_path

# boincserver's results endpoint in the apache service (images/apache/outputs.conf).
RESULTS_PATH = "boincserver_results"
TIMEOUT = httpx.Timeout(30.0, read=600.0)  # submit_batch runs create_work for the whole batch
READ_SIZE = 1 << 20
UPLOADS_AT_ONCE = 4
# create_work's options a remote submission can set: the rest come from the app's templates.
REMOTE_OPTIONS = {"rsc_fpops_est", "delay_bound", "priority"}


class RemoteError(BoincServerError):
    """The remote project could not be reached or refused a call."""


@dataclass
class Remote:
    """A project's URL (its master URL, ending in /) and the account that submits to it."""

    url: str
    authenticator: str
    client: httpx.Client
    source: str = "the authenticator"  # where it came from, for messages

    def close(self) -> None:
        self.client.close()


def project_url(url: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")) or "://" == url[-3:]:
        raise InvalidInput(f"--remote {url!r} is not a project's URL",
                           advice="give the project's address, e.g. https://boinc.example.org/myproject/")
    return url if url.endswith("/") else url + "/"


def read_authenticator(path: Path) -> str:
    """The authenticator in PATH: a file only its owner may read, like an ssh key."""
    try:
        st = os.stat(path)
        text = Path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise InvalidInput(f"authenticator file {path} does not exist",
                           advice="save the authenticator `boincserver user add` printed in it (chmod 600)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read authenticator file {path}: {exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(f"authenticator file {path} may be read by others (mode {stat.S_IMODE(st.st_mode):o})",
                           advice=f"chmod 600 {path}")
    if not text or any(c.isspace() for c in text) or len(text) > 254:
        raise InvalidInput(f"{path} does not hold an authenticator (one word, as `boincserver user add` printed it)")
    return text


def connect(url: str, authenticator_file: Path, transport: httpx.BaseTransport | None = None) -> Remote:
    return Remote(project_url(url), read_authenticator(authenticator_file),
                  httpx.Client(timeout=TIMEOUT, transport=transport, follow_redirects=True),
                  source=f"the authenticator in {authenticator_file}")


# -- calls ----------------------------------------------------------------------------------------
def _plain(response: httpx.Response) -> bool:
    """An answer of boincserver's endpoint (one line of text), not a page of Apache's."""
    return response.headers.get("content-type", "").startswith("text/plain")


def _post(remote: Remote, path: str, data: dict, files=None, stream: bool = False) -> httpx.Response:
    url = remote.url + path
    try:
        if stream:
            request = remote.client.build_request("POST", url, data=data)
            response = remote.client.send(request, stream=True)
        else:
            response = remote.client.post(url, data=data, files=files)
    except httpx.HTTPError as exc:
        raise RemoteError(f"cannot reach {url}: {exc}", advice="check --remote and that the project is up") from None
    if response.status_code == 404 and not (path == RESULTS_PATH and _plain(response)):
        response.close()
        if path == RESULTS_PATH:
            raise RemoteError(f"{url} does not exist (HTTP 404): the project's boincserver predates remote results",
                              advice="its admin updates it (`boincserver up` with this version)")
        raise RemoteError(f"{url} does not exist (HTTP 404)",
                          advice="--remote is the project's URL, as its home page has it (…/PROJECT/)")
    return response


def refusal(remote: Remote, exc: rpc.RpcRefused, app: str | None = None) -> BoincServerError:
    """BOINC's words for a refused call, as our error with what to do."""
    message = exc.message
    if message == "bad authenticator":
        return InvalidInput(f"{remote.url} refused {remote.source}: no account has it",
                            advice="ask the project's admin for yours (`boincserver user add EMAIL --submit APP`)")
    if message == "no submit access":
        return InvalidInput(f"this account may not submit to app {app!r} of {remote.url}",
                            advice=f"the project's admin grants it: `boincserver user add EMAIL --submit {app}`")
    if message == "no file access":
        return InvalidInput(f"this account may not submit to {remote.url} (its right was revoked or never given)",
                            advice="the project's admin grants it: `boincserver user add EMAIL --submit APP`")
    if message.startswith("app not found"):
        return InvalidInput(f"{remote.url} has no app {app!r}", advice="ask the project's admin for the app's name")
    if message in ("no such batch", "not owner of batch", "not owner"):
        return InvalidInput(f"{remote.url}: {message} (batches are seen by the account that submitted them)",
                            advice="see `boincserver batch list --remote URL`")
    return RemoteError(f"{remote.url} refused {exc.call}: {message}")


def call(remote: Remote, name: str, request: str, handler: str = rpc.HANDLER, files=None,
         app: str | None = None):
    response = _post(remote, handler, {"request": request}, files=files)
    if response.status_code != 200:
        raise RemoteError(f"{remote.url}{handler} answered HTTP {response.status_code} to {name}: "
                          f"{response.text.strip()[:300]}", advice="see `boincserver logs apache` on the server")
    try:
        return rpc.reply(name, response.content)
    except rpc.RpcRefused as exc:
        raise refusal(remote, exc, app) from None
    except rpc.RpcGarbled as exc:
        raise RemoteError(f"{remote.url}{handler}: {exc}", advice="is --remote a BOINC project's URL?") from None


# -- submit ---------------------------------------------------------------------------------------
def remote_options(options: dict | None) -> tuple[dict, int | None]:
    """(job_params, batch priority) of create_work's options; the others are refused."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    other = sorted(set(options) - REMOTE_OPTIONS)
    if other:
        raise InvalidInput(f"--{other[0].replace('_', '-')} cannot be set by remote submission (BOINC's handler "
                           "takes only --rsc-fpops-est, --delay-bound and --priority)",
                           advice="the app's input template on the server sets the rest")
    with refusals():
        bj.check_options(options)
    priority = options.pop("priority", None)
    return options, priority


@dataclass
class _Input:
    path: str
    phys_name: str
    size: int


def _digest(path: str) -> _Input:
    h = hashlib.md5()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_SIZE):
            h.update(chunk)
            size += len(chunk)
    return _Input(path, bj.staged_name(h.hexdigest()), size)


def remote_jobs(jobs_file: Path, prefix: str) -> tuple[list[rpc.RemoteJob], dict[str, _Input]]:
    """Pass 2: each job with its name and inputs by content; the inputs, each once.

    What only remote submission refuses (a command line with a double quote) is listed with
    its line numbers, and nothing is sent."""
    base = str(jobs_file.parent)
    by_path: dict[str, _Input] = {}
    inputs: dict[str, _Input] = {}
    jobs: list[rpc.RemoteJob] = []
    errors: list[str] = []
    for job in bj.parse_jobs(jobs_file_lines(jobs_file)):
        if not isinstance(job, bj.Job):
            continue
        if job.command_line:
            try:
                rpc.check_command_line(job.command_line)
            except ValueError as exc:
                errors.append(f"line {job.lineno}: {exc}")
                continue
        staged = []
        for name in job.files:
            path = input_path(base, name)
            found = by_path.get(path)
            if found is None:
                found = by_path[path] = _digest(path)
                inputs.setdefault(found.phys_name, found)
            staged.append(found.phys_name)
        jobs.append(rpc.RemoteJob(job.wu_name or f"{prefix}_{job.lineno}", tuple(staged), job.command_line,
                                  job.priority))
    if errors:
        more = f"\n... and {len(errors) - SHOWN_ERRORS} more" if len(errors) > SHOWN_ERRORS else ""
        raise InvalidInput(f"{jobs_file}: {len(errors)} bad line(s) for remote submission; nothing was submitted:\n"
                           + "\n".join(errors[:SHOWN_ERRORS]) + more, advice="correct these lines and submit again")
    return jobs, inputs


def _upload_groups(inputs: list[_Input]) -> Iterator[list[_Input]]:
    group: list[_Input] = []
    size = 0
    for item in inputs:
        if group and (len(group) >= rpc.MAX_FILES_PER_UPLOAD or size + item.size > rpc.MAX_UPLOAD_BYTES):
            yield group
            group, size = [], 0
        group.append(item)
        size += item.size
    if group:
        yield group


def send_inputs(remote: Remote, inputs: list[_Input], batch_id: int,
                progress: Callable[[str], None]) -> tuple[int, int]:
    """The inputs the project lacks, uploaded: (files, bytes) sent."""
    absent: list[_Input] = []
    for i in range(0, len(inputs), rpc.MAX_QUERY_NAMES):
        chunk = inputs[i:i + rpc.MAX_QUERY_NAMES]
        root = call(remote, "query_files", rpc.file_call("query_files", remote.authenticator,
                                                         [x.phys_name for x in chunk], batch_id), rpc.FILE_HANDLER)
        absent += [chunk[k] for k in rpc.absent_files(root) if 0 <= k < len(chunk)]
    groups = list(_upload_groups(absent))
    files = nbytes = 0
    # A few uploads at once: each request's time is mostly the handler's own work per file
    # (PHP's temporary copy, BOINC's move and md5 check, two rows), which the server's other
    # cores and processes can do side by side.
    with ThreadPoolExecutor(UPLOADS_AT_ONCE) as pool:
        for group in pool.map(lambda g: _upload(remote, g, batch_id), groups):
            files += len(group)
            nbytes += sum(x.size for x in group)
            progress(f"sent {files}/{len(absent)} input file(s), {nbytes} bytes")
    return files, nbytes


def _upload(remote: Remote, group: list[_Input], batch_id: int) -> list[_Input]:
    with ExitStack() as stack:
        attached = [(f"file_{k}", (x.phys_name, stack.enter_context(open(x.path, "rb")), "application/octet-stream"))
                    for k, x in enumerate(group)]
        request = rpc.file_call("upload_files", remote.authenticator, [x.phys_name for x in group], batch_id)
        call(remote, "upload_files", request, rpc.FILE_HANDLER, files=attached)
    return group


def submit(remote: Remote, app: str, jobs_file: Path, options: dict | None = None, batch_name: str | None = None,
           wu_prefix: str | None = None, dry_run: bool = False,
           progress: Callable[[str], None] = lambda _: None) -> SubmitResult:
    """All jobs of a jobs file as one batch of the remote project, or none of them."""
    started = time.monotonic()
    with refusals():
        boinc_apps.check_app_name(app)
    job_params, priority = remote_options(options)
    jobs_file = Path(jobs_file)
    with tempfile.TemporaryFile() as recorded:
        checked = check_jobs_file(jobs_file, recorded)
    prefix = wu_prefix or f"{app}_{checked.digest[:12]}"
    with refusals("--wu-prefix: "):
        bj.check_wu_name(f"{prefix}_1")
    jobs, inputs = remote_jobs(jobs_file, prefix)
    if dry_run:
        return SubmitResult(app, 0, len(jobs), len(inputs), sum(x.size for x in inputs.values()),
                            time.monotonic() - started, jobs[0].name, dry_run=True)
    name = batch_name or f"{app} {jobs_file.name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    batch_id = rpc.batch_id_of(call(remote, "create_batch", rpc.create_batch(remote.authenticator, app, name), app=app))
    try:
        files, nbytes = send_inputs(remote, list(inputs.values()), batch_id, progress)
        progress(f"creating {len(jobs)} job(s) in batch {batch_id}")
        call(remote, "submit_batch", rpc.submit_batch(remote.authenticator, app, batch_id, jobs, job_params, priority),
             app=app)
    except BaseException as exc:
        withdrawn = withdraw(remote, batch_id)
        if isinstance(exc, BoincServerError):
            exc.args = (f"{exc.args[0]}\nnothing was submitted: batch {batch_id} was "
                        + ("aborted and retired" if withdrawn else "made but could not be aborted; abort it with "
                           f"`boincserver batch abort {batch_id} --remote {remote.url}`"),)
        raise
    return SubmitResult(app, batch_id, len(jobs), files, nbytes, time.monotonic() - started, jobs[0].name)


def withdraw(remote: Remote, batch_id: int) -> bool:
    """A failed submission's batch aborted (jobs create_work made before it stopped never run)
    and retired (its rows and files are cleaned up); False if the project could not be told."""
    try:
        for name in ("abort_batch", "retire_batch"):
            call(remote, name, rpc.batch_call(name, remote.authenticator, batch_id))
        return True
    except BoincServerError:
        return False


# -- batches and results --------------------------------------------------------------------------
def batches(remote: Remote) -> list[dict]:
    """The account's batches, retired ones aside, as `batch list` shows them."""
    out = []
    for b in rpc.batches(call(remote, "query_batches", rpc.query_batches(remote.authenticator))):
        finished = round(b.pop("fraction_done") * b["jobs"])
        b["done"] = max(0, finished - b["failed"])
        b["pending"] = b["jobs"] - b["done"] - b["failed"]
        out.append(b)
    return out


def abort(remote: Remote, batch_id: int) -> dict:
    call(remote, "abort_batch", rpc.batch_call("abort_batch", remote.authenticator, batch_id))
    return {"batch": batch_id, "aborted": True}


def retire(remote: Remote, batch_id: int) -> dict:
    call(remote, "retire_batch", rpc.batch_call("retire_batch", remote.authenticator, batch_id))
    return {"batch": batch_id, "retired": True}


def results(remote: Remote, wu_names: list[str] | None = None, batch: int | None = None,
            out: Path | None = None) -> dict:
    """What a local `results` answers, from the project's results endpoint: the jobs' states
    and, with `out`, their outputs as OUT/<job>/<output name>."""
    if bool(wu_names) == (batch is not None):
        raise InvalidInput("say which jobs: --wu NAME (one or more) or --batch ID")
    data: dict = {"authenticator": remote.authenticator}
    if batch is not None:
        data["batch"] = str(batch)
    else:
        data["wu"] = list(wu_names or [])
    if out is not None:
        data["tar"] = "1"
    response = _post(remote, RESULTS_PATH, data, stream=True)
    try:
        if response.status_code in (403, 404):  # not this account's, or no such batch or job
            reason = response.read().decode("utf-8", "replace").strip()
            if "authenticator" in reason:
                raise InvalidInput(f"{remote.url} refused {remote.source}: {reason}",
                                   advice="ask the project's admin for yours (`boincserver user add`)")
            raise InvalidInput(f"{remote.url}: {reason}",
                               advice="see the account's batches with `boincserver batch list --remote URL`")
        if response.status_code != 200:
            reason = response.read().decode("utf-8", "replace").strip()[:300]
            raise RemoteError(f"{remote.url}{RESULTS_PATH} answered HTTP {response.status_code}: {reason}",
                              advice="see `boincserver logs apache` on the server")
        if out is None:
            return json.loads(response.read())
        return unpack_outputs(_Stream(response), Path(out))
    finally:
        response.close()


class _Stream:
    """An httpx response as the file object tarfile's stream mode reads."""

    def __init__(self, response: httpx.Response):
        self._chunks = response.iter_bytes()
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data
