"""BOINC's scheduler RPC and upload protocol (boinc/protocol.py), and the exactly-once rules of a
throughput run (boinc/database.py delivery_problems)."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from boincserver.boinc import database as db
from boincserver.boinc import protocol as p

FIXTURES = Path(__file__).parent / "fixtures" / "protocol"
HOST = p.Host(host_cpid=p.host_cpid("h1"), domain_name="sim-1")

# A reply as SCHEDULER_REPLY::write lays it out for a new host given one task of a job
# with one input: an unescaped first line, the host id, an app and its version, the
# workunit (its input's file_info first), the output's signed file_info, the result.
REPLY = """<scheduler_reply>
<scheduler_version>802</scheduler_version>
<dont_use_dcf/>
<master_url>http://127.0.0.1:8080/demo/</master_url>
<request_delay>7.000000</request_delay>
<message priority="low">Project & co: welcome</message>
<project_name>demo</project_name>
<userid>1</userid>
<user_name>bench</user_name>
<hostid>42</hostid>
<host_total_credit>0.000000</host_total_credit>
<host_venue></host_venue>
<team_name></team_name>
<result_ack>
    <name>old_job_0</name>
</result_ack>
<app>
    <name>uppercase</name>
    <user_friendly_name>Upper case</user_friendly_name>
</app>
<file_info>
    <name>uc2_1.00_x86_64-pc-linux-gnu</name>
    <url>http://127.0.0.1:8080/demo/download/uc2_1.00_x86_64-pc-linux-gnu</url>
    <executable/>
</file_info>
<app_version>
    <app_name>uppercase</app_name>
    <version_num>100</version_num>
    <file_ref>
        <file_name>uc2_1.00_x86_64-pc-linux-gnu</file_name>
        <main_program/>
    </file_ref>
    <platform>x86_64-pc-linux-gnu</platform>
</app_version>
<file_info>
    <name>jf_0123</name>
    <url>http://127.0.0.1:8080/demo/download/1a2/jf_0123</url>
    <md5_cksum>0123</md5_cksum>
    <nbytes>1024</nbytes>
</file_info>
<workunit>
    <rsc_fpops_est>1e9</rsc_fpops_est>
    <name>job_7</name>
    <app_name>uppercase</app_name>
    <file_ref>
        <file_name>jf_0123</file_name>
        <open_name>in</open_name>
    </file_ref>
</workunit>
<file_info>
    <name>job_7_0_r1_0</name>
    <generated_locally/>
    <upload_when_present/>
    <max_nbytes>50000000</max_nbytes>
    <url>http://127.0.0.1:8080/demo_cgi/file_upload_handler</url>
<xml_signature>
3b8d0a
ff12
.
</xml_signature>
</file_info>
<result>
<report_deadline>1764200000</report_deadline>
<wu_name>job_7</wu_name>
<name>job_7_0</name>
    <file_ref>
        <file_name>job_7_0_r1_0</file_name>
        <open_name>out</open_name>
        <copy_file/>
    </file_ref>
    <platform>x86_64-pc-linux-gnu</platform>
    <version_num>100</version_num>
    <plan_class></plan_class>
