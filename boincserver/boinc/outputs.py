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
"""

from __future__ import annotations

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
ENDPOINTS = (GET_OUTPUT, RESULTS)
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


def open_names(xml_doc_in: str | bytes | None) -> list[str]:
    """The open names of a result's outputs, in order (get_output3.php's index counts them)."""
    if isinstance(xml_doc_in, bytes):
        xml_doc_in = xml_doc_in.decode("utf-8", "replace")
    try:
        root = ET.fromstring(f"<a>{xml_doc_in or ''}</a>")
    except ET.ParseError:
        return []
    result = root.find("result")
    if result is None:
        return []
    return [(ref.findtext("open_name") or "").strip() for ref in result.findall("file_ref")]


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
