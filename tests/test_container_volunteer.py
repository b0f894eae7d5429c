"""boincserver-volunteer (boincserver.container.volunteer): the volunteer image's program.

`run` is checked up to the exec of the client (recorded, not done); `status` runs a fake
boinccmd from PATH that answers with the real 8.2.15 output of tests/fixtures/.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from boincserver.boinc import client
from boincserver.container import volunteer

FIXTURES = Path(__file__).parent / "fixtures" / "boinc_client_8.2.15"
URL = "http://127.0.0.1:47151/vv_proj/"
KEY = "1_" + "0123456789abcdef" * 2


class Ran:
    def __init__(self, code: int, out: str, err: str, execs: list):
        self.code, self.out, self.err, self.execs = code, out, err, execs


def call(*argv: str, environ: dict[str, str]) -> Ran:
    out, err, execs = io.StringIO(), io.StringIO(), []
    code = volunteer.main(list(argv), environ=environ, out=out, err=err,
                          exec_client=lambda program, args: execs.append((program, args)))
    return Ran(code, out.getvalue(), err.getvalue(), execs)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "volunteer"


@pytest.fixture
def key_file(tmp_path) -> Path:
    path = tmp_path / "secret" / "account-key"
    path.parent.mkdir()
    path.write_text(KEY + "\n")
    return path


# -- run ------------------------------------------------------------------------------------
def test_run_writes_the_start_up_files_and_execs_the_client(data_dir, key_file):
    ran = call("run", environ={"BOINC_DATA_DIR": str(data_dir), "BOINC_GUI_RPC_PORT": "31501",
                               "BOINC_PROJECT_URL": URL, "BOINC_ACCOUNT_KEY_FILE": str(key_file)})
    assert ran.code == 0, ran.err
    assert ran.execs == [("boinc", ["boinc", "--dir", str(data_dir), "--gui_rpc_port", "31501"])]
    assert (data_dir / "cc_config.xml").read_text() == client.cc_config_xml(
        allow_multiple_clients=True, skip_cpu_benchmarks=True, log_flags=client.VOLUNTEER_LOG_FLAGS)
    assert (data_dir / "global_prefs_override.xml").read_text() == client.global_prefs_override_xml()
    account = data_dir / "account_127.0.0.1_47151_vv_proj.xml"
    assert client.account_key_in(account.read_text()) == (URL, KEY)
    assert stat.S_IMODE(account.stat().st_mode) == 0o600
    assert KEY not in ran.out + ran.err  # the key is never printed
    assert f"attaching to {URL}" in ran.out


def test_run_without_a_project_and_with_the_default_port(data_dir):
    ran = call("run", environ={"BOINC_DATA_DIR": str(data_dir)})
    assert ran.code == 0, ran.err
    assert ran.execs == [("boinc", ["boinc", "--dir", str(data_dir), "--gui_rpc_port", "31416"])]
    assert sorted(p.name for p in data_dir.iterdir()) == ["cc_config.xml", "global_prefs_override.xml"]


def test_run_keeps_the_volunteers_own_preferences(data_dir):
    data_dir.mkdir()
    (data_dir / "global_prefs_override.xml").write_text("<global_preferences><max_ncpus_pct>50</max_ncpus_pct></global_preferences>\n")
    assert call("run", environ={"BOINC_DATA_DIR": str(data_dir)}).code == 0
    assert "50" in (data_dir / "global_prefs_override.xml").read_text()


def test_run_keeps_the_account_file_the_client_rewrote(data_dir, key_file):
    env = {"BOINC_DATA_DIR": str(data_dir), "BOINC_PROJECT_URL": URL, "BOINC_ACCOUNT_KEY_FILE": str(key_file)}
    assert call("run", environ=env).code == 0
    account = data_dir / client.account_file_name(URL)
    # What the client writes after a scheduler reply: the same URL and key, and more.
    rewritten = client.account_xml(URL, KEY).replace("</account>", "    <project_name>vv_proj</project_name>\n</account>")
    account.write_text(rewritten)
    account.chmod(0o644)
    ran = call("run", environ=env)
    assert ran.code == 0 and "attaching" not in ran.out
    assert account.read_text() == rewritten
    assert stat.S_IMODE(account.stat().st_mode) == 0o600
    # A new key (the password changed) replaces it.
    key_file.write_text("1_" + "f" * 32)
    assert call("run", environ=env).code == 0
    assert client.account_key_in(account.read_text()) == (URL, "1_" + "f" * 32)


def test_run_overwrites_a_stale_cc_config(data_dir):
    data_dir.mkdir()
    (data_dir / "cc_config.xml").write_text("<cc_config/>\n")
    assert call("run", environ={"BOINC_DATA_DIR": str(data_dir)}).code == 0
    assert "allow_multiple_clients" in (data_dir / "cc_config.xml").read_text()


@pytest.mark.parametrize("environ, says", [
    ({}, "BOINC_DATA_DIR is not set"),
    ({"BOINC_DATA_DIR": "volunteer"}, "BOINC_DATA_DIR='volunteer' is not an absolute path"),
    ({"BOINC_DATA_DIR": "{data}", "BOINC_GUI_RPC_PORT": "http"}, "BOINC_GUI_RPC_PORT='http' is not a port"),
    ({"BOINC_DATA_DIR": "{data}", "BOINC_GUI_RPC_PORT": "70000"}, "is not a port"),
    ({"BOINC_DATA_DIR": "{data}", "BOINC_PROJECT_URL": URL}, "BOINC_PROJECT_URL is set but BOINC_ACCOUNT_KEY_FILE is not"),
    ({"BOINC_DATA_DIR": "{data}", "BOINC_ACCOUNT_KEY_FILE": "{key}"},
     "BOINC_ACCOUNT_KEY_FILE is set but BOINC_PROJECT_URL is not"),
    ({"BOINC_DATA_DIR": "{data}", "BOINC_PROJECT_URL": "http://localhost/p/", "BOINC_ACCOUNT_KEY_FILE": "{key}"},
     "BOINC_PROJECT_URL: project URL 'http://localhost/p/' needs a dot"),
    ({"BOINC_DATA_DIR": "{data}", "BOINC_PROJECT_URL": URL, "BOINC_ACCOUNT_KEY_FILE": "{missing}"},
     "cannot be read (FileNotFoundError"),
    ({"BOINC_DATA_DIR": "{data}", "BOINC_PROJECT_URL": URL, "BOINC_ACCOUNT_KEY_FILE": "{folder}"},
     "cannot be read (IsADirectoryError"),
])
def test_run_refuses_a_bad_environment(tmp_path, data_dir, key_file, environ, says):
    names = {"data": str(data_dir), "key": str(key_file), "missing": str(tmp_path / "no-such-key"),
             "folder": str(key_file.parent)}
    ran = call("run", environ={k: v.format(**names) for k, v in environ.items()})
    assert ran.code == volunteer.USER_MISTAKE
    assert ran.err.startswith("boincserver-volunteer: ") and says in ran.err
    assert len(ran.err.strip().splitlines()) == 1
    assert ran.execs == []
    assert not data_dir.exists()  # nothing written


def test_run_refuses_a_malformed_key_without_showing_it(data_dir, key_file):
    key_file.write_text("not a key <script>\n")
    ran = call("run", environ={"BOINC_DATA_DIR": str(data_dir), "BOINC_PROJECT_URL": URL,
                               "BOINC_ACCOUNT_KEY_FILE": str(key_file)})
    assert ran.code == volunteer.USER_MISTAKE and "account key must be" in ran.err
    assert "script" not in ran.err and ran.execs == []


def test_unknown_command_is_a_usage_error():
    for argv in ([], ["start"], ["run", "extra"]):
        ran = call(*argv, environ={})
        assert ran.code == 2 and ran.err.startswith("usage: boincserver-volunteer run|status")


# -- status, against a fake boinccmd ----------------------------------------------------------
FAKE_BOINCCMD = """#!/bin/sh
# Answers as the 8.2.15 boinccmd did; records where it ran and with what.
echo "$PWD $*" >> "{log}"
[ -f gui_rpc_auth.cfg ] || {{ echo "Can't get RPC password" >&2; exit 1; }}
case "$3" in
  --client_version) cat "{fixtures}/client_version.txt" ;;
  --get_project_status) cat "{fixtures}/get_project_status.txt" ;;
  --get_tasks) cat "{fixtures}/get_tasks_running.txt" ;;
  --get_messages) cat "{messages}" ;;
  *) echo "unknown $3" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def fake_boinccmd(tmp_path, monkeypatch, data_dir):
    """Install a fake boinccmd on PATH; returns a function that sets which messages it prints."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "boinccmd.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    data_dir.mkdir()
    (data_dir / "gui_rpc_auth.cfg").write_text("password\n")

    def install(messages: str = "get_messages_docker.txt") -> Path:
        script = bin_dir / "boinccmd"
        script.write_text(FAKE_BOINCCMD.format(log=log, fixtures=FIXTURES, messages=FIXTURES / messages))
        script.chmod(0o755)
        return log
    return install


def test_status_prints_the_json_of_the_contract(fake_boinccmd, data_dir, tmp_path, monkeypatch):
    log = fake_boinccmd()
    monkeypatch.chdir(tmp_path)  # cwd anywhere: boinccmd still runs in the data folder
    ran = call("status", environ={"BOINC_DATA_DIR": str(data_dir), "BOINC_GUI_RPC_PORT": "31501"})
    assert ran.code == 0, ran.err
    report = json.loads(ran.out)
    assert set(report) == {"client", "docker", "docker_problem", "projects", "tasks"}
    assert report["client"] == "8.2.15"
    assert report["docker"] == {"version": "26.1.5+dfsg1", "type": "docker"} and report["docker_problem"] is None
    assert [(p["url"], p["name"], p["jobs_succeeded"]) for p in report["projects"]] == [(URL, "vv_proj", 0)]
    assert [(t["name"], t["project"], t["state"], t["fraction_done"]) for t in report["tasks"]][0] == \
        ("vv_upper_3_0", URL, "downloaded", 0.544441)
    calls = log.read_text().splitlines()
    assert all(line.startswith(f"{data_dir} --host 127.0.0.1:31501 ") for line in calls)
    assert len(calls) == 4


def test_status_reports_why_docker_is_missing(fake_boinccmd, data_dir):
    fake_boinccmd("get_messages_hello_world_failed.txt")
    report = json.loads(call("status", environ={"BOINC_DATA_DIR": str(data_dir)}).out)
    assert report["docker"] is None
    assert report["docker_problem"] == "Docker found but 'hello-world' test failed"


def test_status_reads_client_state_when_the_log_says_nothing_of_docker(fake_boinccmd, data_dir, tmp_path):
    quiet = tmp_path / "quiet.txt"
    quiet.write_text("1: 25-Nov-2026 17:44:01 (low) [] Starting BOINC client version 8.2.15 for x86_64-pc-linux-gnu\n")
    fake_boinccmd(str(quiet))
    env = {"BOINC_DATA_DIR": str(data_dir)}
    assert json.loads(call("status", environ=env).out)["docker"] is None  # no client_state.xml yet
    (data_dir / "client_state.xml").write_text((FIXTURES / "client_state_host_info.xml").read_text())
    assert json.loads(call("status", environ=env).out)["docker"] == {"version": "26.1.5+dfsg1", "type": "docker"}


def test_status_when_boinccmd_fails(fake_boinccmd, data_dir):
    fake_boinccmd()
    (data_dir / "gui_rpc_auth.cfg").unlink()
    ran = call("status", environ={"BOINC_DATA_DIR": str(data_dir)})
    assert ran.code == volunteer.USER_MISTAKE and ran.out == ""
    assert ran.err.startswith("boincserver-volunteer: `boinccmd --host 127.0.0.1:31416 --client_version` failed (exit 1)")
    assert "Can't get RPC password" in ran.err


def test_status_needs_the_data_dir():
    ran = call("status", environ={})
    assert ran.code == volunteer.USER_MISTAKE and "BOINC_DATA_DIR is not set" in ran.err
