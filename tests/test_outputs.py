"""Outputs only to the batch's owner: the pure parts (boinc/outputs.py), the CGI program
(container/outputs.py) over a fake project (SQLite behind a fake MySQLdb), status's owner, and
the image's Apache configuration and entry point. No Docker, no Apache."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import zipfile
from urllib.parse import urlencode

import pytest
from container_fakes import install_mysqldb, project_folder

from boincserver import images, paths
from boincserver.boinc import outputs as bo
from boincserver.container import jobs, outputs

ALICE, BOB = "a" * 32, "b" * 32


# -- the pure parts -----------------------------------------------------------------------------
def test_the_login_cookie_is_auth_as_php_reads_it():
    assert bo.cookie("auth=abc") == "abc"
    assert bo.cookie("x=1; auth=abc%20d; auth=second") == "abc d"  # the first, URL-decoded
    assert bo.cookie("xauth=1; authx=2") is None
    assert bo.cookie("auth=") is None and bo.cookie(None) is None and bo.cookie("garbage") is None


def test_an_authenticator_matches_exactly():
    assert bo.same_authenticator("abc", "abc")
    assert not bo.same_authenticator("abc", "ABC") and not bo.same_authenticator("abc", "abc ")
    assert not bo.same_authenticator(None, "abc") and not bo.same_authenticator("", "")
    assert bo.usable_authenticator("abc") == "abc"
    assert bo.usable_authenticator("") is None and bo.usable_authenticator("a\nb") is None
    assert bo.usable_authenticator("é") is None and bo.usable_authenticator("a" * 300) is None


def test_get_output3_requests_read_as_boinc_reads_them():
    assert bo.output_request("action=get_file&result_id=7&index=0") == bo.OutputRequest("get_file", 7, 0, False)
    assert bo.output_request("action=get_file&result_id=7&index=1&download=1").download
    assert not bo.output_request("action=get_file&result_id=7&index=1&download=0").download
    assert bo.output_request("action=get_batch&batch_id=3") == bo.OutputRequest("get_batch", batch_id=3)
    for query, said in [("", "action must be"), ("action=nope", "action must be"),
                        ("action=get_file&index=0", "missing result_id"),
                        ("action=get_file&result_id=-1&index=0", "whole number"),
                        ("action=get_file&result_id=1&index=x", "whole number"),
                        ("action=get_batch&batch_id=1&batch_id=2", "given 2 times"),
                        ("action=get_batch&batch_id=%ff", "unreadable")]:
        with pytest.raises(bo.BadRequest, match=said):
            bo.output_request(query)


def test_results_requests_become_status_arguments():
    form = lambda **kw: bo.query_fields(urlencode(kw, doseq=True))  # noqa: E731
    assert bo.results_request(form(authenticator=ALICE, batch=3)) == (ALICE, ["--batch", "3"])
    assert bo.results_request(form(authenticator=ALICE, wu=["j1", "j2"], tar=1)) == \
        (ALICE, ["--wu", "j1", "j2", "--tar"])
    assert bo.results_request(form(batch=3, tar=0)) == (None, ["--batch", "3"])
    assert bo.results_request(form(authenticator="", batch=3))[0] is None
    for fields, said in [(form(batch=1, wu="j"), "say which jobs"), (form(authenticator=ALICE), "say which jobs"),
                         (form(batch=1, tar=2), "tar must be"), (form(batch="x"), "whole number"),
                         (form(wu="--tar"), "no job can be named"), (form(wu="a/b"), "no job can be named"),
                         (form(batch=1, auth=ALICE), "unknown field 'auth'")]:
        with pytest.raises(bo.BadRequest, match=said):
            bo.results_request(fields)


def test_the_form_comes_in_a_post_body_only():
    ok = ("POST", "", "application/x-www-form-urlencoded; charset=utf-8", 10)
    assert bo.form_problem(*ok) is None
    assert bo.form_problem("GET", *ok[1:]).status == 405
    assert bo.form_problem("POST", "authenticator=x", *ok[2:]) == bo.Answer(
        400, "send the fields in the POST body, not in the URL (access logs keep URLs)")
    assert bo.form_problem("POST", "", "multipart/form-data; boundary=x", 10).status == 415
    assert bo.form_problem("POST", "", ok[2], bo.MAX_FORM_BYTES + 1).status == 413


def test_only_the_three_urls_are_endpoints():
    assert bo.endpoint("/demo/get_output3.php", "demo") == "get_output3.php"
    assert bo.endpoint("/demo/boincserver_results", "demo") == "boincserver_results"
    assert bo.endpoint("/demo/get_output.php", "demo") == "get_output.php"
    for other in ("/demo/get_output3.php/x", "/other/get_output3.php", "/demo/boincserver_results/", "",
                  "/demo/get_output2.php", "/demo/get_output.php/x"):
        assert bo.endpoint(other, "demo") is None


def test_only_the_owner_may_have_a_batch_or_its_jobs():
    assert bo.batch_refusal(1, 3, 1) is None
    assert bo.batch_refusal(1, 3, 2) == "batch 3 is not one of this account's batches"
    assert bo.batch_refusal(1, 3, None) and bo.batch_refusal(0, 0, 0)  # no row; user 0 is nobody's
    owners = {1: 1, 2: 2}
    assert bo.jobs_refusal(1, [("j1", 1), ("j2", 1)], owners) is None
    assert bo.jobs_refusal(1, [("j1", 1), ("k1", 2)], owners) == "job 'k1' is not in a batch of this account's"
    assert bo.jobs_refusal(1, [("loose", 0)], owners) == "job 'loose' is not in a batch of this account's"
    assert bo.batch_owners([3, 1, 3]) == [("SELECT id, user_id FROM batch WHERE id IN (%s, %s)", (1, 3))]
    assert len(bo.batch_owners(range(2500))) == 3


RESULT_XML = """<file_info><name>j1_r0_0</name></file_info>
<result>
    <name>j1_0</name>
    <file_ref><file_name>j1_r0_0</file_name><open_name>out</open_name></file_ref>
    <file_ref><file_name>j1_r0_1</file_name><open_name>log.txt</open_name></file_ref>
