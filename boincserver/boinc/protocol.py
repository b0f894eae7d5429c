"""BOINC's client-server protocol as a host speaks it: the scheduler RPC's request and reply,
and file_upload_handler's request and reply. Texts built and parsed here; sent elsewhere.

Facts from the pinned server source (sched/sched_types.cpp SCHEDULER_REQUEST::parse,
SCHEDULER_REPLY::write, HOST::parse, SCHED_DB_RESULT::parse_from_client; sched/handle_request.cpp
authenticate_user; sched/sched_send.cpp; sched/file_upload_handler.cpp; tools/
process_result_template.cpp) and its client (client/cs_scheduler.cpp make_scheduler_request,
client/result.cpp RESULT::write, client/client_types.cpp FILE_INFO, client/file_xfer.cpp
init_upload, client/scheduler_op.cpp):

- The request is <scheduler_request> with the account's authenticator, the hostid of the last
  reply (0 at first: the scheduler then makes a host row and answers its id), an rpc_seqno the
  client raises after each RPC (one lower than the host row's makes the scheduler start a new
  host), the core client's version, work_req_seconds and the CPU's request (cpu_req_secs,
  cpu_req_instances), <host_info> (host_cpid tells hosts of one account apart; p_ncpus,
  p_fpops, m_nbytes, d_free decide what may be sent), finished tasks as <result> elements with
  state 5 (files uploaded) and a <file_info> for each uploaded output, and <other_results>
  naming the tasks still in progress.
- The reply is not strict XML (its first element is unescaped text from config and messages),
  so it is read the way BOINC's own parser reads it: by tags. It carries <hostid> when the
  host is new or moved, one <result_ack><name> per reported result (also for one reported
  twice), the output <file_info>s (name, max_nbytes, <url> or <upload_url>, and an
  <xml_signature> when upload certificates are on), <workunit>s and <result>s whose
  <file_ref>s name the outputs, and optionally <request_delay> and <message>s.
- An upload is one POST: the <data_server_request> header, a line each, ending with <data>
  and a newline, then the file's bytes. With upload certificates the handler checks the
  signature of "<name>N</name><max_nbytes>M</max_nbytes>" (M with no decimals) and refuses a
  file over max_nbytes. The reply is <data_server_reply> with <status> 0 (done), 1
  (transient: retry) or -1 (permanent) and a <message>.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Iterable
from xml.sax.saxutils import escape, unescape

# The client this protocol is spoken as (the volunteer's pinned 8.2.15).
CLIENT_VERSION = (8, 2, 15)
PLATFORM = "x86_64-pc-linux-gnu"
# lib/common_defs.h: a result's client state once its outputs are on the server.
RESULT_FILES_UPLOADED = 5
# file_upload_handler's <status>: 0 done, 1 transient error (retry), -1 permanent error.
UPLOAD_OK, UPLOAD_TRANSIENT, UPLOAD_PERMANENT = 0, 1, -1


class ProtocolError(ValueError):
    """A reply that is not what BOINC's scheduler or upload handler send."""


@dataclass(frozen=True)
class Host:
    """What <host_info> says of a host. host_cpid and domain_name make it one of its own: the
    scheduler matches a new host to an existing one of the account by either."""
    host_cpid: str
    domain_name: str
    p_ncpus: int = 4
    p_fpops: float = 3e9
    p_iops: float = 1e10
    p_membw: float = 1e9
    m_nbytes: float = 8 * 2**30
    m_swap: float = 2 * 2**30
    d_total: float = 500e9
    d_free: float = 200e9
    os_name: str = "Linux"
    os_version: str = "6.1.0"
    p_vendor: str = "GenuineIntel"
    p_model: str = "simulated host"
    ip_addr: str = "127.0.0.1"


def host_cpid(seed: str) -> str:
    """A host's cross-project id: 32 hex digits, as a client makes one, from `seed`."""
    return hashlib.md5(seed.encode()).hexdigest()


@dataclass(frozen=True)
class OutputFile:
    """An output as a host reports it after the upload: <file_info> of the result."""
    name: str
    nbytes: int
    max_nbytes: float
    md5_cksum: str