</result>
<no_rsc_apps>NVIDIA</no_rsc_apps>
</scheduler_reply>
"""


def request_tree(body: bytes) -> ET.Element:
    return ET.fromstring(body.decode())


def test_first_request_has_no_hostid_and_seqno_zero():
    root = request_tree(p.scheduler_request("auth", HOST, hostid=0, rpc_seqno=5, work_req_seconds=60,
                                            cpu_req_instances=4))
    assert root.tag == "scheduler_request"
    assert root.findtext("authenticator") == "auth"
    assert root.findtext("hostid").strip() == "0"
    assert root.findtext("rpc_seqno").strip() == "0"
    assert float(root.findtext("work_req_seconds")) == 60
    assert float(root.findtext("cpu_req_secs")) == 60
    assert float(root.findtext("cpu_req_instances")) == 4
    assert root.findtext("platform_name") == "x86_64-pc-linux-gnu"
    assert [int(root.findtext(f"core_client_{k}")) for k in ("major_version", "minor_version", "release")] \
        == list(p.CLIENT_VERSION)
    assert root.find("result") is None


def test_host_info_has_what_the_scheduler_sends_work_by():
    info = request_tree(p.scheduler_request("a", HOST)).find("host_info")
    assert info.findtext("host_cpid") == HOST.host_cpid and len(HOST.host_cpid) == 32
    assert info.findtext("domain_name") == "sim-1"
    assert int(info.findtext("p_ncpus")) == 4
    for tag in ("p_fpops", "m_nbytes", "d_free", "d_total"):
        assert float(info.findtext(tag)) > 0, tag


def test_later_request_reports_finished_tasks_and_lists_those_in_progress():
    out = p.OutputFile("job_7_0_r1_0", 6, 5e7, hashlib.md5(b"HELLO\n").hexdigest())
    body = p.scheduler_request("a&b", HOST, hostid=42, rpc_seqno=3,
                               finished=[p.FinishedTask("job_7_0", (out,), version_num=100)],
                               in_progress=["job_8_0"])
    root = request_tree(body)
    assert root.findtext("authenticator") == "a&b"
    assert (int(root.findtext("hostid")), int(root.findtext("rpc_seqno"))) == (42, 3)
    (result,) = root.findall("result")
    assert result.findtext("name") == "job_7_0"
    assert int(result.findtext("state")) == p.RESULT_FILES_UPLOADED
    assert int(result.findtext("exit_status")) == 0
    assert int(result.findtext("app_version_num")) == 100
    (fi,) = result.findall("file_info")
    assert fi.findtext("name") == "job_7_0_r1_0"
    assert float(fi.findtext("nbytes")) == 6
    assert fi.findtext("md5_cksum") == out.md5_cksum
    assert [e.findtext("name") for e in root.find("other_results")] == ["job_8_0"]


def test_reply_gives_hostid_tasks_uploads_and_acks():
    reply = p.parse_scheduler_reply(REPLY.encode())
    assert reply.hostid == 42
    assert reply.acked == ("old_job_0",)
    assert reply.request_delay == 7.0
    assert reply.messages == ("Project & co: welcome",)
    assert reply.workunits == ("job_7",)
    (task,) = reply.tasks
    assert (task.name, task.wu_name, task.report_deadline) == ("job_7_0", "job_7", 1764200000)
    assert task.outputs == ("job_7_0_r1_0",) and task.open_names == ("out",)
    assert task.version_num == 100
    # Only the output has an upload URL; the app's and the input's files are downloads.
    assert set(reply.uploads) == {"job_7_0_r1_0"}
    spec = reply.uploads["job_7_0_r1_0"]
    assert spec.upload_urls == ("http://127.0.0.1:8080/demo_cgi/file_upload_handler",)
    assert spec.max_nbytes == 5e7
    assert spec.xml_signature == "3b8d0a\nff12\n."


def test_reply_without_work_or_hostid():
    reply = p.parse_scheduler_reply("<scheduler_reply>\n<project_name>x</project_name>\n"
                                    "<message priority=\"low\">No tasks sent</message>\n</scheduler_reply>\n")
    assert (reply.hostid, reply.tasks, reply.uploads, reply.acked) == (0, (), {}, ())
    assert reply.messages == ("No tasks sent",)


def test_reply_names_upload_url_element_too():
    reply = p.parse_scheduler_reply("<scheduler_reply><file_info>\n<name>o</name>\n<max_nbytes>10</max_nbytes>\n"
                                    "<upload_url>http://h/x_cgi/up?a=1&amp;b=2</upload_url>\n</file_info>"
                                    "</scheduler_reply>")
    assert reply.uploads["o"].upload_urls == ("http://h/x_cgi/up?a=1&b=2",)
    assert reply.uploads["o"].xml_signature == ""


def test_not_a_scheduler_reply():
    with pytest.raises(p.ProtocolError, match="not a scheduler reply"):
        p.parse_scheduler_reply(b"<html><body>500 Internal Server Error</body></html>")


def test_master_page_names_the_scheduler():
    page = ('<html><head><link rel="boinc_scheduler" href="http://127.0.0.1:8080/demo_cgi/cgi">\n'
            "<!--\n<scheduler>http://127.0.0.1:8080/demo_cgi/cgi</scheduler>\n-->\n</head></html>")
    assert p.scheduler_urls(page) == ["http://127.0.0.1:8080/demo_cgi/cgi"]
    assert p.scheduler_urls("<html></html>") == []


def upload_header_and_data(body: bytes) -> tuple[list[str], bytes]:
    head, sep, data = body.partition(b"<data>\n")
    assert sep, "no <data> line"
    return head.decode().splitlines(), data


def test_upload_request_header_line_by_line_then_the_bytes():
    spec = p.UploadSpec("job_7_0_r1_0", 5e7, ("http://h/demo_cgi/file_upload_handler",))
    data = b"HELLO WORLD\n" * 3
    lines, sent = upload_header_and_data(p.upload_request(spec, data))
    assert sent == data
    # The handler reads lines of at most 256 bytes and matches one tag per line.
    assert all(len(line) < 256 for line in lines)
    assert lines[0] == "<data_server_request>"
    assert "<file_upload>" in lines and "<file_info>" in lines and "</file_info>" in lines
    assert "<name>job_7_0_r1_0</name>" in lines
    assert "<max_nbytes>50000000</max_nbytes>" in lines
    assert f"<nbytes>{len(data)}</nbytes>" in lines
    assert f"<md5_cksum>{hashlib.md5(data).hexdigest()}</md5_cksum>" in lines
    assert "<offset>0</offset>" in lines
    assert not any("xml_signature" in line for line in lines)


def test_upload_request_carries_the_certificate_when_there_is_one():
    spec = p.UploadSpec("o", 1000, ("u",), xml_signature="ab12\ncd34\n.")
    lines, _ = upload_header_and_data(p.upload_request(spec, b"x"))
    i = lines.index("<xml_signature>")
    assert lines[i + 1:i + 5] == ["ab12", "cd34", ".", "</xml_signature>"]
    assert p.signed_upload_text("o", 1000.0) == "<name>o</name><max_nbytes>1000</max_nbytes>"


def test_upload_request_from_an_offset():
    _, sent = upload_header_and_data(p.upload_request(p.UploadSpec("o", 100, ("u",)), b"abcdef", offset=4))
    assert sent == b"ef"


@pytest.mark.parametrize("body,status,ok,transient,message", [
    ("<data_server_reply>\n    <status>0</status>\n</data_server_reply>\n", 0, True, False, ""),
    ("<data_server_reply>\n    <status>1</status>\n    <message>can't lock file x</message>\n"
     "</data_server_reply>\n", 1, False, True, "can't lock file x"),
    ("<data_server_reply>\n    <status>-1</status>\n    <message>invalid signature</message>\n"
     "</data_server_reply>\n", -1, False, False, "invalid signature"),
])
def test_upload_reply(body, status, ok, transient, message):
    reply = p.parse_upload_reply(body.encode())
    assert (reply.status, reply.ok, reply.transient, reply.message) == (status, ok, transient, message)


def test_upload_reply_file_size_and_garbage():
    assert p.parse_upload_reply("<data_server_reply>\n <status>0</status>\n <file_size>12</file_size>\n"
                                "</data_server_reply>").file_size == 12
    with pytest.raises(p.ProtocolError):
        p.parse_upload_reply("<html>502 Bad Gateway</html>")
    with pytest.raises(p.ProtocolError):
        p.parse_upload_reply("<data_server_reply></data_server_reply>")


# -- replies captured from a real stack (tests/fixtures/protocol) ---------------------------
def captured(name: str) -> bytes:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"no captured {name}")
    return path.read_bytes()


def test_captured_reply_with_work():
    reply = p.parse_scheduler_reply(captured("scheduler_reply_work.xml"))
    assert reply.tasks, "the reply sent no task"
    for task in reply.tasks:
        assert task.wu_name and task.name.startswith(task.wu_name)
        assert task.open_names == ("out",)
        assert all(reply.uploads[f].upload_urls for f in task.outputs)


def test_captured_reply_acknowledges_reported_results():
    reply = p.parse_scheduler_reply(captured("scheduler_reply_report.xml"))
    assert reply.acked and all(name.startswith("tp_") for name in reply.acked)
    # min_sendwork_interval 6 makes the scheduler ask for 7 s between RPCs.
    assert reply.request_delay == 7.0 and reply.messages


def test_captured_upload_reply():
    assert p.parse_upload_reply(captured("upload_reply.xml")).ok


# -- the exactly-once check --------------------------------------------------------------------
OVER, SUCCESS, VALID, DONE = 5, 1, 1, 2
MD5 = hashlib.md5(b"OUT").hexdigest()


def clean_run(n: int = 2) -> dict:
    """What a run that delivered n jobs exactly once leaves: batch 3, one result each."""
    jobs = [f"j{i}" for i in range(n)]
    return dict(
        jobs=jobs, batch=3,
        workunits=[(10 + i, j, 0, DONE, 100 + i) for i, j in enumerate(jobs)],
        results=[(100 + i, f"{j}_0", 10 + i, OVER, SUCCESS, VALID, 1700000000) for i, j in enumerate(jobs)],
        outputs={f"3/{j}__file_out": MD5 for j in jobs},
        uploaded={f"{j}_0": {"out": MD5} for j in jobs},
        reported={f"{j}_0" for j in jobs}, acked={f"{j}_0" for j in jobs})


def problems(**changes) -> list[dict]:
    run = clean_run()
    run.update(changes)
    return db.delivery_problems(**run)


def test_a_clean_run_has_no_problem():
    assert problems() == []
    assert db.problem_counts([]) == {"lost": 0, "duplicate": 0}


def test_a_job_without_a_row_or_not_assimilated_is_lost():
    run = clean_run()
    found = problems(workunits=[run["workunits"][0][:3] + (1, 100)])
    assert {"kind": "lost", "job": "j1", "what": "no workunit row"} in found
    assert {"kind": "lost", "job": "j0", "what": "not assimilated (assimilate_state 1)"} in found
    assert db.problem_counts(found) == {"lost": 2, "duplicate": 0}


def test_error_bits_are_named():
    run = clean_run()
    found = problems(workunits=[(10, "j0", 2, DONE, 100), run["workunits"][1]])
    assert found == [{"kind": "lost", "job": "j0", "what": "error_mask 2 (too many errors)"}]


def test_two_valid_results_or_two_sent_are_duplicates():
    run = clean_run()
    extra = (200, "j0_1", 10, OVER, SUCCESS, VALID, 1700000001)
    found = problems(results=run["results"] + [extra])
    assert {p_["what"] for p_ in found} == {"sent 2 times: j0_0, j0_1", "2 valid results: j0_0, j0_1"}
    assert db.problem_counts(found) == {"lost": 0, "duplicate": 1}


def test_no_valid_result():
    run = clean_run()
    found = problems(results=[(100, "j0_0", 10, OVER, 3, 0, 1700000000)] + run["results"][1:])
    assert found == [{"kind": "lost", "job": "j0",
                      "what": "no valid result (results: j0_0 over, client error, not validated)"}]


def test_missing_or_different_output_and_assimilator_markers():
    outputs = {"3/j1__file_out": "0" * 32, "3/j1_error": "x"}
    found = problems(outputs=outputs)
    whats = [p_["what"] for p_ in found]
    assert "output 3/j0__file_out missing" in whats
    assert any(w.startswith("output 3/j1__file_out is not what was uploaded") for w in whats)
    assert "assimilator wrote 3/j1_error" in whats
    assert db.problem_counts(found)["lost"] == 2


def test_an_output_of_no_job_is_a_duplicate_and_unacked_reports_are_lost():
    run = clean_run()
    found = problems(outputs={**run["outputs"], "3/stray__file_out": MD5}, acked={"j0_0"},
                     sent_twice={"j1_0"})
    assert {"kind": "duplicate", "job": "stray", "what": "output 3/stray__file_out of no submitted job"} in found
    assert {"kind": "lost", "job": "j1_0", "what": "reported, never acknowledged by the scheduler"} in found
    assert {"kind": "duplicate", "job": "j1_0", "what": "given to a host more than once"} in found


def test_a_canonical_result_no_host_uploaded():
    found = problems(uploaded={"j0_0": {"out": MD5}})
    assert found == [{"kind": "lost", "job": "j1", "what": "canonical result j1_0 was never uploaded by a host"}]


def test_statements_take_the_batch():
    for statement in (db.BATCH_WORKUNITS, db.BATCH_RESULTS, db.BATCH_ASSIMILATED):
        assert statement.count("%s") == 1 and "batch=%s" in statement
    assert "assimilate_state=2" in db.BATCH_ASSIMILATED


def test_create_account_query_and_reply():
    params = p.create_account_params("Bench@Example.org", "pw", "bench")
    assert params["passwd_hash"] == hashlib.md5(b"pwbench@example.org").hexdigest()
    assert (params["email_addr"], params["user_name"]) == ("Bench@Example.org", "bench")
    assert p.account_authenticator(" <account_out>\n   <authenticator>0a1b</authenticator>\n</account_out>\n") == "0a1b"
    assert p.account_authenticator("<error>\n<error_num>-137</error_num>\n</error>") == ""