</result>
"""


def test_an_output_is_found_by_its_index_as_get_output3_finds_it():
    assert bo.open_names(RESULT_XML) == ["out", "log.txt"]
    assert bo.open_names(RESULT_XML.encode()) == ["out", "log.txt"]
    assert bo.open_names("<result><unclosed>") == [] and bo.open_names(None) == []
    assert bo.output_file(4, "j1", RESULT_XML, 1) == ("4/j1__file_log.txt", "")
    assert bo.output_file(4, "j1", RESULT_XML, 2) == (None, "the job has 2 output file(s): index 2 is none of them")
    bad = RESULT_XML.replace("log.txt", "../x")
    assert bo.output_file(4, "j1", bad, 1)[0] is None and bo.output_file(4, "a/b", RESULT_XML, 0)[0] is None


def test_a_batch_zip_holds_the_files_under_their_own_names():
    assert bo.zip_name(7) == "batch_7.zip"
    assert bo.zip_members(["j2__file_out", ".hidden", "j1__file_out", "j1_no_output_files"]) == [
        "j1__file_out", "j1_no_output_files", "j2__file_out"]


def test_cgi_heads():
    assert bo.cgi_head(403, [("Content-Type", "text/plain")]) == \
        b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\n"


# -- the CGI program over a fake project --------------------------------------------------------
@pytest.fixture
def db(tmp_path, monkeypatch):
    fake = install_mysqldb(tmp_path, monkeypatch)
    # What of BOINC's user table and result.xml_doc_in this reads (db/schema.sql).
    fake.sql("CREATE TABLE user (id INTEGER PRIMARY KEY, name TEXT, email_addr TEXT, authenticator TEXT UNIQUE)")
    fake.sql("ALTER TABLE result ADD COLUMN xml_doc_in TEXT")
    fake.sql("ALTER TABLE result ADD COLUMN name TEXT")
    return fake


@pytest.fixture
def root(tmp_path, db):
    """Alice (user 1) owns batch 1 (j1 done, j2 pending), Bob (user 2) batch 2 (k1 done);
    batch 3 is `boincserver submit`'s (user 0); job loose is in no batch."""
    folder = project_folder(tmp_path / "project")
    for user, auth in ((1, ALICE), (2, BOB)):
        db.sql("INSERT INTO user (id, name, email_addr, authenticator) VALUES (?, ?, ?, ?)",
               (user, f"u{user}", f"u{user}@example.org", auth))
    with _conn(db) as conn:
        for batch, user in ((1, 1), (2, 2), (3, 0)):
            conn.execute("INSERT INTO batch (id, user_id, name, njobs, state) VALUES (?, ?, ?, 1, 1)",
                         (batch, user, f"b{batch}"))
        for wu, name, batch, done in ((1, "j1", 1, True), (2, "j2", 1, False), (3, "k1", 2, True),
                                      (4, "m1", 3, True), (5, "loose", 0, True)):
            conn.execute("INSERT INTO workunit (id, name, batch, canonical_resultid, assimilate_state) "
                         "VALUES (?, ?, ?, ?, ?)", (wu, name, batch, 10 + wu if done else 0, 2 if done else 0))
            conn.execute("INSERT INTO result (id, workunitid, batch, server_state, outcome, xml_doc_in, name) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (10 + wu, wu, batch, 5 if done else 2, 1 if done else 0,
                                                          RESULT_XML.replace("j1", name), f"{name}_0"))
            if done:
                (folder / "results" / str(batch)).mkdir(exist_ok=True)
                (folder / "results" / str(batch) / f"{name}__file_out").write_text(f"<b>{name} out</b>\n")
    return folder