@dataclass(frozen=True)
class FinishedTask:
    """A task to report: its result's name, its outputs, how it ended."""
    name: str
    outputs: tuple[OutputFile, ...]
    exit_status: int = 0
    cpu_time: float = 0.0
    elapsed_time: float = 0.0
    version_num: int = 0
    platform: str = PLATFORM


def _element(tag: str, value) -> str:
    return f"    <{tag}>{escape(str(value))}</{tag}>\n"


def host_info_xml(host: Host) -> str:
    fields = [("timezone", 0), ("domain_name", host.domain_name), ("ip_addr", host.ip_addr),
              ("host_cpid", host.host_cpid), ("p_ncpus", host.p_ncpus), ("p_vendor", host.p_vendor),
              ("p_model", host.p_model), ("p_fpops", f"{host.p_fpops:f}"), ("p_iops", f"{host.p_iops:f}"),
              ("p_membw", f"{host.p_membw:f}"), ("os_name", host.os_name), ("os_version", host.os_version),
              ("m_nbytes", f"{host.m_nbytes:f}"), ("m_cache", "1048576.000000"), ("m_swap", f"{host.m_swap:f}"),
              ("d_total", f"{host.d_total:f}"), ("d_free", f"{host.d_free:f}")]
    return "<host_info>\n" + "".join(_element(t, v) for t, v in fields) + "</host_info>\n"


def reported_result_xml(task: FinishedTask) -> str:
    """A finished task as the client reports it (RESULT::write to the server): state 5 and
    exit status 0 make the scheduler set outcome success; the <file_info>s become the
    result's xml_doc_out."""
    major, minor, release = CLIENT_VERSION
    text = ("<result>\n" + _element("name", task.name) + _element("final_cpu_time", f"{task.cpu_time:f}")
            + _element("final_elapsed_time", f"{task.elapsed_time:f}") + _element("exit_status", task.exit_status)
            + _element("state", RESULT_FILES_UPLOADED) + _element("platform", task.platform)
            + _element("version_num", task.version_num) + _element("app_version_num", task.version_num)
            + f"<stderr_out>\n<core_client_version>{major}.{minor}.{release}</core_client_version>\n"
              "</stderr_out>\n")
    for f in task.outputs:
        text += ("<file_info>\n" + _element("name", f.name) + _element("nbytes", f"{f.nbytes:f}")
                 + _element("max_nbytes", f"{f.max_nbytes:f}") + _element("md5_cksum", f.md5_cksum)
                 + "</file_info>\n")
    return text + "</result>\n"


def scheduler_request(authenticator: str, host: Host, hostid: int = 0, rpc_seqno: int = 0,
                      work_req_seconds: float = 0.0, cpu_req_instances: float = 0.0,
                      finished: Iterable[FinishedTask] = (), in_progress: Iterable[str] = (),
                      platform: str = PLATFORM) -> bytes:
    """The body of a scheduler RPC (POSTed to the scheduler's URL). A host with no hostid
    yet sends rpc_seqno 0, as the client does."""
    major, minor, release = CLIENT_VERSION
    if not hostid:
        rpc_seqno = 0
    text = ("<scheduler_request>\n" + _element("authenticator", authenticator) + _element("hostid", hostid)
            + _element("rpc_seqno", rpc_seqno) + _element("core_client_major_version", major)
            + _element("core_client_minor_version", minor) + _element("core_client_release", release)
            + _element("resource_share_fraction", "1.000000") + _element("rrs_fraction", "1.000000")
            + _element("prrs_fraction", "1.000000") + _element("duration_correction_factor", "1.000000")
            # Many simulated hosts share one account and one address: each keeps its own row.
            + _element("allow_multiple_clients", 1) + _element("sandbox", 0) + _element("dont_send_work", 0)
            + _element("work_req_seconds", f"{work_req_seconds:f}") + _element("cpu_req_secs", f"{work_req_seconds:f}")
            + _element("cpu_req_instances", f"{cpu_req_instances:f}") + _element("estimated_delay", "0.000000")
            + _element("client_cap_plan_class", 1) + _element("platform_name", platform)
            + host_info_xml(host))
    text += "".join(reported_result_xml(t) for t in finished)
    text += "<app_versions>\n</app_versions>\n<other_results>\n"
    text += "".join(f"    <other_result>\n        <name>{escape(n)}</name>\n    </other_result>\n"
                    for n in in_progress)
    text += "</other_results>\n</scheduler_request>\n"
    return text.encode()


