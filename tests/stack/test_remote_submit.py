"""Remote submission end to end: a submitter made with `user add` submits from a folder that is
not the project's, over HTTP only (boincserver's client and BOINC's own handlers), Debian's
real boinc-client runs the jobs, the outputs come back byte for byte through the results
endpoint, and the batch retires. Refusals (a wrong authenticator, an app the account may not
submit to, a revoked account) leave nothing behind."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from .conftest import Stack, ensure_example_app, run_cli, sql

TIMEOUT = 420
# Contents of this run alone: an input another test already put on the shared project would
# (rightly) not be sent again. twin.txt has plain.txt's content: it is sent once.
RUN = uuid.uuid4().hex.encode()
INPUTS = {"plain.txt": b"hello remote world " + RUN + b"\n",
          "markup.txt": b"<tag attr=\"1\"> & ampersand; 'quotes' \xc3\xa9t\xc3\xa9 " + RUN + b"\n",
          "twin.txt": b"hello remote world " + RUN + b"\n"}


@pytest.fixture(scope="module")
def submitter(jobs_stack: Stack, tmp_path_factory):
    """A submitter of the uppercase app: (its e-mail, the file holding its authenticator)."""
    ensure_example_app(jobs_stack, "uppercase")
    ensure_example_app(jobs_stack, "wordcount")
    email = "scientist@example.org"
    made = json.loads(run_cli("user", "add", email, "--name", "A Scientist", "--submit", "uppercase", "--json",
                              cwd=jobs_stack.dir).stdout)
    assert made["created"] and made["apps"] == ["uppercase"] and len(made["authenticator"]) == 32
    folder = tmp_path_factory.mktemp("laptop")
    key = folder / "auth"
    key.write_text(made["authenticator"] + "\n")
    key.chmod(0o600)
    return email, key


def remote(stack: Stack, key: Path, *args, cwd: Path, check: bool = True):
    return run_cli(*args, "--remote", f"{stack.local}/{stack.project}/", "--authenticator-file", key, cwd=cwd,
                   check=check)


def batch_count(stack: Stack) -> int:
    return int(sql(stack.dir, stack.project, "SELECT COUNT(*) FROM batch").strip())


def test_a_submitter_submits_remotely_and_gets_the_outputs_byte_for_byte(jobs_stack, boinc_client, submitter,
                                                                         tmp_path):
    email, key = submitter
    laptop = key.parent  # no project folder here: everything goes over HTTP
    for name, data in INPUTS.items():
        (laptop / name).write_bytes(data)
    (laptop / "jobs.txt").write_text("plain.txt\n--wu-name remote_markup markup.txt\ntwin.txt\n")
    sent = json.loads(remote(jobs_stack, key, "submit", "uppercase", "--jobs", "jobs.txt", "--json",
                             cwd=laptop).stdout)
    assert sent["created"] == 3 and sent["files_sent"] == 2  # twin.txt is plain.txt's content
    batch = sent["batch"]
    owner = sql(jobs_stack.dir, jobs_stack.project, f"SELECT u.email_addr FROM batch b JOIN user u ON u.id=b.user_id "
                                                    f"WHERE b.id={batch}").strip()
    assert owner == email

    deadline = time.monotonic() + TIMEOUT
    last_update = 0.0
    while True:
        report = json.loads(remote(jobs_stack, key, "results", "--batch", batch, "--json", cwd=laptop,
                                   check=False).stdout)
        if report["summary"]["pending"] == 0:
            break
        assert time.monotonic() < deadline, f"{report}\nclient log:\n{boinc_client.log()[-4000:]}"
        if time.monotonic() - last_update > 20:
            boinc_client.cmd("--project", boinc_client.url, "update", check=False)
            last_update = time.monotonic()
        time.sleep(3)
    assert report["summary"] == {"done": 3, "pending": 0, "failed": 0}, report

    out = laptop / "out"
    got = json.loads(remote(jobs_stack, key, "results", "--batch", batch, "--out", out, "--json", cwd=laptop).stdout)
    names = [job["name"] for job in got["jobs"]]
    assert "remote_markup" in names and len(got["copied"]) == 3
    by_input = dict(zip(["plain.txt", "markup.txt", "twin.txt"], names))
    for name, data in INPUTS.items():
        assert (out / by_input[name] / "out").read_bytes() == data.upper(), name  # the app uppercases ASCII

    listed = json.loads(remote(jobs_stack, key, "batch", "list", "--json", cwd=laptop).stdout)
    assert [(b["id"], b["jobs"], b["state"]) for b in listed if b["id"] == batch] == [(batch, 3, "complete")]
    retired = json.loads(remote(jobs_stack, key, "batch", "retire", batch, "--json", cwd=laptop).stdout)
    assert retired["batch"] == batch
    assert batch not in [b["id"] for b in json.loads(remote(jobs_stack, key, "batch", "list", "--json",
                                                            cwd=laptop).stdout)]


def test_refusals_submit_nothing(jobs_stack, submitter, tmp_path):
    email, key = submitter
    (tmp_path / "in.txt").write_text("x\n")
    (tmp_path / "jobs.txt").write_text("in.txt\n")
    before = batch_count(jobs_stack)

    wrong = tmp_path / "wrong"
    wrong.write_text("0" * 32)
    wrong.chmod(0o600)
    done = remote(jobs_stack, wrong, "submit", "uppercase", "--jobs", "jobs.txt", cwd=tmp_path, check=False)
    assert done.returncode == 1 and "refused the authenticator" in done.stderr and "user add" in done.stderr

    done = remote(jobs_stack, key, "submit", "wordcount", "--jobs", "jobs.txt", cwd=tmp_path, check=False)
    assert done.returncode == 1 and "may not submit to app 'wordcount'" in done.stderr

    (tmp_path / "bad.txt").write_text("in.txt\nmissing.txt\n")
    done = remote(jobs_stack, key, "submit", "uppercase", "--jobs", "bad.txt", cwd=tmp_path, check=False)
    assert done.returncode == 1 and "line 2: input file missing.txt does not exist" in done.stderr

    run_cli("user", "revoke", email, cwd=jobs_stack.dir)
    try:
        done = remote(jobs_stack, key, "submit", "uppercase", "--jobs", "jobs.txt", cwd=tmp_path, check=False)
        assert done.returncode == 1 and "may not submit" in done.stderr
    finally:
        run_cli("user", "add", email, "--submit", "uppercase", cwd=jobs_stack.dir)
    assert batch_count(jobs_stack) == before