def _conn(db):
    import sqlite3
    return sqlite3.connect(db.path)


def cgi(root, script, query="", cookie=None, method="GET", body=b"", content_type=None):
    environ = {"PROJECT": "demo", "PROJECT_ROOT": str(root), "SCRIPT_NAME": f"/demo/{script}",
               "REQUEST_METHOD": method, "QUERY_STRING": query}
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    if body or method == "POST":
        environ |= {"CONTENT_LENGTH": str(len(body)),
                    "CONTENT_TYPE": content_type or "application/x-www-form-urlencoded"}
    out, err = io.BytesIO(), io.StringIO()
    code = outputs.answer(environ, io.BytesIO(body), out, err)
    head, _, data = out.getvalue().partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return code, status, headers, data, err.getvalue()


def refused(*args, **kwargs) -> tuple[int, str]:
    code, status, headers, data, err = cgi(*args, **kwargs)
    assert code == 0 and headers["Content-Type"] == "text/plain; charset=utf-8", err
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    return status, data.decode().strip()


def test_get_file_answers_the_owner_only(root):
    query = "action=get_file&result_id=11&index=0"
    code, status, headers, data, _ = cgi(root, "get_output3.php", query, cookie=f"auth={ALICE}")
    assert (code, status, data) == (0, 200, b"<b>j1 out</b>\n")
    assert headers["Content-Type"] == "text/plain; charset=utf-8" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Length"] == str(len(data))
    assert headers["Content-Disposition"] == 'inline; filename="j1__file_out"'
    _, _, headers, data, _ = cgi(root, "get_output3.php", query + "&download=1", cookie=f"x=1; auth={ALICE}")
    assert headers["Content-Type"] == "application/octet-stream" and data == b"<b>j1 out</b>\n"
    assert headers["Content-Disposition"] == 'attachment; filename="j1__file_out"'
    assert refused(root, "get_output3.php", query) == (
        403, "log in first: outputs are shown to the account that submitted the batch")
    assert refused(root, "get_output3.php", query, cookie="auth=" + "c" * 32) == (403, "bad authenticator")
    assert refused(root, "get_output3.php", query, cookie="auth=" + ALICE.upper()) == (403, "bad authenticator")
    assert refused(root, "get_output3.php", query, cookie=f"auth={BOB}") == (
        403, "result 11: batch 1 is not one of this account's batches")
    # Bob's own; `boincserver submit`'s batch (user 0) and a job in no batch: nobody's.
    assert cgi(root, "get_output3.php", "action=get_file&result_id=13&index=0", cookie=f"auth={BOB}")[3] == \
        b"<b>k1 out</b>\n"
    for result in (14, 15):
        assert refused(root, "get_output3.php", f"action=get_file&result_id={result}&index=0",
                       cookie=f"auth={ALICE}")[0] == 403


