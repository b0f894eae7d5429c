"""BOINC's remote job submission as a submitter's machine speaks it: the requests of
html/user/submit_rpc_handler.php and html/user/job_file.php, and their replies. Texts built
and read here; sent elsewhere (boincserver/remote.py).

Facts from the pinned server source (html/user/submit_rpc_handler.php, job_file.php;
html/inc/submit_util.inc, util_basic.inc xml_error, xml.inc xml_header):

- Each call is an HTTP POST of one form field, `request`: an XML document whose root names the
  call and holds <authenticator> (the account's; check_remote_submit_permissions looks the user
  up by it). The reply is XML under a root of the same name, or, on refusal,
  <error><error_num>-1</error_num><error_msg>TEXT</error_msg></error> inside it. TEXT is not
  escaped (it may hold create_work's own words with < and &), so it is read by its tags, not by
  an XML parser. The declaration says ISO-8859-1 but names come back as they were sent (UTF-8).
- Inputs travel apart from the batch: query_files names files by their physical names and
  answers the indices of those absent (<absent_files><file>I</file>...); upload_files takes them
  as multipart attachments, in the request's <phys_name> order, and puts each into the download
  hierarchy. A physical name is chosen by the submitter and must never get a second content
  (the handler refuses "file immutability violation"); jf_<md5> of the content is BOINC's own
  choice (submit_util.inc job_file_name) and ours. Both record a job_file row and, with a
  <batch_id>, a batch_file_assoc row (the table of db/schema_condor.sql, which make_project does
  not create: boincserver creates it).
- create_batch makes an empty batch (state init) of an app and answers <batch_id>;
  submit_batch with that <batch_id> adds the jobs and sets the batch in progress. Its jobs are
  <job>s with <name>, <command_line>, <priority> and <input_file><mode>local_staged</mode>
  <source>PHYSICAL NAME</source></input_file> each; <job_params> holds the batch's
  rsc_fpops_est, rsc_fpops_bound, rsc_memory_bound, rsc_disk_bound and delay_bound. The handler
  checks each job's number of inputs against the app's input template, then runs one
  create_work for the batch: a job's command line is put inside double quotes there, so it
  cannot hold one; create_work stops at the first job it cannot make, keeping those before.
- query_batches lists the account's batches but retired ones; query_batch one batch with its
  jobs (<job><id><name><canonical_instance_id>); abort_batch cancels the jobs not done;
  retire_batch marks it retired (BATCH_STATE_RETIRED) for clean-up. A batch is COMPLETE when
  every job has a canonical result, which may be before the assimilator has moved its outputs.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterable
from xml.sax.saxutils import escape

HANDLER = "submit_rpc_handler.php"
FILE_HANDLER = "job_file.php"
LOCAL_STAGED = "local_staged"
# What boincserver's client sends in one upload_files request; images/apache/php-submit.ini
# raises PHP's limits (max_file_uploads, post_max_size) above these.
MAX_FILES_PER_UPLOAD = 50
MAX_UPLOAD_BYTES = 512 << 20
MAX_QUERY_NAMES = 1000  # physical names per query_files
# create_batch, submit_batch and the job_params that BOINC's remote submission takes.
JOB_PARAMS = ("rsc_fpops_est", "rsc_fpops_bound", "rsc_memory_bound", "rsc_disk_bound", "delay_bound")
BATCH_STATES = {0: "init", 1: "in progress", 2: "complete", 3: "aborted", 4: "retired"}


class RpcRefused(Exception):
    """The handler's <error>: its message as BOINC wrote it."""

    def __init__(self, call: str, message: str):
        super().__init__(message)
        self.call, self.message = call, message


class RpcGarbled(ValueError):
    """A reply that is not what BOINC's handlers send (a web page, a PHP error, nothing)."""


@dataclass(frozen=True)
class RemoteJob:
    name: str
    inputs: tuple[str, ...]  # physical names, in the app's order
    command_line: str | None = None
    priority: int | None = None


def _e(value) -> str:
    return escape(str(value))


def _request(call: str, authenticator: str, body: str = "") -> str:
    return f"<{call}>\n<authenticator>{_e(authenticator)}</authenticator>\n{body}</{call}>\n"


def create_batch(authenticator: str, app: str, batch_name: str, expire_time: float = 0) -> str:
    return _request("create_batch", authenticator, f"<app_name>{_e(app)}</app_name>\n"
                    f"<batch_name>{_e(batch_name)}</batch_name>\n<expire_time>{expire_time:.0f}</expire_time>\n")


def check_command_line(command_line: str) -> str:
    """A command line the handler can pass on (it wraps it in double quotes for create_work)."""
    if '"' in command_line:
        raise ValueError("a remote job's command line cannot hold a double quote (BOINC's handler puts it "
                         "inside double quotes for create_work); use single quotes")
    return command_line


