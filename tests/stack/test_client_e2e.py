"""End to end with a real BOINC client: Debian's boinc-client 7.20.5 computes the jobs.

The client (tests/stack/client/) runs on the host's network and is attached to the
jobs_stack project at http://127.0.0.1:PORT/NAME/ with an account made by boinccmd. Each
test creates a job with `boincserver create-work`, lets the client fetch, run and report it
(nudged with `boinccmd --project URL update`), waits for the validator and the assimilator,
and reads the output with `boincserver results --out`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .conftest import Stack, ensure_example_app, run_cli

TIMEOUT = 420


def wait_done(stack: Stack, client, wu: str) -> dict:
    deadline = time.monotonic() + TIMEOUT
    last_update = 0.0
    job = {}
    while time.monotonic() < deadline:
        done = run_cli("results", "--wu", wu, "--json", cwd=stack.dir, check=False)
        # Exit 2 is a failed job (reported below); anything else but 0 is `results` failing.
        assert done.returncode in (0, 2), f"boincserver results failed:\n{done.stdout}\n{done.stderr}"
        job = json.loads(done.stdout)["jobs"][0]
        if job.get("state") in ("done", "failed"):
            return job
        if time.monotonic() - last_update > 20:
            client.cmd("--project", client.url, "update", check=False)
            last_update = time.monotonic()
        time.sleep(3)
    raise AssertionError(f"job {wu} not done in {TIMEOUT}s: {job}\nclient log:\n{client.log()[-4000:]}")


def run_job(stack: Stack, client, app: str, wu: str, text: str, tmp_path: Path) -> str:
    src = tmp_path / f"{wu}.txt"
    src.write_text(text)
    run_cli("create-work", app, src, "--wu-name", wu, "--max-error-results", "2", cwd=stack.dir)
    job = wait_done(stack, client, wu)
    assert job["state"] == "done", f"{job}\nclient log:\n{client.log()[-4000:]}"
    out = tmp_path / "out"
    report = json.loads(run_cli("results", "--wu", wu, "--out", out, "--json", cwd=stack.dir).stdout)
    assert report["summary"] == {"done": 1, "pending": 0, "failed": 0}
    assert job["outputs"] == ["out"]
    return (out / wu / "out").read_text()


def test_native_app_uppercase_computed_by_a_real_client(jobs_stack: Stack, boinc_client, tmp_path):
    ensure_example_app(jobs_stack, "uppercase")
    got = run_job(jobs_stack, boinc_client, "uppercase", "e2e_upper", "Hello, BOINC volunteers!\n", tmp_path)
    assert got == "HELLO, BOINC VOLUNTEERS!\n"
    assert "Starting task e2e_upper_0" in boinc_client.log()


def test_wrapper_app_wordcount_computed_by_a_real_client(jobs_stack: Stack, boinc_client, tmp_path):
    ensure_example_app(jobs_stack, "wordcount")
    got = run_job(jobs_stack, boinc_client, "wordcount", "e2e_words", "one two three\nfour five six seven\n",
                  tmp_path)
    assert got.strip() == "7"
    assert "Starting task e2e_words_0" in boinc_client.log()


def test_an_input_shared_by_content_outlives_the_first_job_that_used_it(jobs_stack: Stack, boinc_client, tmp_path):
    """Inputs are stored once under their content's name, so two jobs with equal inputs share
    one file: BOINC's file_deleter must not take it away with the first job's other files."""
    from boincserver.boinc import jobs as bj

    from .conftest import apache_sh, sql
    ensure_example_app(jobs_stack, "uppercase")
    text = "one input, two jobs\n"
    assert run_job(jobs_stack, boinc_client, "uppercase", "e2e_share_1", text, tmp_path) == text.upper()
    # The second job is made before the file_deleter has been through the first.
    src = tmp_path / "again.txt"
    src.write_text(text)
    run_cli("create-work", "uppercase", src, "--wu-name", "e2e_share_2", cwd=jobs_stack.dir)
    deadline = time.monotonic() + 120
    while sql(jobs_stack.dir, jobs_stack.project,
              "SELECT file_delete_state FROM workunit WHERE name = 'e2e_share_1'").strip() != "2":  # 2: done
        assert time.monotonic() < deadline, "the file_deleter did not get to the first job"
        time.sleep(2)
    import hashlib
    staged = bj.dir_hier_path(bj.staged_name(hashlib.md5(text.encode()).hexdigest()))
    assert apache_sh(jobs_stack.dir, f"ls download/{staged}").strip() == f"download/{staged}"
    job = wait_done(jobs_stack, boinc_client, "e2e_share_2")
    assert job["state"] == "done", job