def test_get_file_says_what_is_missing(root):
    alice = f"auth={ALICE}"
    assert refused(root, "get_output3.php", "action=get_file&result_id=99&index=0", cookie=alice) == (
        404, "no result 99")
    assert refused(root, "get_output3.php", "action=get_file&result_id=11&index=5", cookie=alice) == (
        404, "result 11: the job has 2 output file(s): index 5 is none of them")
    status, said = refused(root, "get_output3.php", "action=get_file&result_id=12&index=0", cookie=alice)
    assert status == 404 and "is not there (yet)" in said
    assert refused(root, "get_output3.php", "action=get_file&result_id=1", cookie=alice) == (
        400, "missing index")
    # Anonymous: refused before anything is looked up, so no one learns what exists.
    assert refused(root, "get_output3.php", "action=get_file&result_id=99&index=0")[0] == 403
    assert refused(root, "get_output3.php", "action=get_batch&batch_id=1", method="POST")[0] == 405


def test_get_batch_streams_a_zip_of_the_batch_to_its_owner(root):
    (root / "results" / "1" / "j1__file_log.txt").write_bytes(os.urandom(300_000))
    (root / "results" / "1" / ".partial").write_text("x")
    code, status, headers, data, err = cgi(root, "get_output3.php", "action=get_batch&batch_id=1",
                                           cookie=f"auth={ALICE}")
    assert (code, status) == (0, 200), err
    assert headers["Content-Type"] == "application/zip"
    assert headers["Content-Disposition"] == 'attachment; filename="batch_1.zip"'
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["j1__file_log.txt", "j1__file_out"]
        assert zf.read("j1__file_out") == b"<b>j1 out</b>\n"
        assert zf.read("j1__file_log.txt") == (root / "results" / "1" / "j1__file_log.txt").read_bytes()
        assert zf.testzip() is None
    assert not any(p.suffix == ".zip" for p in root.rglob("*"))  # nothing written in the project
    assert refused(root, "get_output3.php", "action=get_batch&batch_id=1", cookie=f"auth={BOB}") == (
        403, "batch 1 is not one of this account's batches")
    assert refused(root, "get_output3.php", "action=get_batch&batch_id=3", cookie=f"auth={ALICE}")[0] == 403
    assert refused(root, "get_output3.php", "action=get_batch&batch_id=9", cookie=f"auth={ALICE}") == (
        404, "no batch 9")
    assert refused(root, "get_output3.php", "action=get_batch&batch_id=1") == (
        403, "log in first: outputs are shown to the account that submitted the batch")


def test_get_batch_of_a_batch_without_outputs_is_404(root, db):
    with _conn(db) as conn:
        conn.execute("INSERT INTO batch (id, user_id, name, njobs, state) VALUES (5, 1, 'empty', 0, 1)")
    assert refused(root, "get_output3.php", "action=get_batch&batch_id=5", cookie=f"auth={ALICE}") == (
        404, "batch 5 has no outputs yet")


def post(root, cookie=None, **fields):
    return cgi(root, "boincserver_results", method="POST", body=urlencode(fields, doseq=True).encode(),
               cookie=cookie)


def test_results_answers_what_status_answers_to_the_owner_only(root):
    code, status, headers, data, err = post(root, authenticator=ALICE, batch=1)
    assert (code, status, headers["Content-Type"]) == (0, 200, "application/json"), err
    report = json.loads(data)
    local = io.BytesIO()
    assert jobs.main(["status", "--batch", "1"], root=root, out=local) == 0
    assert report == json.loads(local.getvalue())
    assert [j["name"] for j in report["jobs"]] == ["j1", "j2"] and report["jobs"][0]["outputs"] == ["out"]
    _, status, _, data, _ = post(root, authenticator=ALICE, wu=["j2", "j1"])
    assert status == 200 and [j["name"] for j in json.loads(data)["jobs"]] == ["j1", "j2"]
    assert refused(root, "boincserver_results", method="POST", body=urlencode(
        {"authenticator": BOB, "batch": 1}).encode()) == (403, "batch 1 is not one of this account's batches")
    assert post(root, authenticator=ALICE, wu=["j1", "k1"])[1:4:2] == (
        403, b"job 'k1' is not in a batch of this account's\n")
    assert post(root, authenticator=ALICE, wu=["loose"])[1] == 403
    assert post(root, authenticator=ALICE, batch=3)[1] == 403


