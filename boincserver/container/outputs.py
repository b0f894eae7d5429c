"""`boincserver-outputs`: the project's outputs over HTTP, answered only to the batch's owner. A CGI
program in the apache service (images/apache/outputs.conf routes to it), run by Apache as the
BOINC user in place of BOINC's get_output3.php, which answers anyone (boinc/outputs.py has the
facts and the pure parts).

- `GET /PROJECT/get_output3.php?action=get_file&result_id=R&index=I[&download=1]` and
  `?action=get_batch&batch_id=B`: BOINC's two actions, for the web site's logged-in user (its
  cookie `auth`). get_file answers the output as text/plain (download=1: as an attachment);
  get_batch a zip of results/B/, made while it is sent.
- `POST /PROJECT/boincserver_results` (form fields authenticator, batch=ID or wu=NAME repeated,
  tar=1): what boincserver-jobs `status` answers (container/jobs.py), for that account's
  batches only: the JSON report, or with tar=1 a tar stream of the outputs ending with the report.
- `GET /PROJECT/get_output.php?cmd=result_file|batch_files|workunit_file|workunit_files&...
  &auth_str=...`: BOINC's page for its remote-submission clients (lib/boinc_submit.py and the
  others), answered with BOINC's auth strings, to the batch's owner, from the upload hierarchy
  or from results/, where sample_assimilator moved the file (boinc/outputs.py says what
  differs from BOINC's page and why): one output's bytes, or a zip of outputs under their
  physical names, made while it is sent.

Refusals are plain text, one line: 400 (a request no answer fits), 403 (not logged in, a bad
authenticator, another account's batch or job), 404 (no such result, batch or job, or no
output yet), 405, 413, 415. get_output.php's begin with BOINC's `ERROR: `.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
import zipfile
from pathlib import Path
from typing import IO, Iterable

from boincserver.boinc import configxml
from boincserver.boinc import jobs as bj
from boincserver.boinc import outputs as bo
from boincserver.container import common, jobs
from boincserver.container.common import ProjectFolder, Refused

NAME = "boincserver-outputs"
CHUNK = 1 << 16


class Refusal(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.answer = bo.Answer(status, reason)


class Body:
    """The answer's body: its header block goes out just before the first byte of it (status
    refuses before it writes, so a refusal still gets its own status line)."""

    def __init__(self, out: IO[bytes], headers: list[tuple[str, str]]):
        self.out, self.headers, self.started = out, headers, False

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.out.write(bo.cgi_head(200, self.headers))

    def write(self, data) -> int:
        self.start()
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        self.out.flush()


def _account(project: ProjectFolder, authenticator: str | None, missing: str) -> int:
    """The id of the account with this authenticator; Refusal 403 otherwise."""
    given = bo.usable_authenticator(authenticator)
    if authenticator is None:
        raise Refusal(403, missing)
    cursor = project.cursor()
    row = None
    if given is not None:
        cursor.execute(bo.USER_BY_AUTHENTICATOR, (given,))
        row = cursor.fetchone()
    if row is None or not bo.same_authenticator(row[1], given):
        raise Refusal(403, "bad authenticator")
    return int(row[0])


# -- get_output3.php ----------------------------------------------------------------------------
def get_file(project: ProjectFolder, user: int, request: bo.OutputRequest, out: IO[bytes]) -> None:
    cursor = project.cursor()
    cursor.execute(bo.RESULT_OUTPUTS, (request.result_id,))
    row = cursor.fetchone()
    if row is None:
        raise Refusal(404, f"no result {request.result_id}")
    xml_doc_in, wu_name, batch, owner = row
    refusal = bo.batch_refusal(user, int(batch), owner)
    if refusal:
        raise Refusal(403, f"result {request.result_id}: {refusal}")
    relpath, why = bo.output_file(int(batch), wu_name, xml_doc_in, request.index)
    if relpath is None:
        raise Refusal(404, f"result {request.result_id}: {why}")
    path = project.root / "results" / relpath
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise Refusal(404, f"result {request.result_id}: output {request.index} is not there (yet): "
                           "a job's outputs arrive once it is done and assimilated") from None
    filename = relpath.rsplit("/", 1)[-1]
    with f:
        size = os.fstat(f.fileno()).st_size
        kind = ("application/octet-stream", "attachment") if request.download else \
            ("text/plain; charset=utf-8", "inline")
        out.write(bo.cgi_head(200, [("Content-Type", kind[0]), ("Content-Length", str(size)),
                                    ("Content-Disposition", f'{kind[1]}; filename="{filename}"'),
                                    ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "private")]))
        shutil.copyfileobj(f, out, CHUNK)


def get_batch(project: ProjectFolder, user: int, request: bo.OutputRequest, out: IO[bytes]) -> None:
    batch = request.batch_id
    cursor = project.cursor()
    cursor.execute(bo.BATCH_OWNER, (batch,))
    row = cursor.fetchone()
    if row is None:
        raise Refusal(404, f"no batch {batch}")
    refusal = bo.batch_refusal(user, batch, row[0])
    if refusal:
        raise Refusal(403, refusal)
    folder = project.root / "results" / str(batch)
    try:
        names = bo.zip_members(os.listdir(folder))
    except FileNotFoundError:
        names = []
    files = [n for n in names if (folder / n).is_file()]
    if not files:
        raise Refusal(404, f"batch {batch} has no outputs yet")
    body = _zip_body(out, bo.zip_name(batch))
    # Written as it is sent: out cannot seek, so zipfile puts each size after its data.
    with zipfile.ZipFile(body, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in files:
            zf.write(folder / name, arcname=name)
    body.flush()


def _zip_body(out: IO[bytes], name: str) -> Body:
    """A zip file's answer, downloaded as `name`."""
    return Body(out, [("Content-Type", "application/zip"), ("X-Content-Type-Options", "nosniff"),
                      ("Content-Disposition", f'attachment; filename="{name}"'), ("Cache-Control", "private")])


