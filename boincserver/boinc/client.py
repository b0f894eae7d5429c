"""The BOINC client (8.2) as a volunteer runs it: the files it reads at start-up (cc_config.xml,
account_<project>.xml), the weak account key it attaches with, and what boinccmd and
client_state.xml say about its projects, tasks and Docker.

Facts from BOINC's client: project folder names (lib/url.cpp escape_project_url), master URLs
(valid_master_url, canonicalize_master_url), account files (client/cs_account.cpp), weak keys
(html/inc/user.inc), boinccmd's text output (lib/gui_rpc_client_print.cpp, client/boinc_cmd.cpp),
host_info's Docker fields (lib/hostinfo.cpp, lib/common_defs.h DOCKER_TYPE).
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable
from xml.sax.saxutils import escape

# The client's default GUI RPC port; several clients on one host (network host) need their own.
DEFAULT_GUI_RPC_PORT = 31416
# client_state.xml's <docker_type>: lib/common_defs.h enum DOCKER_TYPE {NONE, DOCKER, PODMAN}.
DOCKER_TYPES = {1: "docker", 2: "podman"}
# An authenticator is 32 hex digits, a weak key "<user id>_<32 hex digits>"; the client keeps 256 bytes.
ACCOUNT_KEY = re.compile(r"[A-Za-z0-9_]{1,255}")
RECORD_START = re.compile(r"^\d+\) -+$")
# "   key: value" (the value may be empty: "   team_name: "); keys hold no ":".
FIELD_LINE = re.compile(r"^\s+([^:\s][^:]*):(?:\s(.*))?$")
CLIENT_VERSION_LINE = re.compile(r"^Client version: (\d+\.\d+\.\d+)$", re.M)
# boinccmd --get_messages: "<seqno>: <time> (<priority>) [<project>] <body>"
MESSAGE_LINE = re.compile(r"^(\d+): (.*?) \((\w+)\) \[(.*?)\] (.*)$")
DOCKER_FOUND = re.compile(r"^(Docker|podman): version (\S+) \((Docker|podman)\)$")
DOCKER_CHECK_FAILED = re.compile(r"^(Docker|podman) found but 'hello-world' test failed$")


class ClientError(ValueError):
    """A value the BOINC client would not accept; the message says which and why."""


# -- project URLs and account files ---------------------------------------------------------
def escape_project_url(url: str) -> str:
    """The name of a project's folder under projects/ (and of its account file): the URL without
    its scheme, every byte but [A-Za-z0-9._-] made "_", one trailing "_" removed."""
    rest = url.split("://", 1)[1] if "://" in url else url
    out = "".join(chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "._-") else "_"
                  for b in rest.encode())
    return out[:-1] if out.endswith("_") else out


def canonical_master_url(url: str) -> str:
    """The URL as the client stores it: http(s)://, no doubled "/", a trailing "/", the host in
    lowercase (any other scheme becomes http, as in the client)."""
    https = url.startswith("https://")
    rest = url.split("://", 1)[1] if "://" in url else url
    while "//" in rest:
        rest = rest.replace("//", "/")
    if not rest.endswith("/"):
        rest += "/"
    host, slash, path = rest.partition("/")
    return f"http{'s' if https else ''}://{host.lower()}{slash}{path}"


def check_master_url(url: str) -> str:
    """The project URL if the client takes it as a master URL as written, else ClientError: it
    must be http(s)://, have a dot in the host part (so not "localhost"), end with "/", and be
    canonical (the account file's name and the project's folder come from it)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ClientError(f"project URL {url!r} must start with http:// or https://")
    after = url.split("://", 1)[1]
    # As valid_master_url: a "." not first, then a "/" not right after it, and a final "/".
    dot = after.find(".")
    if dot <= 0 or after.find("/", dot + 1) <= dot + 1:
        raise ClientError(f"project URL {url!r} needs a dot in its host and a path, e.g. "
                          "http://127.0.0.1/myproject/ (the client refuses http://localhost/...)")
    if not url.endswith("/"):
        raise ClientError(f"project URL {url!r} must end with '/': {url}/")
    canonical = canonical_master_url(url)
    if canonical != url:
        raise ClientError(f"project URL {url!r} is not in the client's form: write {canonical}")
    return url


