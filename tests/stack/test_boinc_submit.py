"""BOINC's own submission pieces on our project, unchanged: lib/boinc_submit.py of the pinned
release (taken from the cached tarball at test time) makes a batch, uploads its inputs, submits,
queries it, fetches the outputs through get_output.php (answered by our CGI program from
results/, where sample_assimilator moved them) and retires it; Debian's real boinc-client runs
the jobs. BOINC's submit.php shows the submitter's batches to its login cookie only, and
show_apps.php lists the app (html/project/remote_apps.inc and submitters.inc, written by us).

Known pitfalls of the pinned boinc_submit.py avoided here: `inline` inputs are not XML-escaped
(plain text only), `sandbox` mode is broken in the handler, and a batch is COMPLETE before its
outputs are assimilated (so the test waits for our results endpoint to say done)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import tarfile
import time
import zipfile
from urllib.parse import urlencode

import pytest
import requests

from boincserver import boinc_source

from .conftest import Stack, apache_sh, ensure_example_app, run_cli

TIMEOUT = 420
# Sent as a file: any bytes. The app (BOINC's uc2) upper-cases ASCII only, as bytes.upper() does.
UPLOADED = b"<tag attr=\"1\"> & ampersand; 'quotes' \xc3\xa9t\xc3\xa9\n"
INLINE = "plain inline text\n"  # inside the request's XML, unescaped: plain text only


@pytest.fixture(scope="module")
def boinc_submit(tmp_path_factory):
    """lib/boinc_submit.py of the pinned BOINC, imported from the cached tarball."""
    tarball = boinc_source.cached()
    if tarball is None:
        pytest.skip("the pinned BOINC tarball is not in boincserver's cache: boinc_submit.py comes from it")
    folder = tmp_path_factory.mktemp("boinc_lib")
    with tarfile.open(tarball) as tar:
        member = next(m for m in tar if m.isfile() and m.name.endswith("/lib/boinc_submit.py")
                      and m.name.count("/") == 2)
        (folder / "boinc_submit.py").write_bytes(tar.extractfile(member).read())
    spec = importlib.util.spec_from_file_location("boinc_submit", folder / "boinc_submit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def submitter(jobs_stack: Stack) -> str:
    """The authenticator of a submitter of uppercase, made with `boincserver user add`."""
    ensure_example_app(jobs_stack, "uppercase")
    made = json.loads(run_cli("user", "add", "boinc.submit@example.org", "--submit", "uppercase", "--json",
                              cwd=jobs_stack.dir).stdout)
    assert made["created"] and len(made["authenticator"]) == 32
    return made["authenticator"]


def summary(stack: Stack, authenticator: str, batch: int) -> dict:
    """Our results endpoint's count of the batch's jobs (done: assimilated)."""
    reply = requests.post(f"{stack.local}/{stack.project}/boincserver_results",
                          data={"authenticator": authenticator, "batch": batch}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()["summary"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_boincs_own_client_submits_queries_fetches_and_retires(jobs_stack, boinc_client, boinc_submit, submitter,
                                                               tmp_path):
    bs = boinc_submit
    base = f"{jobs_stack.local}/{jobs_stack.project}/"
    server = bs.BOINC_SERVER(base, submitter)
    batch_name = f"boinc_submit_{os.getpid()}"
    made = server.create_batch("uppercase", batch_name)
    assert "error" not in made, made
    batch = int(made["batch_id"])

    # The input goes up with job_file.php (query_files, then the missing ones as attachments).
    local = tmp_path / "markup.txt"
    local.write_bytes(UPLOADED)
    phys = f"jf_{hashlib.md5(UPLOADED).hexdigest()}"
    sent = server.upload_files([str(local)], [phys], batch_id=batch)
    assert "error" not in sent, sent
    jobs = {f"bsub_up_{os.getpid()}": UPLOADED, f"bsub_inline_{os.getpid()}": INLINE.encode()}
    names = list(jobs)
    desc = bs.BATCH_DESC("uppercase", [
        bs.JOB_DESC(files=[bs.FILE_DESC(phys, "local_staged")], name=names[0]),
        bs.JOB_DESC(files=[bs.FILE_DESC(INLINE, "inline")], name=names[1])], batch_id=batch)
    submitted = server.submit_batch(desc)
    assert "error" not in submitted and int(submitted["batch_id"]) == batch, submitted

    # Until the client has run both and sample_assimilator has moved the outputs.
    deadline, last_update = time.monotonic() + TIMEOUT, 0.0
    while summary(jobs_stack, submitter, batch)["pending"]:
        assert time.monotonic() < deadline, f"{server.query_batch(batch, get_job_details=True)}\n" \
                                            f"client log:\n{boinc_client.log()[-4000:]}"
        if time.monotonic() - last_update > 20:
            boinc_client.cmd("--project", boinc_client.url, "update", check=False)
            last_update = time.monotonic()
        time.sleep(3)
    assert summary(jobs_stack, submitter, batch) == {"done": 2, "pending": 0, "failed": 0}
    queried = server.query_batch(batch, get_job_details=True)
    assert (queried["name"], queried["state"], queried["njobs"]) == (batch_name, "2", "2"), queried  # COMPLETE
    by_name = {job["name"]: job for job in as_list(queried["job"])}
    assert sorted(by_name) == sorted(names) and all(j["status"] == "done" for j in by_name.values())
    moved = apache_sh(jobs_stack.dir, f'ls "$PROJECT_ROOT/results/{batch}"').split()
    assert sorted(moved) == sorted(f"{n}__file_out" for n in names)  # not in upload/ any more

    # Each output by its instance's name (query_job, sent with boinc_submit's own do_http_post).
    instances, physical = {}, {}
    for name, job in by_name.items():
        answer = server.do_http_post(f"<query_job>\n<authenticator>{submitter}</authenticator>\n"
                                     f"<job_id>{job['id']}</job_id>\n</query_job>\n")
        canonical = [i for i in as_list(answer["instance"]) if i["id"] == job["canonical_instance_id"]]
        instances[name] = canonical[0]["name"]
        reply = requests.get(server.get_output_file_url(instances[name], 0), timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.content == jobs[name].upper(), name
        # Named as BOINC names it: <instance>_r<random>_0 (tools/backend_lib.cpp:165, lrand48).
        physical[name] = reply.headers["Content-Disposition"].split('filename="', 1)[1].rstrip('"')
        assert physical[name].startswith(f"{instances[name]}_r") and physical[name].endswith("_0"), physical
    # The batch's zip: the outputs under those physical names.
    reply = requests.get(server.get_output_files_url(batch), timeout=60)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == "application/zip", reply.text
    with zipfile.ZipFile(io.BytesIO(reply.content)) as zf:
        assert {n: zf.read(n) for n in zf.namelist()} == {
            physical[name]: data.upper() for name, data in jobs.items()}
    # lib/remote_submit.cpp's form: the authenticator itself as auth_str.
    query = {"cmd": "workunit_file", "wu_name": names[0], "file_num": 0}
    reply = requests.get(f"{base}get_output.php?{urlencode(query | {'auth_str': submitter})}", timeout=60)
    assert reply.content == UPLOADED.upper()
    reply = requests.get(f"{base}get_output.php?{urlencode(query | {'auth_str': '0' * 32})}", timeout=60)
    assert (reply.status_code, reply.text) == (403, "ERROR: bad authenticator\n")

    # BOINC's web pages: the submitter's batches to its login cookie (the authenticator) only.
    page = requests.get(f"{base}submit.php?action=show_user_batches", cookies={"auth": submitter}, timeout=60)
    assert page.status_code == 200 and batch_name in page.text, page.text[-3000:]
    assert "Fatal error" not in page.text and "Warning" not in page.text, page.text[-3000:]
    anonymous = requests.get(f"{base}submit.php?action=show_user_batches", allow_redirects=False, timeout=60)
    assert anonymous.status_code == 302 and "login_form.php" in anonymous.headers["Location"]
    assert batch_name not in anonymous.text
    # A batch's page links its zip to get_output3.php: remote_apps.inc says sample_assimilator
    # moves uppercase's outputs.
    page = requests.get(f"{base}submit.php?action=query_batch&batch_id={batch}", cookies={"auth": submitter},
                        timeout=60)
    assert page.status_code == 200 and f"get_output3.php?action=get_batch&batch_id={batch}" in page.text, \
        page.text[-3000:]
    apps = requests.get(f"{base}show_apps.php", timeout=60)
    assert apps.status_code == 200 and "Fatal error" not in apps.text, apps.text[-3000:]
    friendly = json.loads(run_cli("app", "list", "--json", cwd=jobs_stack.dir).stdout)
    long_name = next(a for a in friendly if a["name"] == "uppercase").get("friendly_name") or "uppercase"
    assert long_name in apps.text, apps.text[-3000:]

    retired = server.retire_batch(batch)
    assert retired.get("success") == "1", retired
    assert server.query_batch(batch)["state"] == "4"  # BATCH_STATE_RETIRED: clean-batches takes it from here
    assert batch not in [int(b["id"]) for b in as_list(server.query_batches(False).get("batch", []))]
