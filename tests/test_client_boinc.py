"""boincserver.boinc.client: what the BOINC 8.2 client reads at start-up, and what it says.

The fixtures under tests/fixtures/boinc_client_8.2.15/ are real output of the volunteer image's
client (8.2.15) and boinccmd, captured attached to a boincserver project running the uppercase
example (the data folder's path replaced by /var/lib/boincserver-volunteer).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from boincserver.boinc import client
from boincserver.boinc.client import ClientError

FIXTURES = Path(__file__).parent / "fixtures" / "boinc_client_8.2.15"
URL = "http://127.0.0.1:47151/vv_proj/"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# -- project folders, URLs, keys, account files ------------------------------------------------
@pytest.mark.parametrize("url, folder", [
    ("http://127.0.0.1:8080/demo/", "127.0.0.1_8080_demo"),  # issue 10 research: lib/url.cpp
    ("https://boinc.example.org/proj/", "boinc.example.org_proj"),
    ("http://a.b/x y/", "a.b_x_y"),
    ("http://a.b/under_/", "a.b_under_"),  # only one trailing "_" goes
    ("http://a.b/p~q", "a.b_p_q"),  # no trailing "/": nothing removed but the escaped "~"
    ("ftp://a.b/Mixed-Case.1/", "a.b_Mixed-Case.1"),  # any scheme dropped; case kept
    ("http://a.b/é/", "a.b" + "_" + "__"),  # "/", then é's two bytes; the final "/"'s "_" goes
])
def test_escape_project_url(url, folder):
    assert client.escape_project_url(url) == folder


def test_account_file_name_matches_the_client_s_own():
    # The file the client itself wrote when it attached in the fixture's run.
    assert client.account_file_name(URL) == "account_127.0.0.1_47151_vv_proj.xml"


@pytest.mark.parametrize("url", [URL, "https://boinc.example.org/proj/", "http://10.0.0.1/p/q/"])
def test_check_master_url_accepts(url):
    assert client.check_master_url(url) == url


@pytest.mark.parametrize("url, says", [
    ("127.0.0.1/p/", "http:// or https://"),
    ("http://localhost/p/", "dot in its host"),
    ("http://.a/p/", "dot in its host"),
    ("http://a./p/", "dot in its host"),  # the "/" right after the dot
    ("http://a.b", "dot in its host"),  # no path
    ("http://a.b/p", "must end with '/'"),
    ("http://A.B/p/", "write http://a.b/p/"),
    ("http://a.b//p/", "write http://a.b/p/"),
])
def test_check_master_url_refuses(url, says):
    with pytest.raises(ClientError, match=re.escape(says)):
        client.check_master_url(url)


def test_canonical_master_url_keeps_the_path_case():
    assert client.canonical_master_url("https://Boinc.Example.ORG//My/Proj") == "https://boinc.example.org/My/Proj/"


def test_weak_account_key():
    key = client.weak_account_key(7, "0123abcd" * 4, "5f4dcc3b5aa765d61d8327deb882cf99")
    assert key == "7_" + hashlib.md5(("0123abcd" * 4 + "5f4dcc3b5aa765d61d8327deb882cf99").encode()).hexdigest()
    assert key != client.weak_account_key(7, "0123abcd" * 4, "another password hash")
    assert client.check_account_key(key) == key


@pytest.mark.parametrize("key", ["", "a b", "abc\n", "<x>", "a&b", "k" * 256])
def test_check_account_key_refuses(key):
    with pytest.raises(ClientError, match="account key"):
        client.check_account_key(key)


def test_account_xml_is_what_the_client_reads():
    text = client.account_xml(URL, "12_" + "ab" * 16)
    root = ET.fromstring(text)
    assert root.tag == "account"
    assert root.findtext("master_url") == URL
    assert root.findtext("authenticator") == "12_" + "ab" * 16
    assert client.account_key_in(text) == (URL, "12_" + "ab" * 16)


def test_account_xml_refuses_a_bad_url_or_key():
    with pytest.raises(ClientError):
        client.account_xml("http://localhost/p/", "abc")
    with pytest.raises(ClientError):
        client.account_xml(URL, "a<b")


def test_account_key_in_a_file_the_client_rewrote():
    rewritten = ("<account>\n    <master_url>http://127.0.0.1:47151/vv_proj/</master_url>\n"
                 "    <authenticator>1_abc</authenticator>\n    <project_name>vv_proj</project_name>\n"
                 "<project_preferences>\n<resource_share>100</resource_share>\n</project_preferences>\n</account>\n")
    assert client.account_key_in(rewritten) == (URL, "1_abc")
    assert client.account_key_in("<account><master_url>x</master_url></account>") is None


def test_cc_config_xml():
    root = ET.fromstring(client.cc_config_xml())
    assert root.find("options/allow_multiple_clients").text == "1"
    assert root.find("options/skip_cpu_benchmarks") is None
    assert root.find("log_flags") is None
    root = ET.fromstring(client.cc_config_xml(allow_multiple_clients=False, skip_cpu_benchmarks=True,
                                              log_flags=["sched_op_debug"]))
    assert root.find("options/allow_multiple_clients") is None
    assert root.find("options/skip_cpu_benchmarks").text == "1"
    assert root.find("log_flags/sched_op_debug").text == "1"


# -- boinccmd's output, as the 8.2.15 client printed it ------------------------------------------
def test_parse_client_version():
    assert client.parse_client_version(fixture("client_version.txt")) == "8.2.15"
    assert client.parse_client_version("can't connect to local host\n") is None


def test_parse_project_status():
    [project] = client.parse_project_status(fixture("get_project_status.txt"))
    assert project == {
        "url": URL, "name": "vv_proj", "user_name": "volunteer1", "jobs_succeeded": 0, "jobs_failed": 0,
        "rpc_failures": 0, "scheduler_rpc_pending": False, "suspended": False, "no_new_work": False,
        "ended": False, "host_total_credit": 0.0,
    }


def test_parse_records_keeps_the_project_s_name_over_its_gui_urls():
    [record] = client.parse_records(fixture("get_project_status.txt"))
    assert record["name"] == "vv_proj"  # a GUI URL's "name: Message boards" comes after
    assert record["team_name"] == ""  # printed as "   team_name: " with nothing after
    assert record["jobs succeeded"] == "0"  # after the GUI URLs


def test_parse_project_status_of_an_unattached_client():
    assert client.parse_project_status("======== Projects ========\n") == []


def test_parse_tasks_running_and_waiting():
    running, waiting, _ = client.parse_tasks(fixture("get_tasks_running.txt"))
    assert running == {"name": "vv_upper_3_0", "workunit": "vv_upper_3", "project": URL, "state": "downloaded",
                       "process": "executing", "fraction_done": 0.544441, "elapsed_seconds": 3.02014,
                       "ready_to_report": False, "exit_status": None}
    assert (waiting["state"], waiting["process"], waiting["fraction_done"]) == ("downloading", "uninitialized", 0.0)


def test_parse_tasks_ended():
    reported, uploading = client.parse_tasks(fixture("get_tasks_ended.txt"))
    assert (reported["name"], reported["state"], reported["ready_to_report"]) == ("vv_upper_2_0", "uploaded", True)
    assert reported["exit_status"] == 0 and reported["elapsed_seconds"] == 22.066767
    assert reported["fraction_done"] == 1.0  # not printed once the process is gone
    assert (uploading["state"], uploading["exit_status"], uploading["fraction_done"]) == ("uploading", 0, 1.0)


def test_a_failed_task_is_not_done():
    text = ("1) -----------\n   name: t_0\n   state: compute error\n   active_task_state: EXITED\n"
            "   final elapsed time: 2.0\n   exit_status: 3\n")
    [task] = client.parse_tasks(text)
    assert (task["state"], task["exit_status"], task["fraction_done"]) == ("compute error", 3, 0.0)


def test_parse_messages():
    messages = client.parse_messages(fixture("get_messages_docker.txt"))
    assert messages[0] == {"seqno": 1, "time": "25-Nov-2026 17:44:01", "priority": "low", "project": "",
                           "body": "Starting BOINC client version 8.2.15 for x86_64-pc-linux-gnu"}
    assert any(m["project"] == "vv_proj" and m["body"] == "Scheduler request completed: got 1 new tasks"
               for m in messages)


# -- Docker as the client found it ----------------------------------------------------------
def test_docker_in_messages_found():
    messages = client.parse_messages(fixture("get_messages_docker.txt"))
    assert client.docker_in_messages(messages) == ({"version": "26.1.5+dfsg1", "type": "docker"}, None)


def test_docker_in_messages_hello_world_failed():
    messages = client.parse_messages(fixture("get_messages_hello_world_failed.txt"))
    assert client.docker_in_messages(messages) == (None, "Docker found but 'hello-world' test failed")


def test_docker_in_messages_says_nothing_without_a_docker_line():
    assert client.docker_in_messages(client.parse_messages("1: 25-Nov-2026 17:44:01 (low) [] Hi\n")) == (None, None)


def test_docker_in_client_state():
    assert client.docker_in_client_state(fixture("client_state_host_info.xml")) == \
        {"version": "26.1.5+dfsg1", "type": "docker"}
    assert client.docker_in_client_state(fixture("client_state_host_info_no_docker.xml")) is None
    assert client.docker_in_client_state("<client_state></client_state>") is None


def test_docker_in_client_state_podman():
    state = "<client_state><host_info><docker_version>4.9.3</docker_version><docker_type>2</docker_type>" \
            "</host_info></client_state>"
    assert client.docker_in_client_state(state) == {"version": "4.9.3", "type": "podman"}