def check_account_key(key: str) -> str:
    if not isinstance(key, str) or not ACCOUNT_KEY.fullmatch(key):
        raise ClientError("the account key must be 1 to 255 letters, digits or '_' (an authenticator "
                          "or a weak account key such as 12_0123abcd...), on one line")
    return key


def weak_account_key(user_id: int, authenticator: str, passwd_hash: str) -> str:
    """The key a volunteer's client can attach with in place of the authenticator: the user's id,
    "_", and the md5 of authenticator + password hash (so it changes with the password)."""
    return f"{int(user_id)}_" + hashlib.md5((authenticator + passwd_hash).encode()).hexdigest()


def account_file_name(url: str) -> str:
    return f"account_{escape_project_url(url)}.xml"


def account_xml(url: str, key: str) -> str:
    """An account file that attaches the client to the project at its next start."""
    return ("<account>\n"
            f"    <master_url>{escape(check_master_url(url))}</master_url>\n"
            f"    <authenticator>{escape(check_account_key(key))}</authenticator>\n"
            "</account>\n")


def account_key_in(account_file_text: str) -> tuple[str, str] | None:
    """(master URL, authenticator) of an account file, or None if it has not both."""
    url = re.search(r"<master_url>\s*(.*?)\s*</master_url>", account_file_text, re.S)
    key = re.search(r"<authenticator>\s*(.*?)\s*</authenticator>", account_file_text, re.S)
    return (url.group(1), key.group(1)) if url and key else None


def cc_config_xml(*, allow_multiple_clients: bool = True, skip_cpu_benchmarks: bool = False,
                  log_flags: Iterable[str] = ()) -> str:
    """cc_config.xml. allow_multiple_clients also keeps the client from removing, at start-up,
    every boinc__* container on the engine that its own tasks do not use: with it, clients
    sharing one engine leave each other's containers alone."""
    options = [("allow_multiple_clients", allow_multiple_clients), ("skip_cpu_benchmarks", skip_cpu_benchmarks)]
    lines = ["<cc_config>", "  <options>"]
    lines += [f"    <{name}>1</{name}>" for name, on in options if on]
    lines.append("  </options>")
    flags = list(log_flags)
    if flags:
        lines += ["  <log_flags>", *(f"    <{flag}>1</{flag}>" for flag in flags), "  </log_flags>"]
    return "\n".join(lines + ["</cc_config>", ""])


# A machine given to the project: compute whenever the client runs, whatever else the machine
# does. The client's defaults suspend while the user is active or other programs use more than
# a quarter of the CPU, which on a server or a node running other containers is most of the time.
DEDICATED_PREFERENCES = (
    ("run_on_batteries", "1"), ("run_if_user_active", "1"), ("run_gpu_if_user_active", "1"),
    ("idle_time_to_run", "0"), ("suspend_if_no_recent_input", "0"), ("suspend_cpu_usage", "0"),
    ("cpu_usage_limit", "100"), ("max_ncpus_pct", "100"),
    # A small buffer: fetch work as jobs arrive instead of hoarding hours of it.
    ("work_buf_min_days", "0.01"), ("work_buf_additional_days", "0"),
)
# The event log lines that show a job's way: scheduler requests, transfers, task starts and ends.
VOLUNTEER_LOG_FLAGS = ("sched_op_debug", "file_xfer", "task")


def global_prefs_override_xml(preferences=DEDICATED_PREFERENCES) -> str:
    """global_prefs_override.xml: local preferences that win over the project's web ones."""
    return "\n".join(["<global_preferences>", *(f"  <{k}>{v}</{k}>" for k, v in preferences),
                      "</global_preferences>", ""])


# -- what boinccmd prints ---------------------------------------------------------------------
def parse_client_version(text: str) -> str | None:
    """`boinccmd --client_version` -> "8.2.15"."""
    found = CLIENT_VERSION_LINE.search(text)
    return found.group(1) if found else None