def _get_query(environ: dict[str, str], parse, refusal=Refusal):
    """A GET page's query parsed by `parse`; 405 for another method, 400 for a bad query."""
    if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        raise refusal(405, "use GET")
    try:
        return parse(environ.get("QUERY_STRING", ""))
    except bo.BadRequest as exc:
        raise refusal(400, str(exc)) from None


def get_output(project: ProjectFolder, environ: dict[str, str], out: IO[bytes]) -> None:
    request = _get_query(environ, bo.output_request)
    user = _account(project, bo.cookie(environ.get("HTTP_COOKIE")),
                    "log in first: outputs are shown to the account that submitted the batch")
    (get_file if request.action == "get_file" else get_batch)(project, user, request, out)


# -- boincserver_results ------------------------------------------------------------------------
def _form(environ: dict[str, str], stdin: IO[bytes]) -> dict[str, list[str]]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Refusal(400, "bad Content-Length") from None
    problem = bo.form_problem(environ.get("REQUEST_METHOD", ""), environ.get("QUERY_STRING", ""),
                              environ.get("CONTENT_TYPE", ""), length)
    if problem is not None:
        raise Refusal(problem.status, problem.reason)
    data = stdin.read(length) if length else b""
    try:
        return bo.query_fields(data.decode("ascii"))
    except (UnicodeDecodeError, bo.BadRequest) as exc:
        raise Refusal(400, f"unreadable form: {exc}") from None


def results(project: ProjectFolder, environ: dict[str, str], out: IO[bytes], stdin: IO[bytes]) -> None:
    fields = _form(environ, stdin)
    try:
        authenticator, args = bo.results_request(fields)
    except bo.BadRequest as exc:
        raise Refusal(400, str(exc)) from None
    user = _account(project, authenticator, "no authenticator: send the account's as the POST field authenticator")
    as_tar = "--tar" in args
    body = Body(out, [("Content-Type", "application/x-tar" if as_tar else "application/json"),
                      ("Cache-Control", "private")])
    project.out = body
    try:
        report = jobs.status(project, args, owner=user)
    except jobs.NotYours as exc:
        raise Refusal(403, str(exc)) from None
    except Refused as exc:  # status's other refusals: no such batch or job
        raise Refusal(404, str(exc)) from None
    if report is not None:
        body.write((json.dumps(report) + "\n").encode())
    body.flush()


