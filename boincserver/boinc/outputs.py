"""A project's outputs over HTTP, answered only to the batch's owner: what a request asks, who
sends it, whether they may have it, and the names in the answers. Pure: the CGI program
(container/outputs.py) does the reading and the writing.

Facts from the pinned server source:

- html/user/get_output3.php (56-92) serves two actions without any authentication:
  `action=get_file&result_id=R&index=I[&download=1]` shows (in <pre>) or downloads output I of
  result R, found as results/<wu.batch>/<wu.name>__file_<open name I>, the open names read from
  the result's xml_doc_in (html/inc/submit_util.inc get_outfile_log_names, 286-295: the
  <open_name> of each <file_ref> of its <result>); `action=get_batch&batch_id=B` zips
  results/B/* (`zip -q batch_B.zip *`: the files by their own names, no hidden ones) and sends
  batch_B.zip. Both names must pass is_valid_filename (html/inc/util_basic.inc 271-275:
  1 to 255 of A-Z a-z 0-9 _ - . space). html/user/submit.php (702, 873, 878) links to both for
  the submitter's batches and jobs.
- sched/sample_assimilator.cpp (79-105) moves the canonical result's outputs into
  results/<wu.batch>/<wu.name>__file_<logical name> (boinc.jobs.output_name); a job without
  any gets <wu.name>_no_output_files.
- The web site's login is the cookie `auth`, holding the account's authenticator
  (html/inc/util.inc get_logged_in_user 207-213, send_cookie 164-179: path of the master URL,
  HTTP only); the account is the user row with that authenticator (db/schema.sql user,
  unique(authenticator) in db/constraints.sql).
- A batch belongs to batch.user_id (db/schema.sql batch); batches made by `boincserver submit`
  have user 0, which is nobody's account (user ids start at 1).

get_output.php, the page BOINC's remote-submission clients fetch outputs from
(lib/boinc_submit.py get_output_file_url, get_output_files_url; lib/submit_api.py
get_output_file, get_output_files; lib/remote_submit.cpp get_output_file), also goes to our CGI
program. Facts from the pinned html/user/get_output.php:

- `cmd=result_file&result_name=R&file_num=N&auth_str=md5(authenticator.R)` (33-69): output N of
  result (instance) R, any instance of the job; `cmd=batch_files&batch_id=B&auth_str=
  md5(authenticator.B)` (74-125; or batch_name=, read with get_int so only a number works): a zip
  of the outputs of every job of B that has a canonical result, each under its physical name
  (`zip -jq`), a file of no bytes when there is none; `cmd=workunit_file&wu_name=W&file_num=N&
  auth_str=AUTHENTICATOR` (129-159: the authenticator itself, compared as it is): output N of W's
  canonical result; `cmd=workunit_files&wu_id=I&auth_str=md5(authenticator.I)` (163-207): a
  zip of W's canonical result's outputs. The authenticator is the batch owner's (result ->
  workunit -> batch -> user); anything else answers `ERROR: ...` (return_error, die) with
  HTTP 200 (27-29, the dispatch 209-231). A single file goes out as do_download sends it
  (html/inc/util.inc 1051-1063): application/octet-stream, `attachment; filename=<its
  physical name>`.
- Output N is the Nth <file_info> of the result's xml_doc_out (submit_util.inc
  get_outfile_phys_names 275-284), read from the upload hierarchy: <upload_dir>/<fanout
  dir>/<physical name> (html/inc/dir_hier.inc 21-37, as boinc.jobs.dir_hier_path). The client
  reports its outputs in the order of the result's <file_ref>s, which is the order used here,
  from xml_doc_in (each <file_ref> has the <file_name> and <open_name>); sample_assimilator
  reads the same <file_ref>s (sched/validate_util.cpp get_output_file_infos 103-138).

What changes here, and why: sample_assimilator moves a canonical result's outputs out of the
upload hierarchy into results/ (above), so BOINC's page answers "no such file" for every job
our apps finished. Ours answers the same URLs with the same auth strings, looking in the upload
hierarchy first (any instance; a canonical one before its assimilation; apps whose assimilator
leaves the files there) and then, for a canonical result, in results/<batch>/ (a rename moves
the file between the two, so one of the looks finds it). Refusals keep BOINC's `ERROR: ` text
but with an HTTP error status (403, 404, 400) in place of 200. A zip of nothing is an empty zip
archive, not a file of no bytes; batch_name is read as text (the first batch of that name).
Zips are made while they are sent, nothing written in the project (BOINC's writes them into
html/cache/ and /tmp). Note that workunit_file carries the account's authenticator itself in
the URL (so in access logs): BOINC's protocol, answered as is.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import parse_qs, unquote

from boincserver.boinc import jobs as bj

Statement = tuple[str, tuple]

AUTH_COOKIE = "auth"
GET_OUTPUT = "get_output3.php"
RESULTS = "boincserver_results"
BOINC_GET_OUTPUT = "get_output.php"
ENDPOINTS = (GET_OUTPUT, RESULTS, BOINC_GET_OUTPUT)
# is_valid_filename's characters (\w is ASCII in PHP's preg without /u).
_FILENAME = re.compile(r"[A-Za-z0-9_. -]{1,255}")
_ID = re.compile(r"[0-9]{1,18}")
# The largest form `boincserver_results` reads: 100,000 job names fit many times over.
MAX_FORM_BYTES = 16 << 20
MAX_FORM_FIELDS = 1_000_000
FORM_TYPE = "application/x-www-form-urlencoded"

USER_BY_AUTHENTICATOR = "SELECT id, authenticator FROM user WHERE authenticator=%s"
# The output's result with its job and the job's batch owner (None: no such batch).
RESULT_OUTPUTS = ("SELECT r.xml_doc_in, w.name, w.batch, b.user_id FROM result r "
                  "JOIN workunit w ON w.id=r.workunitid LEFT JOIN batch b ON b.id=w.batch WHERE r.id=%s")
BATCH_OWNER = "SELECT user_id FROM batch WHERE id=%s"
_CHUNK = 1000


class BadRequest(ValueError):
    """A request no answer fits (HTTP 400); the message says what is wrong."""


@dataclass(frozen=True)
class Answer:
    """A refusal: the HTTP status and a short plain-text reason."""
    status: int
    reason: str


REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           413: "Content Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error"}


def cgi_head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    """The header block a CGI program writes before its body."""
    lines = [f"Status: {status} {REASONS.get(status, '')}".rstrip()]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def endpoint(script_name: str, project: str) -> str | None:
    """Which of ENDPOINTS a request's URL path is (Apache's SCRIPT_NAME), None for any other
    (a trailing /path, another project's)."""
    for name in ENDPOINTS:
        if script_name == f"/{project}/{name}":
            return name
    return None


# -- who asks -----------------------------------------------------------------------------------
def cookie(header: str | None, name: str = AUTH_COOKIE) -> str | None:
    """A cookie's value in a Cookie header, as PHP's $_COOKIE has it: the first of that name,
    URL-decoded; None when absent or empty."""
    for part in (header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            value = unquote(value.strip())
            return value or None
    return None


def same_authenticator(stored: str | None, given: str) -> bool:
    """The row's authenticator is exactly the one given (MariaDB's comparison ignores case and
    trailing blanks; this does not)."""
    return bool(stored) and hmac.compare_digest(stored.encode(), given.encode())


def usable_authenticator(value: str | None) -> str | None:
    """An authenticator worth a database lookup: printable ASCII, not empty, not huge."""
    if not value or len(value) > 254 or not value.isascii() or not value.isprintable():
        return None
    return value


# -- what is asked --------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputRequest:
    """get_output3.php's request: get_file (result_id, index, download) or get_batch (batch_id)."""
    action: str
    result_id: int = 0
    index: int = 0
    download: bool = False
    batch_id: int = 0


def _one(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name)
    if not values:
        raise BadRequest(f"missing {name}")
    if len(values) > 1:
        raise BadRequest(f"{name} given {len(values)} times")
    return values[0]


def _id(fields: dict[str, list[str]], name: str) -> int:
    value = _one(fields, name).strip()
    if not _ID.fullmatch(value):
        raise BadRequest(f"{name} must be a whole number, got {value[:40]!r}")
    return int(value)


def query_fields(query: str) -> dict[str, list[str]]:
    try:
        return parse_qs(query, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"unreadable fields: {exc}") from None


def output_request(query: str) -> OutputRequest:
    """get_output3.php's query string, read as BOINC's page reads it (get_int, get_str)."""
    fields = query_fields(query)
    action = _one(fields, "action") if "action" in fields else ""
    if action == "get_file":
        download = fields.get("download", [""])[-1]
        return OutputRequest("get_file", result_id=_id(fields, "result_id"), index=_id(fields, "index"),
                             download=download not in ("", "0"))
    if action == "get_batch":
        return OutputRequest("get_batch", batch_id=_id(fields, "batch_id"))
    raise BadRequest("action must be get_file (result_id, index, download) or get_batch (batch_id)")


RESULTS_FIELDS = {"authenticator", "batch", "wu", "tar"}


def results_request(fields: dict[str, list[str]]) -> tuple[str | None, list[str]]:
    """`boincserver_results`'s form: (the authenticator, or None; the arguments of the
    boincserver-jobs `status` command it asks for)."""
    unknown = sorted(set(fields) - RESULTS_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (fields: authenticator, batch or wu, tar)")
    authenticator = (_one(fields, "authenticator") or None) if "authenticator" in fields else None
    names = fields.get("wu", [])
    if ("batch" in fields) == bool(names):
        raise BadRequest("say which jobs: batch=ID, or wu=NAME (repeated)")
    tar = fields.get("tar", ["0"])
    if len(tar) > 1 or tar[0] not in ("0", "1", ""):
        raise BadRequest("tar must be 1 (outputs as a tar stream) or 0")
    if names:
        bad = next((n for n in names if not n or n.startswith("-") or "/" in n), None)
        if bad is not None:
            raise BadRequest(f"no job can be named {bad[:80]!r}")
        args = ["--wu", *names]
    else:
        args = ["--batch", str(_id(fields, "batch"))]
    return authenticator, args + (["--tar"] if tar[0] == "1" else [])


def form_problem(method: str, query: str, content_type: str, length: int) -> Answer | None:
    """Why `boincserver_results` cannot read a request's form (None: it can). The
    authenticator belongs in a POST body, never in the URL, where access logs keep it."""
    if method != "POST":
        return Answer(405, "use POST, with the fields in the body")
    if query:
        return Answer(400, "send the fields in the POST body, not in the URL (access logs keep URLs)")
    if content_type.split(";")[0].strip().lower() != FORM_TYPE:
        return Answer(415, f"send the fields as {FORM_TYPE}")
    if length > MAX_FORM_BYTES:
        return Answer(413, f"the form is over {MAX_FORM_BYTES >> 20} MB")
    return None


# -- whether they may have it -------------------------------------------------------------------
def batch_refusal(user_id: int, batch: int, owner: int | None) -> str | None:
    """Why user_id may not have batch `batch`'s outputs (owner: its user_id, None if it has
    no row); None: it may."""
    if owner is not None and int(owner) == user_id and user_id > 0:
        return None
    return f"batch {batch} is not one of this account's batches"


def jobs_refusal(user_id: int, jobs: Iterable[tuple[str, int]], owners: dict[int, int]) -> str | None:
    """Why user_id may not see these jobs ((name, batch) each; owners: batch -> user_id):
    the first job whose batch is not the account's; None: it may see all."""
    for name, batch in jobs:
        if batch_refusal(user_id, batch, owners.get(int(batch))) is not None:
            return f"job {name!r} is not in a batch of this account's"
    return None


def batch_owners(batches: Iterable[int]) -> list[Statement]:
    """(id, user_id) of these batches."""
    ids = sorted(set(int(b) for b in batches))
    out = []
    for i in range(0, len(ids), _CHUNK):
        chunk = tuple(ids[i:i + _CHUNK])
        out.append((f"SELECT id, user_id FROM batch WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk))
    return out


# -- the names in the answers ---------------------------------------------------------------------
def valid_filename(name: str) -> bool:
    return bool(_FILENAME.fullmatch(name))


def output_files(xml_doc_in: str | bytes | None) -> list[tuple[str, str]]:
    """(physical name, open name) of a result's outputs, in order: the <file_ref>s of its
    xml_doc_in's <result> (get_output3.php's index and get_output.php's file_num count them)."""
    if isinstance(xml_doc_in, bytes):
        xml_doc_in = xml_doc_in.decode("utf-8", "replace")
    try:
        root = ET.fromstring(f"<a>{xml_doc_in or ''}</a>")
    except ET.ParseError:
        return []
    result = root.find("result")
    if result is None:
        return []
    return [((ref.findtext("file_name") or "").strip(), (ref.findtext("open_name") or "").strip())
            for ref in result.findall("file_ref")]


def open_names(xml_doc_in: str | bytes | None) -> list[str]:
    """The open names of a result's outputs, in order (get_output3.php's index counts them)."""
    return [open_name for _, open_name in output_files(xml_doc_in)]


def output_file(batch: int, wu_name: str, xml_doc_in: str | bytes | None, index: int) -> tuple[str | None, str]:
    """(path under results/, or None; why not) of output `index` of a result of job wu_name."""
    names = open_names(xml_doc_in)
    if index >= len(names):
        return None, f"the job has {len(names)} output file(s): index {index} is none of them"
    if not valid_filename(wu_name) or not valid_filename(names[index]):
        return None, "the job's or the output's name is not a plain file name"
    return bj.output_name(batch, wu_name, names[index]), ""


def zip_name(batch: int) -> str:
    return f"batch_{batch}.zip"


def zip_members(entries: Iterable[str]) -> list[str]:
    """The files of results/<batch>/ a batch's zip holds, in order, under their own names (as
    BOINC's `zip -q batch_B.zip *` had them: hidden ones left out)."""
    return sorted(e for e in entries if not e.startswith(".") and "/" not in e)


# -- get_output.php: BOINC's remote-submission clients --------------------------------------------
BOINC_COMMANDS = ("result_file", "batch_files", "workunit_file", "workunit_files")
ERROR = "ERROR: "  # how get_output.php's refusals begin (return_error)
UPLOAD, RESULTS_AREA = "upload", "results"

# The batch owner's id and authenticator come with each thing asked for (NULL: no such row).
_OWNER = "LEFT JOIN batch b ON b.id=w.batch LEFT JOIN user u ON u.id=b.user_id"
RESULT_BY_NAME = ("SELECT r.id, r.name, r.xml_doc_in, w.name, w.batch, w.canonical_resultid, b.user_id, "
                  f"u.authenticator FROM result r JOIN workunit w ON w.id=r.workunitid {_OWNER} WHERE r.name=%s")
_WORKUNIT = ("SELECT w.id, w.name, w.batch, w.canonical_resultid, b.user_id, u.authenticator "
             f"FROM workunit w {_OWNER} ")
WORKUNIT_BY_NAME = _WORKUNIT + "WHERE w.name=%s"
WORKUNIT_BY_ID = _WORKUNIT + "WHERE w.id=%s"
_BATCH = "SELECT b.id, b.user_id, u.authenticator FROM batch b LEFT JOIN user u ON u.id=b.user_id "
BATCH_BY_ID = _BATCH + "WHERE b.id=%s"
BATCH_BY_NAME = _BATCH + "WHERE b.name=%s ORDER BY b.id LIMIT 1"
RESULT_DOC = "SELECT xml_doc_in FROM result WHERE id=%s"
# The jobs of a batch with a canonical result, and that result's outputs.
BATCH_CANONICAL = ("SELECT w.name, w.batch, r.xml_doc_in FROM workunit w JOIN result r ON r.id=w.canonical_resultid "
                   "WHERE w.batch=%s AND w.canonical_resultid<>0 ORDER BY w.id")


@dataclass(frozen=True)
class BoincOutputRequest:
    """get_output.php's request: its cmd, auth_str and what it names."""
    cmd: str
    auth_str: str
    result_name: str = ""
    wu_name: str = ""
    file_num: int = 0
    batch_id: int = 0
    batch_name: str = ""
    wu_id: int = 0


def boinc_output_request(query: str) -> BoincOutputRequest:
    """get_output.php's query string, with the fields each cmd reads (get_str, get_int)."""
    fields = query_fields(query)
    cmd = _one(fields, "cmd")
    if cmd not in BOINC_COMMANDS:
        raise BadRequest("bad command: cmd must be result_file, batch_files, workunit_file or workunit_files")
    auth = _one(fields, "auth_str")
    if cmd == "result_file":
        return BoincOutputRequest(cmd, auth, result_name=_one(fields, "result_name"),
                                  file_num=_id(fields, "file_num"))
    if cmd == "workunit_file":
        return BoincOutputRequest(cmd, auth, wu_name=_one(fields, "wu_name"), file_num=_id(fields, "file_num"))
    if cmd == "workunit_files":
        return BoincOutputRequest(cmd, auth, wu_id=_id(fields, "wu_id"))
    if fields.get("batch_id", [""]) != [""]:
        return BoincOutputRequest(cmd, auth, batch_id=_id(fields, "batch_id"))
    name = _one(fields, "batch_name") if "batch_name" in fields else ""
    if not name:
        raise BadRequest("say which batch: batch_id (or batch_name)")
    return BoincOutputRequest(cmd, auth, batch_name=name)


def auth_str(authenticator: str, subject: str | int) -> str:
    """md5(authenticator . subject) in hex: what BOINC's clients send as auth_str for a result
    (its name), a batch or a workunit (their ids)."""
    return hashlib.md5((authenticator + str(subject)).encode()).hexdigest()


def boinc_auth_ok(request: BoincOutputRequest, owner_authenticator: str | None, subject: str | int) -> bool:
    """Whether the request's auth_str is the one the batch owner's authenticator makes for
    `subject` (workunit_file: the authenticator itself)."""
    if not owner_authenticator:
        return False
    expected = owner_authenticator if request.cmd == "workunit_file" else auth_str(owner_authenticator, subject)
    return hmac.compare_digest(expected.encode(), request.auth_str.encode())


def owner_problem(batch: int, user_id: int | None, authenticator: str | None) -> str | None:
    """Why a thing of batch `batch` has no owner whose authenticator could sign for it
    (user_id None: no batch row; authenticator None: no such user, as user 0 of `boincserver
    submit`'s batches), worded as get_output.php's "no batch", "no user"; None: it has one."""
    if user_id is None:
        return f"no batch {batch}"
    if not authenticator:
        return f"no user {user_id}"
    return None


def output_places(batch: int, wu_name: str, canonical: bool, phys_name: str, open_name: str,
                  fanout: int) -> list[tuple[str, str]]:
    """Where one output of a result may be, in the order to look: (UPLOAD, path under the
    upload folder), then, for the job's canonical result, (RESULTS_AREA, path under results/).
    No place for a name that is not a plain file name."""
    if not valid_filename(phys_name):
        return []
    places = [(UPLOAD, bj.dir_hier_path(phys_name, fanout))]
    if canonical and valid_filename(wu_name) and valid_filename(open_name):
        places.append((RESULTS_AREA, bj.output_name(batch, wu_name, open_name)))
    return places