def test_results_as_a_tar_stream(root):
    code, status, headers, data, err = post(root, authenticator=ALICE, batch=1, tar=1)
    assert (code, status, headers["Content-Type"]) == (0, 200, "application/x-tar"), err
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    assert list(members) == ["j1/out", jobs.STATUS_MEMBER]
    assert members["j1/out"] == b"<b>j1 out</b>\n"
    assert json.loads(members[jobs.STATUS_MEMBER])["summary"]["done"] == 1
    # A refusal still gets its status line: nothing of the tar went out before it.
    assert post(root, authenticator=BOB, batch=1, tar=1)[1:4:2] == (
        403, b"batch 1 is not one of this account's batches\n")


def test_results_refusals(root):
    assert post(root, batch=1)[1:4:2] == (
        403, b"no authenticator: send the account's as the POST field authenticator\n")
    assert post(root, authenticator="", batch=1)[1] == 403
    assert post(root, authenticator="nope", batch=1)[1:4:2] == (403, b"bad authenticator\n")
    assert post(root, authenticator=ALICE, batch=9)[1:4:2] == (404, b"no batch 9 (see `boincserver batch list`)\n")
    assert post(root, authenticator=ALICE, wu=["j1", "zz"])[1:4:2] == (404, b"no job named 'zz'\n")
    assert post(root, authenticator=ALICE)[1] == 400
    assert refused(root, "boincserver_results", query=f"authenticator={ALICE}&batch=1", method="POST")[0] == 400
    assert refused(root, "boincserver_results", query="batch=1")[0] == 405
    assert refused(root, "boincserver_results", method="POST", body=b"batch=1",
                   content_type="text/plain")[0] == 415
    assert refused(root, "get_output3.php/x", "action=get_batch&batch_id=1") == (404, "no such page")


def test_a_failure_is_a_500_with_the_traceback_in_the_error_log(root):
    (root / "config.xml").unlink()  # the database cannot be found
    code, status, _, data, err = post(root, authenticator=ALICE, batch=1)
    assert (code, status) == (1, 500) and b"error log" in data and "Traceback" in err


def test_status_without_an_owner_is_unchanged(root):
    """The local `boincserver results` sees every batch, the one of no account's too."""
    for batch in ("1", "2", "3"):
        out = io.BytesIO()
        assert jobs.main(["status", "--batch", batch], root=root, out=out) == 0
    project = jobs.ProjectFolder(root, io.BytesIO())
    assert jobs.status(project, ["--wu", "loose", "k1"])["summary"]["done"] == 2
    with pytest.raises(jobs.NotYours, match="job 'loose'"):
        jobs.status(project, ["--wu", "loose", "k1"], owner=2)
    with pytest.raises(jobs.NotYours):
        jobs.status(project, ["--batch", "0"], owner=1)
    assert jobs.status(project, ["--wu", "k1"], owner=2)["jobs"][0]["name"] == "k1"


# -- get_output.php: BOINC's remote-submission clients ------------------------------------------
def boinc_md5(authenticator: str, subject) -> str:
    """auth_str as lib/boinc_submit.py makes it (get_output_file_url, get_output_files_url)."""
    import hashlib
    return hashlib.md5(bytes(authenticator + str(subject), "utf-8")).hexdigest()