# -- get_output.php (BOINC's remote-submission clients) ------------------------------------------
class Places:
    """Where outputs are: the upload hierarchy (config.xml's upload_dir and uldl_dir_fanout)
    and results/."""

    def __init__(self, root: Path):
        config = (root / "config.xml").read_text()
        self.upload = Path(configxml.get_element(config, "upload_dir") or root / "upload")
        self.fanout = int(configxml.get_element(config, "uldl_dir_fanout") or bj.DEFAULT_FANOUT)
        self.results = root / "results"

    def open(self, places: list[tuple[str, str]]) -> IO[bytes] | None:
        """The first of these places that holds the file, opened; None if none does. Open, the
        file stays readable if the assimilator moves it meanwhile."""
        for area, relpath in places:
            try:
                return open((self.upload if area == bo.UPLOAD else self.results) / relpath, "rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
        return None


def _boinc_refusal(status: int, reason: str) -> Refusal:
    return Refusal(status, bo.ERROR + reason)


def _check_signed(request: bo.BoincOutputRequest, batch: int, user_id: int | None, authenticator: str | None,
                  subject: str | int) -> None:
    problem = bo.owner_problem(batch, user_id, authenticator)
    if problem:
        raise _boinc_refusal(403, problem)
    if not bo.boinc_auth_ok(request, authenticator, subject):
        raise _boinc_refusal(403, "bad authenticator")


def _send_output(places: Places, out: IO[bytes], xml_doc_in, wu_name: str, batch: int, canonical: bool,
                 file_num: int, what: str) -> None:
    files = bo.output_files(xml_doc_in)
    if file_num >= len(files):
        raise _boinc_refusal(404, f"bad file num: {what} has {len(files)} output file(s), {file_num} is none of them")
    phys_name, open_name = files[file_num]
    f = places.open(bo.output_places(int(batch), wu_name, canonical, phys_name, open_name, places.fanout))
    if f is None:
        raise _boinc_refusal(404, f"no such file {phys_name} ({what}: not uploaded yet, or deleted)")
    with f:
        size = os.fstat(f.fileno()).st_size
        out.write(bo.cgi_head(200, [("Content-Type", "application/octet-stream"), ("Content-Length", str(size)),
                                    ("Content-Disposition", f'attachment; filename="{phys_name}"'),
                                    ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "private")]))
        shutil.copyfileobj(f, out, CHUNK)