# -- the scheduler's reply ---------------------------------------------------------------------
@dataclass(frozen=True)
class UploadSpec:
    """An output file as the reply describes it: where and how it is uploaded."""
    name: str
    max_nbytes: float
    upload_urls: tuple[str, ...]
    xml_signature: str = ""


@dataclass(frozen=True)
class Task:
    """A result sent to the host: its name, its job's name, the outputs it must upload (file
    names) and the names the app opens them by (the same order)."""
    name: str
    wu_name: str
    report_deadline: int
    outputs: tuple[str, ...]
    open_names: tuple[str, ...] = ()
    version_num: int = 0
    platform: str = ""


# The scheduler's message when it finds no user for the authenticator (handle_request.cpp:352).
ACCOUNT_KEY_REFUSED = "Invalid or missing account key"


@dataclass(frozen=True)
class SchedulerReply:
    hostid: int = 0
    tasks: tuple[Task, ...] = ()
    workunits: tuple[str, ...] = ()
    uploads: dict[str, UploadSpec] = field(default_factory=dict)
    acked: tuple[str, ...] = ()
    request_delay: float = 0.0
    messages: tuple[str, ...] = ()
    project_is_down: bool = False

    @property
    def account_key_refused(self) -> bool:
        """The scheduler found no user with the request's authenticator: its reply for a wrong
        key, and also for a database lost during that lookup (sched/handle_request.cpp:343-362
        does not tell them apart), with a delay of an hour and a notice to re-attach."""
        return any(m.startswith(ACCOUNT_KEY_REFUSED) for m in self.messages)


def _blocks(text: str, tag: str) -> list[str]:
    """The contents of each <tag>...</tag> (outermost, in order), as BOINC's parser finds them."""
    return re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S)


def _value(text: str, tag: str, default: str = "") -> str:
    m = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    return unescape(m.group(1).strip()) if m else default


def _number(text: str, tag: str, kind=float, default=0):
    raw = _value(text, tag)
    try:
        return kind(float(raw)) if kind is int else kind(raw)
    except ValueError:
        return default


def _upload_spec(block: str) -> UploadSpec:
    urls = [unescape(u.strip()) for u in _blocks(block, "upload_url")]
    # A <url> is an upload URL when it names file_upload_handler (FILE_INFO::parse).
    urls += [unescape(u.strip()) for u in _blocks(block, "url") if "file_upload_handler" in u]
    signature = _blocks(block, "xml_signature")
    return UploadSpec(name=_value(block, "name"), max_nbytes=_number(block, "max_nbytes"),
                      upload_urls=tuple(urls), xml_signature=signature[0].strip() if signature else "")


def _task(block: str) -> Task:
    refs = _blocks(block, "file_ref")
    outputs = tuple(_value(ref, "file_name") for ref in refs)
    # The <file_ref>s name files; everything else is read outside them (names are in both).
    outside = re.sub(r"<file_ref>.*?</file_ref>", "", block, flags=re.S)
    return Task(name=_value(outside, "name"), wu_name=_value(outside, "wu_name"),
                report_deadline=_number(outside, "report_deadline", int), outputs=outputs,
                open_names=tuple(_value(ref, "open_name") for ref in refs),
                version_num=_number(outside, "version_num", int), platform=_value(outside, "platform"))


