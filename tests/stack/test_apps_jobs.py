"""Apps, jobs, batches and results on the real stack, without a client (see test_client_e2e.py).

Every error case checks that nothing was created: no workunit row, no batch row.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from boincserver.boinc import jobs as bj

from .conftest import Stack, apache_sh, ensure_example_app, run_cli, sql


def count(stack: Stack, table: str, where: str = "1") -> int:
    return int(sql(stack.dir, stack.project, f"SELECT COUNT(*) FROM {table} WHERE {where}").strip())


def write_jobs(folder: Path, n: int, prefix: str = "in") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        (folder / f"{prefix}{i}.txt").write_text(f"input number {i}\n")
        lines.append(f"{prefix}{i}.txt")
    jobs = folder / "jobs.txt"
    jobs.write_text("# one job a line\n" + "\n".join(lines) + "\n")
    return jobs


@pytest.fixture(scope="module")
def apps_ready(jobs_stack):
    ensure_example_app(jobs_stack, "uppercase")
    return jobs_stack


def test_app_add_registers_signed_version_and_daemons(apps_ready: Stack):
    stack = apps_ready
    apps = {a["name"]: a for a in json.loads(run_cli("app", "list", "--json", cwd=stack.dir).stdout)}
    up = apps["uppercase"]
    assert up["versions"][0]["platform"] == "x86_64-pc-linux-gnu"
    assert up["daemons"] == ["sample_trivial_validator --app uppercase", "sample_assimilator --app uppercase"]
    status = json.loads(run_cli("status", "--json", cwd=stack.dir).stdout)
    running = {d["command"] for d in status["daemons"] if d["running"]}
    assert {"sample_trivial_validator --app uppercase", "sample_assimilator --app uppercase"} <= running
    # The app version's XML carries a signature made with the project's key (no prompt, no
    # signing in apache) and the API version found in uc2.
    xml = sql(stack.dir, stack.project,
              "SELECT xml_doc FROM app_version v JOIN app a ON a.id=v.appid WHERE a.name='uppercase'")
    assert "<file_signature>" in xml and "<api_version>8.3.0</api_version>" in xml


def newest_version(stack: Stack, app: str) -> int:
    """The app's newest version number as BOINC stores it (1.02 is 102)."""
    apps = {a["name"]: a for a in json.loads(run_cli("app", "list", "--json", cwd=stack.dir).stdout)}
    return max(v["version"] for v in apps[app]["versions"])


def test_a_second_add_is_the_next_version(apps_ready: Stack):
    # Adds a version to the shared project; no other test depends on how many it has.
    before = newest_version(apps_ready, "uppercase")
    out = json.loads(run_cli("app", "add", "uppercase", "--example", "uppercase", "--json",
                             cwd=apps_ready.dir).stdout)
    after = newest_version(apps_ready, "uppercase")
    assert after > before
    assert out["version"] == f"{after // 100}.{after % 100:02d}"
    assert out["daemons_added"] == []