def _send_zip(places: Places, out: IO[bytes], name: str, jobs: Iterable[tuple[str, int, object]]) -> None:
    """A zip of the outputs of these canonical results ((job name, batch, xml_doc_in) each) under
    their physical names; outputs not there are left out, as BOINC's page leaves them."""
    body = _zip_body(out, name)
    with zipfile.ZipFile(body, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for wu_name, batch, xml_doc_in in jobs:
            for phys_name, open_name in bo.output_files(xml_doc_in):
                f = places.open(bo.output_places(int(batch), wu_name, True, phys_name, open_name, places.fanout))
                if f is None:
                    continue
                with f:
                    stat = os.fstat(f.fileno())
                    info = zipfile.ZipInfo(phys_name, time.localtime(stat.st_mtime)[:6])
                    info.compress_type, info.file_size = zipfile.ZIP_DEFLATED, stat.st_size
                    with zf.open(info, "w") as member:
                        shutil.copyfileobj(f, member, CHUNK)
    body.flush()


def result_file(project: ProjectFolder, request: bo.BoincOutputRequest, out: IO[bytes]) -> None:
    row = _row_or_404(project, bo.RESULT_BY_NAME, request.result_name,
                      f"no job instance {request.result_name[:200]!r}")
    result_id, result_name, xml_doc_in, wu_name, batch, canonical, user_id, authenticator = row
    _check_signed(request, int(batch), user_id, authenticator, result_name)
    _send_output(Places(project.root), out, xml_doc_in, wu_name, int(batch), int(canonical) == int(result_id),
                 request.file_num, f"job instance {result_name}")


def _row_or_404(project: ProjectFolder, statement: str, key, missing: str) -> tuple:
    """The one row `statement` finds for `key`, or BOINC's refusal saying what is missing."""
    cursor = project.cursor()
    cursor.execute(statement, (key,))
    row = cursor.fetchone()
    if row is None:
        raise _boinc_refusal(404, missing)
    return row


def _canonical_doc(project: ProjectFolder, canonical: int, wu_name: str):
    if not canonical:
        raise _boinc_refusal(404, f"no canonical result for wu {wu_name} (not done yet, or failed)")
    return _row_or_404(project, bo.RESULT_DOC, int(canonical),
                       f"no canonical result for wu {wu_name} (result {canonical} is gone)")[0]


def workunit_file(project: ProjectFolder, request: bo.BoincOutputRequest, out: IO[bytes]) -> None:
    row = _row_or_404(project, bo.WORKUNIT_BY_NAME, request.wu_name, f"no workunit {request.wu_name[:200]!r}")
    _, wu_name, batch, canonical, user_id, authenticator = row
    _check_signed(request, int(batch), user_id, authenticator, wu_name)
    xml_doc_in = _canonical_doc(project, canonical, wu_name)
    _send_output(Places(project.root), out, xml_doc_in, wu_name, int(batch), True, request.file_num,
                 f"wu {wu_name}")


def workunit_files(project: ProjectFolder, request: bo.BoincOutputRequest, out: IO[bytes]) -> None:
    row = _row_or_404(project, bo.WORKUNIT_BY_ID, request.wu_id, f"no workunit {request.wu_id}")
    wu_id, wu_name, batch, canonical, user_id, authenticator = row
    _check_signed(request, int(batch), user_id, authenticator, int(wu_id))
    xml_doc_in = _canonical_doc(project, canonical, wu_name)
    _send_zip(Places(project.root), out, f"{wu_name}.zip", [(wu_name, int(batch), xml_doc_in)])


def batch_files(project: ProjectFolder, request: bo.BoincOutputRequest, out: IO[bytes]) -> None:
    by_name = bool(request.batch_name)
    row = _row_or_404(project, bo.BATCH_BY_NAME if by_name else bo.BATCH_BY_ID,
                      request.batch_name if by_name else request.batch_id,
                      f"no batch {request.batch_name[:200] or request.batch_id}")
    batch, user_id, authenticator = row
    _check_signed(request, int(batch), user_id, authenticator, int(batch))
    cursor = project.cursor()
    cursor.execute(bo.BATCH_CANONICAL, (int(batch),))
    _send_zip(Places(project.root), out, bo.zip_name(int(batch)), cursor.fetchall())


BOINC_COMMANDS = {"result_file": result_file, "batch_files": batch_files, "workunit_file": workunit_file,
                  "workunit_files": workunit_files}


def boinc_get_output(project: ProjectFolder, environ: dict[str, str], out: IO[bytes]) -> None:
    request = _get_query(environ, bo.boinc_output_request, _boinc_refusal)
    BOINC_COMMANDS[request.cmd](project, request, out)


class Output:
    """The CGI program's standard output, knowing whether anything went out yet."""

    def __init__(self, raw: IO[bytes]):
        self.raw, self.sent = raw, False

    def write(self, data) -> int:
        self.sent = True
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def answer(environ: dict[str, str], stdin: IO[bytes], raw_out: IO[bytes], err: IO[str]) -> int:
    """One CGI request; 0 once answered (refusals included), 1 if it failed."""
    out = Output(raw_out)
    try:
        project_name = common.required_env(environ, "PROJECT")
        project = ProjectFolder(Path(common.required_env(environ, "PROJECT_ROOT")), out)
        which = bo.endpoint(environ.get("SCRIPT_NAME", ""), project_name)
        if which == bo.GET_OUTPUT:
            get_output(project, environ, out)
        elif which == bo.RESULTS:
            results(project, environ, out, stdin)
        elif which == bo.BOINC_GET_OUTPUT:
            boinc_get_output(project, environ, out)
        else:
            raise Refusal(404, "no such page")
    except Refusal as exc:
        if out.sent:  # cannot happen: the checks come before the answer
            print(f"{NAME}: refused after answering: {exc}", file=err, flush=True)
            return 1
        out.write(bo.cgi_head(exc.answer.status, [("Content-Type", "text/plain; charset=utf-8")]))
        out.write((exc.answer.reason + "\n").encode())
    except Exception:
        traceback.print_exc(file=err)  # Apache's error log
        if not out.sent:  # else the answer stops short: a zip or tar without its end
            out.write(bo.cgi_head(500, [("Content-Type", "text/plain; charset=utf-8")]))
            out.write(f"{NAME} failed; the server's error log says why\n".encode())
        out.flush()
        return 1
    out.flush()
    return 0


def main() -> int:
    return answer(dict(os.environ), sys.stdin.buffer, sys.stdout.buffer, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