def parse_scheduler_reply(body: bytes | str) -> SchedulerReply:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    start, end = text.find("<scheduler_reply>"), text.rfind("</scheduler_reply>")
    if start < 0 or end < 0:
        raise ProtocolError("not a scheduler reply (no <scheduler_reply> ... </scheduler_reply>): "
                            + text[:200].strip())
    text = text[start + len("<scheduler_reply>"):end]
    # <workunit>s and <app_version>s hold <file_info>-like and <name> elements of their own.
    workunits = _blocks(text, "workunit")
    top = re.sub(r"<(workunit|app_version|app)>.*?</\1>", "", text, flags=re.S)
    file_infos = [_upload_spec(b) for b in _blocks(top, "file_info")]
    uploads = {f.name: f for f in file_infos if f.upload_urls}
    # Results sit at the top level, after the file_infos they refer to.
    results = _blocks(re.sub(r"<file_info>.*?</file_info>", "", top, flags=re.S), "result")
    header = re.sub(r"<(result|result_ack|result_abort|result_abort_if_not_started|file_info)>.*?</\1>",
                    "", top, flags=re.S)
    return SchedulerReply(
        hostid=_number(header, "hostid", int),
        tasks=tuple(_task(b) for b in results),
        workunits=tuple(_value(w, "name") for w in workunits),
        uploads=uploads,
        acked=tuple(_value(b, "name") for b in _blocks(top, "result_ack")),
        request_delay=_number(header, "request_delay"),
        messages=tuple(unescape(m.strip()) for m in re.findall(r"<message[^>]*>(.*?)</message>", header, re.S)),
        project_is_down="<project_is_down" in header,
    )


def scheduler_urls(master_page: str) -> list[str]:
    """The scheduler URLs a project's master page names (schedulers.txt's two forms)."""
    found = [u.strip() for u in re.findall(r"<scheduler>(.*?)</scheduler>", master_page, re.S)]
    found += re.findall(r'<link rel="boinc_scheduler" href="([^"\s>]+)"', master_page)
    return list(dict.fromkeys(unescape(u) for u in found if u))


# -- accounts (html/user/create_account.php) --------------------------------------------------
CREATE_ACCOUNT_PAGE = "create_account.php"


def create_account_params(email: str, password: str, user_name: str) -> dict[str, str]:
    """The query of create_account.php: the password travels as md5(password + lowercase email),
    as the client sends it; an existing account with the same hash answers its authenticator."""
    passwd_hash = hashlib.md5((password + email.lower()).encode()).hexdigest()
    return {"email_addr": email, "passwd_hash": passwd_hash, "user_name": user_name}


def account_authenticator(reply: str) -> str:
    """The authenticator of an <account_out> reply; "" for an <error> reply."""
    return _value(reply, "authenticator") if "<account_out>" in reply else ""


# -- file_upload_handler -------------------------------------------------------------------------
def upload_request(spec: UploadSpec, data: bytes, offset: int = 0) -> bytes:
    """The whole POST body of one upload: the handler reads the header line by line up to
    <data>, then nbytes - offset bytes."""
    major, minor, release = CLIENT_VERSION
    signature = f"<xml_signature>\n{spec.xml_signature}\n</xml_signature>\n" if spec.xml_signature else ""
    header = ("<data_server_request>\n"
              f"    <core_client_major_version>{major}</core_client_major_version>\n"
              f"    <core_client_minor_version>{minor}</core_client_minor_version>\n"
              f"    <core_client_release>{release}</core_client_release>\n"
              "<file_upload>\n<file_info>\n"
              f"<name>{spec.name}</name>\n{signature}"
              f"<max_nbytes>{spec.max_nbytes:.0f}</max_nbytes>\n"
              "</file_info>\n"
              f"<nbytes>{len(data)}</nbytes>\n"
              f"<md5_cksum>{hashlib.md5(data).hexdigest()}</md5_cksum>\n"
              f"<offset>{offset}</offset>\n"
              "<data>\n")
    return header.encode() + data[offset:]


def signed_upload_text(name: str, max_nbytes: float) -> str:
    """What an upload certificate signs (process_result_template.cpp, file_upload_handler.cpp)."""
    return f"<name>{name}</name><max_nbytes>{max_nbytes:.0f}</max_nbytes>"


@dataclass(frozen=True)
class UploadReply:
    status: int
    message: str = ""
    file_size: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == UPLOAD_OK

    @property
    def transient(self) -> bool:
        return self.status == UPLOAD_TRANSIENT


def parse_upload_reply(body: bytes | str) -> UploadReply:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if "<data_server_reply>" not in text:
        raise ProtocolError("not a file_upload_handler reply (no <data_server_reply>): " + text[:200].strip())
    raw = _value(text, "status")
    if not re.fullmatch(r"-?\d+", raw):
        raise ProtocolError(f"file_upload_handler reply without a <status>: {text[:200].strip()}")
    size = _value(text, "file_size")
    return UploadReply(status=int(raw), message=_value(text, "message"),
                       file_size=int(size) if size.isdigit() else None)