def job_xml(job: RemoteJob) -> str:
    parts = [f"<job>\n<name>{_e(job.name)}</name>\n"]
    if job.command_line:
        parts.append(f"<command_line>{_e(check_command_line(job.command_line))}</command_line>\n")
    if job.priority is not None:
        parts.append(f"<priority>{int(job.priority)}</priority>\n")
    for name in job.inputs:
        parts.append(f"<input_file>\n<mode>{LOCAL_STAGED}</mode>\n<source>{_e(name)}</source>\n</input_file>\n")
    parts.append("</job>\n")
    return "".join(parts)


def submit_batch(authenticator: str, app: str, batch_id: int, jobs: Iterable[RemoteJob],
                 job_params: dict | None = None, priority: int | None = None) -> str:
    """The submit_batch request: the jobs into the batch create_batch made."""
    params = "".join(f"<{k}>{float(v):.17g}</{k}>\n" for k, v in (job_params or {}).items() if v is not None)
    unknown = set(job_params or {}) - set(JOB_PARAMS)
    if unknown:
        raise ValueError(f"not a job parameter of remote submission: {', '.join(sorted(unknown))}")
    head = (f"<batch>\n<app_name>{_e(app)}</app_name>\n<batch_id>{int(batch_id)}</batch_id>\n"
            + (f"<priority>{int(priority)}</priority>\n" if priority is not None else "")
            + (f"<job_params>\n{params}</job_params>\n" if params else ""))
    return _request("submit_batch", authenticator, head + "".join(job_xml(j) for j in jobs) + "</batch>\n")


def batch_call(call: str, authenticator: str, batch_id: int, **flags: bool) -> str:
    """query_batch, abort_batch or retire_batch of one batch (flags: get_cpu_time, get_job_details)."""
    body = f"<batch_id>{int(batch_id)}</batch_id>\n" + "".join(
        f"<{k}>{int(v)}</{k}>\n" for k, v in flags.items())
    return _request(call, authenticator, body)


def query_batches(authenticator: str) -> str:
    return _request("query_batches", authenticator, "<get_cpu_time>0</get_cpu_time>\n")


def file_call(call: str, authenticator: str, phys_names: Iterable[str], batch_id: int = 0,
              delete_time: float = 0) -> str:
    """query_files or upload_files for these physical names."""
    body = f"<batch_id>{int(batch_id)}</batch_id>\n<delete_time>{delete_time:.0f}</delete_time>\n" + "".join(
        f"<phys_name>{_e(n)}</phys_name>\n" for n in phys_names)
    return _request(call, authenticator, body)


# -- replies --------------------------------------------------------------------------------------
_ERROR = re.compile(r"<error>\s*<error_num>(-?\d+)</error_num>\s*<error_msg>(.*?)</error_msg>", re.S)


def reply(call: str, body: bytes) -> ET.Element:
    """The reply's root element; RpcRefused for BOINC's <error>, RpcGarbled for anything else."""
    text = body.decode("utf-8", "replace")
    refused = _ERROR.search(text)
    if refused:
        raise RpcRefused(call, refused.group(2).strip())
    start, end = text.find(f"<{call}>"), text.rfind(f"</{call}>")
    if start < 0 or end < 0:
        raise RpcGarbled(f"{call}: not a reply of BOINC's handler: {text.strip()[:300]!r}")
    try:
        return ET.fromstring(text[start:end + len(call) + 3])
    except ET.ParseError as exc:
        raise RpcGarbled(f"{call}: unreadable reply ({exc}): {text[start:start + 300]!r}") from None


def batch_id_of(root: ET.Element) -> int:
    found = root.findtext("batch_id")
    if not found or not found.strip().isdigit():
        raise RpcGarbled(f"{root.tag}: no <batch_id> in the reply")
    return int(found)


def absent_files(root: ET.Element) -> list[int]:
    """query_files' answer: the indices of the names it does not have."""
    return [int(f.text) for f in root.iter("file") if f.text and f.text.strip().isdigit()]


def succeeded(root: ET.Element) -> bool:
    return root.find("success") is not None


def _number(el: ET.Element, tag: str, kind=float):
    try:
        return kind(float(el.findtext(tag) or 0))
    except ValueError:
        return kind(0)


def batches(root: ET.Element) -> list[dict]:
    """query_batches' <batch>es as `batch list` shows them (BOINC's counts: jobs, errors)."""
    out = []
    for b in root.iter("batch"):
        njobs, failed = _number(b, "njobs", int), _number(b, "nerror_jobs", int)
        state = _number(b, "state", int)
        out.append({"id": _number(b, "id", int), "name": b.findtext("name") or "", "app": b.findtext("app_name"),
                    "created": _number(b, "create_time", int), "jobs": njobs, "failed": failed,
                    "fraction_done": _number(b, "fraction_done"), "state": BATCH_STATES.get(state, str(state))})
    return out


def job_ids(root: ET.Element) -> dict[str, int]:
    """query_batch's jobs: name -> workunit id."""
    return {j.findtext("name") or "": _number(j, "id", int) for j in root.iter("job")}