def test_get_output_requests_read_as_boincs_page_reads_them():
    R = bo.BoincOutputRequest
    assert bo.boinc_output_request("cmd=result_file&result_name=j1_0&file_num=1&auth_str=x") == R(
        "result_file", "x", result_name="j1_0", file_num=1)
    assert bo.boinc_output_request("cmd=batch_files&batch_id=4&auth_str=x") == R("batch_files", "x", batch_id=4)
    assert bo.boinc_output_request("cmd=batch_files&batch_name=b%201&auth_str=x") == R(
        "batch_files", "x", batch_name="b 1")
    assert bo.boinc_output_request("cmd=workunit_file&wu_name=j1&file_num=0&auth_str=x") == R(
        "workunit_file", "x", wu_name="j1")
    assert bo.boinc_output_request("cmd=workunit_files&wu_id=7&auth_str=x") == R("workunit_files", "x", wu_id=7)
    for query, said in [("", "missing cmd"), ("cmd=nope&auth_str=x", "bad command"),
                        ("cmd=result_file&result_name=j&file_num=0", "missing auth_str"),
                        ("cmd=result_file&result_name=j&auth_str=x", "missing file_num"),
                        ("cmd=batch_files&auth_str=x", "say which batch"),
                        ("cmd=workunit_files&wu_id=x&auth_str=x", "whole number")]:
        with pytest.raises(bo.BadRequest, match=said):
            bo.boinc_output_request(query)


def test_auth_strings_are_boincs():
    assert bo.auth_str(ALICE, "j1_0") == boinc_md5(ALICE, "j1_0") and bo.auth_str(ALICE, 4) == boinc_md5(ALICE, 4)
    signed = bo.BoincOutputRequest("result_file", boinc_md5(ALICE, "j1_0"))
    assert bo.boinc_auth_ok(signed, ALICE, "j1_0")
    assert not bo.boinc_auth_ok(signed, BOB, "j1_0") and not bo.boinc_auth_ok(signed, ALICE, "j1_1")
    assert not bo.boinc_auth_ok(signed, None, "j1_0")
    upper = bo.BoincOutputRequest("result_file", boinc_md5(ALICE, "j1_0").upper())
    assert not bo.boinc_auth_ok(upper, ALICE, "j1_0")
    # workunit_file: the authenticator itself (lib/remote_submit.cpp get_output_file).
    assert bo.boinc_auth_ok(bo.BoincOutputRequest("workunit_file", ALICE), ALICE, "j1")
    assert not bo.boinc_auth_ok(bo.BoincOutputRequest("workunit_file", boinc_md5(ALICE, "j1")), ALICE, "j1")
    assert bo.owner_problem(3, None, None) == "no batch 3" and bo.owner_problem(3, 0, None) == "no user 0"
    assert bo.owner_problem(3, 1, ALICE) is None


def test_an_output_is_looked_for_in_the_upload_hierarchy_then_in_results():
    from boincserver.boinc import jobs as bj
    assert bo.output_files(RESULT_XML) == [("j1_r0_0", "out"), ("j1_r0_1", "log.txt")]
    assert bo.output_places(4, "j1", True, "j1_r0_0", "out", 1024) == [
        ("upload", bj.dir_hier_path("j1_r0_0", 1024)), ("results", "4/j1__file_out")]
    assert bo.output_places(4, "j1", False, "j1_r0_0", "out", 1024) == [("upload", bj.dir_hier_path("j1_r0_0", 1024))]
    assert bo.output_places(4, "j1", True, "../x", "out", 1024) == []
    assert bo.output_places(4, "j1", True, "j1_r0_0", "a/b", 1024) == [("upload", bj.dir_hier_path("j1_r0_0", 1024))]


def get_output(root, query, method="GET"):
    return cgi(root, "get_output.php", query, method=method)