def parse_records(text: str) -> list[dict[str, str]]:
    """The numbered records ("1) -----------" then "   key: value" lines) of --get_project_status,
    --get_tasks or --get_state. A key's first value in a record is kept: a project's GUI URLs
    repeat "name" after the project's own."""
    records: list[dict[str, str]] = []
    for line in text.splitlines():
        if RECORD_START.match(line.strip()):
            records.append({})
        elif records and (field := FIELD_LINE.match(line)):
            records[-1].setdefault(field.group(1), (field.group(2) or "").strip())
    return records


def _yes(value: str | None) -> bool:
    return value == "yes"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_project_status(text: str) -> list[dict]:
    """`boinccmd --get_project_status`: one dict per attached project."""
    return [{
        "url": r.get("master URL", ""),
        "name": r.get("name", ""),
        "user_name": r.get("user_name", ""),
        "jobs_succeeded": _int(r.get("jobs succeeded")),
        "jobs_failed": _int(r.get("jobs failed")),
        "rpc_failures": _int(r.get("nrpc_failures")),
        "scheduler_rpc_pending": _yes(r.get("scheduler RPC pending")),
        "suspended": _yes(r.get("suspended via GUI")),
        "no_new_work": _yes(r.get("don't request more work")),
        "ended": _yes(r.get("ended")),
        "host_total_credit": _float(r.get("host_total_credit")),
    } for r in parse_records(text)]


def parse_tasks(text: str) -> list[dict]:
    """`boinccmd --get_tasks`: one dict per task. state is the result's ("downloading",
    "downloaded", "compute error", "uploading", "uploaded", "aborted", "upload failed");
    process is its process's ("executing", "suspended", "exited", ...); exit_status is known
    once the task ended."""
    tasks = []
    for r in parse_records(text):
        elapsed = r.get("final elapsed time", r.get("elapsed task time"))
        exit_status = _int(r.get("exit_status"))
        fraction_done = _float(r.get("fraction done"))
        if fraction_done is None:
            # Printed only while the task has a process; a task that ended well is done.
            fraction_done = 1.0 if exit_status == 0 and r.get("state") in ("uploading", "uploaded") else 0.0
        tasks.append({
            "name": r.get("name", ""),
            "workunit": r.get("WU name", ""),
            "project": r.get("project URL", ""),
            "state": r.get("state", ""),
            "process": r.get("active_task_state", "").lower(),
            "fraction_done": fraction_done,
            "elapsed_seconds": _float(elapsed),
            "ready_to_report": _yes(r.get("ready to report")),
            "exit_status": exit_status,
        })
    return tasks


def parse_messages(text: str) -> list[dict]:
    """`boinccmd --get_messages`: {"seqno", "time", "priority", "project", "body"} per line."""
    out = []
    for line in text.splitlines():
        found = MESSAGE_LINE.match(line)
        if found:
            seqno, time, priority, project, body = found.groups()
            out.append({"seqno": int(seqno), "time": time, "priority": priority, "project": project,
                        "body": body})
    return out


# -- Docker, as the client found it at start-up -------------------------------------------------
def docker_in_client_state(client_state_xml: str) -> dict | None:
    """{"version", "type"} from client_state.xml's <host_info> (the client writes what its
    start-up check found; nothing when `docker --version` or the hello-world run failed)."""
    host_info = re.search(r"<host_info>(.*?)</host_info>", client_state_xml, re.S)
    if not host_info:
        return None
    version = re.search(r"<docker_version>\s*(.*?)\s*</docker_version>", host_info.group(1), re.S)
    kind = re.search(r"<docker_type>\s*(\d+)\s*</docker_type>", host_info.group(1))
    if not version or not version.group(1):
        return None
    return {"version": version.group(1), "type": DOCKER_TYPES.get(int(kind.group(1)) if kind else 0, "unknown")}


def docker_in_messages(messages: list[dict]) -> tuple[dict | None, str | None]:
    """What the client's event log says of its last Docker check: ({"version", "type"}, None) when
    it found Docker, (None, the message) when the hello-world run failed, (None, None) else."""
    found: tuple[dict | None, str | None] = (None, None)
    for message in messages:
        if (m := DOCKER_FOUND.match(message["body"])):
            found = ({"version": m.group(2), "type": m.group(3).lower()}, None)
        elif DOCKER_CHECK_FAILED.match(message["body"]):
            found = (None, message["body"])
    return found