def test_app_add_with_a_missing_executable_fails_cleanly(apps_ready: Stack, tmp_path):
    done = run_cli("app", "add", "ghost", "--exe", tmp_path / "nothing", cwd=apps_ready.dir, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: file ") and "nothing was installed" in done.stderr
    assert "ghost" not in run_cli("app", "list", cwd=apps_ready.dir).stdout


def test_unknown_app_creates_nothing(apps_ready: Stack, tmp_path):
    stack = apps_ready
    before = count(stack, "workunit")
    (tmp_path / "in.txt").write_text("x\n")
    done = run_cli("create-work", "nosuchapp", tmp_path / "in.txt", cwd=stack.dir, check=False)
    assert done.returncode == 1
    assert "Error: unknown app 'nosuchapp'" in done.stderr and "nothing was created" in done.stderr
    done = run_cli("submit", "nosuchapp", "--jobs", write_jobs(tmp_path / "j", 3), cwd=stack.dir, check=False)
    assert done.returncode == 1 and "unknown app 'nosuchapp'" in done.stderr
    assert count(stack, "workunit") == before


def test_missing_input_file_creates_nothing(apps_ready: Stack, tmp_path):
    stack = apps_ready
    before, batches = count(stack, "workunit"), count(stack, "batch")
    done = run_cli("create-work", "uppercase", tmp_path / "nope.txt", cwd=stack.dir, check=False)
    assert done.returncode == 1 and "does not exist; no job was created" in done.stderr
    jobs = write_jobs(tmp_path / "j", 4)
    (tmp_path / "j" / "in2.txt").unlink()
    done = run_cli("submit", "uppercase", "--jobs", jobs, cwd=stack.dir, check=False)
    assert done.returncode == 1
    assert "line 4: input file in2.txt does not exist" in done.stderr
    assert (count(stack, "workunit"), count(stack, "batch")) == (before, batches)


def test_malformed_jobs_file_reports_line_numbers_and_creates_nothing(apps_ready: Stack, tmp_path):
    stack = apps_ready
    before, batches = count(stack, "workunit"), count(stack, "batch")
    jobs = write_jobs(tmp_path, 3)
    with jobs.open("a") as f:
        f.write('--command-line "never closed in0.txt\n')
        f.write("--wu-name\n")
    done = run_cli("submit", "uppercase", "--jobs", jobs, cwd=stack.dir, check=False)
    assert done.returncode == 1
    assert "2 bad line(s); nothing was created" in done.stderr
    assert "line 5: cannot split the line" in done.stderr and "line 6: --wu-name needs a value" in done.stderr
    assert (count(stack, "workunit"), count(stack, "batch")) == (before, batches)


def test_submit_is_one_batch_in_the_download_hierarchy_and_twice_is_refused(apps_ready: Stack, tmp_path):
    stack = apps_ready
    jobs = write_jobs(tmp_path, 40)
    with jobs.open("a") as f:
        f.write('--wu-name named_one --command-line "-flag x" --priority 3 in0.txt\n')
    result = json.loads(run_cli("submit", "uppercase", "--jobs", jobs, "--max-error-results", "3",
                                "--batch-name", "test batch", "--json", cwd=stack.dir).stdout)
    batch = result["batch"]
    try:
        check_batch_submitted_refused_again_and_aborted(stack, jobs, result)
    finally:
        # 41 pending jobs would otherwise go to the real client of test_client_e2e.py.
        run_cli("batch", "abort", batch, cwd=stack.dir, check=False)


def check_batch_submitted_refused_again_and_aborted(stack: Stack, jobs: Path, result: dict) -> None:
    batch = result["batch"]
    assert batch > 0 and result["created"] == 41
    assert result["files_sent"] == 40  # in0.txt twice: sent once
    assert count(stack, "workunit", f"batch={batch}") == 41
    assert count(stack, "workunit", f"batch={batch} AND max_error_results=3 AND max_total_results=4") == 41
    row = sql(stack.dir, stack.project, "SELECT priority, xml_doc FROM workunit WHERE name='named_one'")
    assert row.startswith("3\t") and "-flag x" in row
    name = "jf_" + __import__("hashlib").md5(b"input number 7\n").hexdigest()
    assert apache_sh(stack.dir, f"cat $PROJECT_ROOT/download/{bj.dir_hier_path(name)}") == "input number 7\n"
    listed = {b["id"]: b for b in json.loads(run_cli("batch", "list", "--json", cwd=stack.dir).stdout)}
    assert listed[batch]["jobs"] == 41 and listed[batch]["pending"] == 41 and listed[batch]["name"] == "test batch"

    # The same file again: its job names exist; nothing is created, no batch row either.
    batches = count(stack, "batch")
    again = run_cli("submit", "uppercase", "--jobs", jobs, cwd=stack.dir, check=False)
    assert again.returncode == 1 and "submitted before" in again.stderr and "nothing was created" in again.stderr
    assert count(stack, "workunit", f"batch={batch}") == 41 and count(stack, "batch") == batches

    # Aborted: every job cancelled, results reports them failed (exit 2).
    aborted = json.loads(run_cli("batch", "abort", batch, "--json", cwd=stack.dir).stdout)
    assert aborted["jobs_cancelled"] == 41
    report = run_cli("results", "--batch", batch, "--json", cwd=stack.dir, check=False)
    assert report.returncode == 2
    data = json.loads(report.stdout)
    assert data["summary"]["failed"] == 41 and data["jobs"][0]["errors"] == ["cancelled"]
    listed = {b["id"]: b for b in json.loads(run_cli("batch", "list", "--json", cwd=stack.dir).stdout)}
    assert listed[batch]["state"] == "aborted"


def test_results_of_unknown_jobs_and_batches(apps_ready: Stack):
    done = run_cli("results", "--wu", "no_such_job", cwd=apps_ready.dir, check=False)
    assert done.returncode == 1 and "no job named 'no_such_job'" in done.stderr
    done = run_cli("results", "--batch", "999999", cwd=apps_ready.dir, check=False)
    assert done.returncode == 1 and "no batch 999999" in done.stderr


def test_app_add_with_the_signing_key_kept_offline(tmp_path):
    """A project made with `init --offline-signing`: the server has no private key, so
    `app add` says to sign here, and signs here with --keys-dir."""
    from .conftest import free_port
    port = free_port()
    folder = tmp_path / f"off_{__import__('os').getpid()}"
    keys = tmp_path / "keys"
    run_cli("init", folder, "--url-base", f"http://127.0.0.1:{port}", "--http-port", port, "--offline-signing", keys)
    try:
        run_cli("up", cwd=folder)
        done = run_cli("app", "add", "uppercase", "--example", "uppercase", cwd=folder, check=False)
        assert done.returncode == 1 and "kept offline" in done.stderr and "--keys-dir" in done.stderr
        out = json.loads(run_cli("app", "add", "uppercase", "--example", "uppercase", "--keys-dir", keys, "--json",
                                 cwd=folder).stdout)
        assert out["version"] == "1.00" and "key file" in out["signed_with"]
        from boincserver.boinc import keys as bk
        public = bk.parse_public_key((keys / "code_sign_public").read_text())
        xml = sql(folder, folder.name, "SELECT xml_doc FROM app_version")
        signature = xml.split("<file_signature>")[1].split("</file_signature>")[0].replace("\\n", "\n")
        uc2 = tmp_path / "uc2"
        uc2.write_bytes(subprocess.run(
            ["docker", "compose", "exec", "-T", "apache", "sh", "-c",
             "cat $PROJECT_ROOT/download/uppercase_1.00_x86_64-pc-linux-gnu_main"],
            cwd=folder, capture_output=True, check=True).stdout)
        assert bk.verify_file_signature(uc2, signature, public)
    finally:
        run_cli("down", "--volumes", "--yes", cwd=folder, check=False)