def test_result_file_answers_the_bytes_to_the_owners_auth_string(root):
    query = f"cmd=result_file&result_name=j1_0&file_num=0&auth_str={boinc_md5(ALICE, 'j1_0')}"
    code, status, headers, data, err = get_output(root, query)
    assert (code, status, data) == (0, 200, b"<b>j1 out</b>\n"), err
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == 'attachment; filename="j1_r0_0"'
    assert headers["Content-Length"] == str(len(data))
    assert refused(root, "get_output.php", query.replace(boinc_md5(ALICE, "j1_0"), boinc_md5(BOB, "j1_0"))) == (
        403, "ERROR: bad authenticator")
    assert refused(root, "get_output.php", query.replace("file_num=0", "file_num=2")) == (
        404, "ERROR: bad file num: job instance j1_0 has 2 output file(s), 2 is none of them")
    status, said = refused(root, "get_output.php", query.replace("file_num=0", "file_num=1"))
    assert status == 404 and said.startswith("ERROR: no such file j1_r0_1")
    assert refused(root, "get_output.php", "cmd=result_file&result_name=zz_0&file_num=0&auth_str=x") == (
        404, "ERROR: no job instance 'zz_0'")
    # `boincserver submit`'s batch (user 0) and a job in no batch: no owner to sign.
    assert refused(root, "get_output.php", f"cmd=result_file&result_name=m1_0&file_num=0&auth_str="
                                           f"{boinc_md5(ALICE, 'm1_0')}") == (403, "ERROR: no user 0")
    assert refused(root, "get_output.php", "cmd=result_file&result_name=loose_0&file_num=0&auth_str=x") == (
        403, "ERROR: no batch 0")


def test_an_output_not_assimilated_yet_comes_from_the_upload_hierarchy(root):
    from boincserver.boinc import jobs as bj
    # k1's canonical output still in upload/, as before sample_assimilator moved it.
    moved = root / "results" / "2" / "k1__file_out"
    upload = root / "upload" / bj.dir_hier_path("k1_r0_0", 1024)
    upload.parent.mkdir(parents=True)
    moved.rename(upload)
    query = f"cmd=result_file&result_name=k1_0&file_num=0&auth_str={boinc_md5(BOB, 'k1_0')}"
    assert get_output(root, query)[3] == b"<b>k1 out</b>\n"
    # A job not done: its instance's upload is served (BOINC's page does too), never results/.
    pending = root / "upload" / bj.dir_hier_path("j2_r0_0", 1024)
    pending.parent.mkdir(parents=True, exist_ok=True)
    pending.write_bytes(b"partial")
    (root / "results" / "1" / "j2__file_out").write_text("not j2_0's")
    assert get_output(root, f"cmd=result_file&result_name=j2_0&file_num=0&auth_str={boinc_md5(ALICE, 'j2_0')}")[3] \
        == b"partial"
    pending.unlink()
    assert refused(root, "get_output.php",
                   f"cmd=result_file&result_name=j2_0&file_num=0&auth_str={boinc_md5(ALICE, 'j2_0')}")[0] == 404


def test_workunit_file_takes_the_authenticator_itself(root):
    code, status, headers, data, err = get_output(root, f"cmd=workunit_file&wu_name=j1&file_num=0&auth_str={ALICE}")
    assert (status, data) == (200, b"<b>j1 out</b>\n"), err
    assert refused(root, "get_output.php", f"cmd=workunit_file&wu_name=j1&file_num=0&auth_str={BOB}") == (
        403, "ERROR: bad authenticator")
    assert refused(root, "get_output.php", f"cmd=workunit_file&wu_name=j2&file_num=0&auth_str={ALICE}") == (
        404, "ERROR: no canonical result for wu j2 (not done yet, or failed)")
    assert refused(root, "get_output.php", f"cmd=workunit_file&wu_name=zz&file_num=0&auth_str={ALICE}")[0] == 404


def zip_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {name: zf.read(name) for name in zf.namelist()}


