"""`boincserver-volunteer`: a volunteer's BOINC client, in the volunteer image.

`run` (the image's command) checks the environment, writes cc_config.xml and, when given a project
and a key, the project's account file into the data folder, then becomes the client
(`boinc --dir DATA --gui_rpc_port PORT`), whose log is the container's. `status` prints one JSON
object: {"client", "docker", "docker_problem", "projects", "tasks"} (boinc/client.py parses what
boinccmd says; boinccmd runs in the data folder, where the client keeps its GUI RPC password).

Environment:
  BOINC_DATA_DIR          the client's folder, absolute; bind-mounted from the host at this same
                          path, because docker_wrapper mounts a task's "./" and the host's engine
                          resolves that path on the host
  BOINC_GUI_RPC_PORT      the client's GUI RPC port (default 31416; one per client on a host)
  BOINC_PROJECT_URL       the project to attach to (with BOINC_ACCOUNT_KEY_FILE; both optional)
  BOINC_ACCOUNT_KEY_FILE  a file holding the account key (e.g. a mounted secret: never on argv)

Exit codes: 0 done, 2 no such command, 3 a problem to fix (the message is on stderr as
"boincserver-volunteer: ..."; `run` then starts no client).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

from boincserver.boinc import client
from boincserver.container import common
from boincserver.container.common import Refused

NAME = "boincserver-volunteer"
USER_MISTAKE = 3
CLIENT_PROGRAM = "boinc"
BOINCCMD = "boinccmd"


@dataclass(frozen=True)
class Volunteer:
    """Where the client keeps its files and how boinccmd reaches it."""

    data_dir: Path
    gui_rpc_port: int

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> "Volunteer":
        data_dir = environ.get("BOINC_DATA_DIR", "").strip()
        if not data_dir:
            raise Refused("BOINC_DATA_DIR is not set: the client's data folder, bind-mounted from the host "
                          "at this same path")
        if not os.path.isabs(data_dir):
            raise Refused(f"BOINC_DATA_DIR={data_dir!r} is not an absolute path: docker_wrapper's containers "
                          "mount a task's folder by the path the client sees, which the host's engine must "
                          "find on the host (mount it with -v /same/path:/same/path)")
        port = environ.get("BOINC_GUI_RPC_PORT", "").strip() or str(client.DEFAULT_GUI_RPC_PORT)
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise Refused(f"BOINC_GUI_RPC_PORT={port!r} is not a port number (1-65535)")
        return cls(Path(data_dir), int(port))

    def boinccmd(self, *args: str) -> str:
        """boinccmd's output, run in the data folder (it reads gui_rpc_auth.cfg from its cwd)."""
        return common.run([BOINCCMD, "--host", f"127.0.0.1:{self.gui_rpc_port}", *args], cwd=self.data_dir)


def project_and_key(environ: dict[str, str]) -> tuple[str, str] | None:
    """(URL, key) to attach with, or None when neither is given."""
    url = environ.get("BOINC_PROJECT_URL", "").strip()
    key_file = environ.get("BOINC_ACCOUNT_KEY_FILE", "").strip()
    if not url and not key_file:
        return None
    if not url or not key_file:
        given, missing = ("BOINC_PROJECT_URL", "BOINC_ACCOUNT_KEY_FILE") if url else \
            ("BOINC_ACCOUNT_KEY_FILE", "BOINC_PROJECT_URL")
        raise Refused(f"{given} is set but {missing} is not: give both (the project and the file holding "
                      "its account key) or neither")
    try:
        client.check_master_url(url)
    except client.ClientError as exc:
        raise Refused(f"BOINC_PROJECT_URL: {exc}") from None
    try:
        key = Path(key_file).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"BOINC_ACCOUNT_KEY_FILE {key_file} cannot be read ({exc.__class__.__name__}: "
                      f"{getattr(exc, 'strerror', None) or exc}): mount the file that holds the account key") from None
    try:
        client.check_account_key(key)
    except client.ClientError as exc:
        # The key itself is never shown.
        raise Refused(f"BOINC_ACCOUNT_KEY_FILE {key_file}: {exc}") from None
    return url, key


def write_if_changed(path: Path, text: str, mode: int) -> bool:
    """Write `text` to `path` with `mode` unless it holds it already; True if written."""
    if path.is_file() and path.read_text() == text:
        path.chmod(mode)
        return False
    tmp = path.with_name(path.name + ".boincserver-tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return True


def prepare(environ: dict[str, str], out: IO[str]) -> Volunteer:
    """Check the environment and write the client's start-up files; what `run` then starts."""
    volunteer = Volunteer.from_env(environ)
    attach = project_and_key(environ)
    volunteer.data_dir.mkdir(parents=True, exist_ok=True)
    write_if_changed(volunteer.data_dir / "cc_config.xml",
                     client.cc_config_xml(allow_multiple_clients=True, skip_cpu_benchmarks=True,
                                          log_flags=client.VOLUNTEER_LOG_FLAGS), 0o644)
    prefs = volunteer.data_dir / "global_prefs_override.xml"
    if not prefs.exists():  # once: later edits are the volunteer's choice
        write_if_changed(prefs, client.global_prefs_override_xml(), 0o644)
    if attach:
        url, key = attach
        account = volunteer.data_dir / client.account_file_name(url)
        # The client rewrites its account file after each scheduler reply (adding the project's
        # preferences): leave it alone while it holds this URL and key.
        have = client.account_key_in(account.read_text()) if account.is_file() else None
        if have != (url, key):
            write_if_changed(account, client.account_xml(url, key), 0o600)
            print(f"{NAME}: attaching to {url} ({account.name})", file=out, flush=True)
        account.chmod(0o600)
    return volunteer


def run(environ: dict[str, str], out: IO[str], exec_client: Callable[[str, list[str]], None]) -> None:
    volunteer = prepare(environ, out)
    argv = [CLIENT_PROGRAM, "--dir", str(volunteer.data_dir), "--gui_rpc_port", str(volunteer.gui_rpc_port)]
    print(f"{NAME}: starting {' '.join(argv)}", file=out, flush=True)
    exec_client(CLIENT_PROGRAM, argv)


def status(environ: dict[str, str]) -> dict:
    volunteer = Volunteer.from_env(environ)
    version = client.parse_client_version(volunteer.boinccmd("--client_version"))
    projects = client.parse_project_status(volunteer.boinccmd("--get_project_status"))
    tasks = client.parse_tasks(volunteer.boinccmd("--get_tasks"))
    # This start's event log first; client_state.xml (which outlives the log's buffer) after.
    docker, problem = client.docker_in_messages(client.parse_messages(volunteer.boinccmd("--get_messages", "0")))
    state_file = volunteer.data_dir / "client_state.xml"
    if docker is None and problem is None and state_file.is_file():
        docker = client.docker_in_client_state(state_file.read_text(errors="replace"))
    return {"client": version, "docker": docker, "docker_problem": problem, "projects": projects, "tasks": tasks}


COMMANDS = ("run", "status")


def main(argv: list[str] | None = None, *, environ: dict[str, str] | None = None, out: IO[str] | None = None,
         err: IO[str] | None = None, exec_client: Callable[[str, list[str]], None] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    environ = dict(os.environ) if environ is None else environ
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(f"usage: {NAME} {'|'.join(COMMANDS)}", file=err)
        return 2
    try:
        if argv[0] == "run":
            run(environ, out, exec_client or os.execvp)
        else:
            out.write(json.dumps(status(environ)) + "\n")
            out.flush()
    except Refused as exc:
        print(f"{NAME}: {exc}", file=err, flush=True)
        return USER_MISTAKE
    return 0