def test_batch_and_workunit_zips_hold_the_outputs_under_their_physical_names(root, db):
    (root / "results" / "1" / "j1__file_log.txt").write_bytes(os.urandom(200_000))
    code, status, headers, data, err = get_output(root, f"cmd=batch_files&batch_id=1&auth_str={boinc_md5(ALICE, 1)}")
    assert (code, status) == (0, 200), err
    assert headers["Content-Type"] == "application/zip"
    assert headers["Content-Disposition"] == 'attachment; filename="batch_1.zip"'
    # j2 has no canonical result: not in it.
    assert zip_of(data) == {"j1_r0_0": b"<b>j1 out</b>\n",
                            "j1_r0_1": (root / "results" / "1" / "j1__file_log.txt").read_bytes()}
    assert zip_of(get_output(root, f"cmd=batch_files&batch_name=b1&auth_str={boinc_md5(ALICE, 1)}")[3]) == \
        zip_of(data)
    _, status, headers, data, _ = get_output(root, f"cmd=workunit_files&wu_id=1&auth_str={boinc_md5(ALICE, 1)}")
    assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="j1.zip"'
    assert list(zip_of(data)) == ["j1_r0_0", "j1_r0_1"]
    assert not any(p.suffix == ".zip" for p in root.rglob("*"))  # nothing written in the project
    assert refused(root, "get_output.php", f"cmd=batch_files&batch_id=1&auth_str={boinc_md5(BOB, 1)}") == (
        403, "ERROR: bad authenticator")
    assert refused(root, "get_output.php", f"cmd=batch_files&batch_id=9&auth_str={boinc_md5(ALICE, 9)}") == (
        404, "ERROR: no batch 9")
    assert refused(root, "get_output.php", f"cmd=workunit_files&wu_id=2&auth_str={boinc_md5(ALICE, 2)}")[0] == 404
    # A batch without outputs: an empty zip archive (BOINC's page sends a file of no bytes).
    with _conn(db) as conn:
        conn.execute("INSERT INTO batch (id, user_id, name, njobs, state) VALUES (5, 1, 'empty', 0, 1)")
    _, status, _, data, _ = get_output(root, f"cmd=batch_files&batch_id=5&auth_str={boinc_md5(ALICE, 5)}")
    assert status == 200 and zip_of(data) == {}


def test_get_output_refusals(root):
    assert refused(root, "get_output.php", "cmd=nope&auth_str=x") == (
        400, "ERROR: bad command: cmd must be result_file, batch_files, workunit_file or workunit_files")
    assert refused(root, "get_output.php", "cmd=batch_files&batch_id=1", method="POST")[0] == 405
    assert refused(root, "get_output.php", "cmd=batch_files&batch_id=1")[0] == 400


# -- the image --------------------------------------------------------------------------------
IMAGE = paths.data_dir("images") / "apache"


def shipped_cgi(name: str) -> str:
    """The apache image's NAME.conf, once the Dockerfile is seen to copy it into conf-enabled/
    (read before sites-enabled/, where the project's Alias /PROJECT ...html/user is) and the
    program boincserver-NAME beside the others."""
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert f"COPY {name}.conf /etc/apache2/conf-enabled/boincserver-{name}.conf\n" in dockerfile
    assert f"COPY boincserver-{name} /usr/local/libexec/boincserver/boincserver-{name}\n" in dockerfile
    return (IMAGE / f"{name}.conf").read_text()


def test_apache_routes_both_urls_to_the_cgi_before_the_projects_alias():
    conf = shipped_cgi("outputs")
    match = re.search(r'^ScriptAliasMatch "([^"]+)" (\S+)$', conf, re.M)
    assert match.group(2) == "/usr/local/libexec/boincserver/boincserver-outputs"
    pattern = re.compile(match.group(1).replace("${PROJECT}", "demo"))
    for path in ("/demo/get_output3.php", "/demo/boincserver_results", "/demo/get_output3.php/x",
                 "/demo/get_output.php"):
        assert pattern.match(path)
    assert not pattern.match("/demo/index.php") and not pattern.match("/demox/get_output3.php")
    assert not pattern.match("/demo/get_output2.php")  # BOINC's own, with its own authentication
    assert "PassEnv PROJECT PROJECT_ROOT" in conf and "SetEnv PYTHONPATH /usr/local/lib/boincserver" in conf
    assert re.search(r'<Files "get_output3.php">\s+Require all denied', conf)
    assert re.search(r'<Files "get_output.php">\s+Require all denied', conf)


def test_the_cgi_entry_point_runs_the_shipped_module(tmp_path):
    """What the image ships, alone (no site-packages): a URL it does not serve is a 404."""
    ctx = images.make_context("apache", tmp_path / "ctx", None)
    assert os.access(ctx / "boincserver-outputs", os.X_OK)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ctx / "lib"), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONNOUSERSITE": "1", "PROJECT": "demo", "PROJECT_ROOT": str(tmp_path), "SCRIPT_NAME": "/demo/x",
           "REQUEST_METHOD": "GET"}
    done = subprocess.run([str(ctx / "boincserver-outputs")], capture_output=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"Status: 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nno such page\n"
