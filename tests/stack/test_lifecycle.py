"""The batch life cycle on the real stack, with the real client of test_client_e2e.py.

Batch A (an input of its own and one it shares with batch B) is refused retirement while its
jobs are pending, computed by the client, retired, and removed by `boincserver-jobs
clean-batches` run on demand: its rows, its outputs and its own input go; B and the shared
input stay. Batch C expires (expire_time set in the database): a run on demand cancels and
retires it, and the project's scheduled task (bin/start --cron, every 5 minutes) removes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from boincserver.boinc import jobs as bj
from boincserver.boinc import lifecycle as bl

from .conftest import Stack, apache_sh, compose, ensure_example_app, run_cli, sql

TIMEOUT = 420
CRON_TIMEOUT = 720  # two of bin/start --cron's 5-minute runs, and room


def submit(stack: Stack, folder: Path, inputs: list[str], tag: str) -> int:
    """A batch of one job per input; job names of its own (they follow the jobs file, which
    batches of one job share)."""
    folder.mkdir(parents=True)
    for i, text in enumerate(inputs):
        (folder / f"in{i}.txt").write_text(text)
    (folder / "jobs.txt").write_text("".join(f"in{i}.txt\n" for i in range(len(inputs))))
    out = run_cli("submit", "uppercase", "--jobs", folder / "jobs.txt", "--batch-name", folder.name,
                  "--wu-prefix", f"lifecycle_{folder.name}_{tag}",
                  "--max-error-results", "2", "--json", cwd=stack.dir).stdout
    return json.loads(out)["batch"]


def staged(text: str) -> str:
    return "download/" + bj.dir_hier_path(bj.staged_name(hashlib.md5(text.encode()).hexdigest()))


def exists(stack: Stack, path: str) -> bool:
    return apache_sh(stack.dir, f"test -e {path} && echo yes || echo no").strip() == "yes"


def count(stack: Stack, statement: str) -> int:
    return int(sql(stack.dir, stack.project, statement).strip())


def clean_batches(stack: Stack) -> dict:
    return json.loads(compose(stack.dir, "exec", "-T", "apache", "boincserver-jobs", "clean-batches").stdout)


def scheduled_runs(stack: Stack) -> list[dict]:
    """The reports of the task's runs by bin/start --cron (its output, log_HOST/OUTPUT)."""
    log = apache_sh(stack.dir, f"cat log_boincserver/{bl.TASK_OUTPUT} 2>/dev/null || true")
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def wait_batch_done(stack: Stack, client, batch: int, jobs: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    last_update = 0.0
    report = {}
    while time.monotonic() < deadline:
        done = run_cli("results", "--batch", batch, "--json", cwd=stack.dir, check=False)
        report = json.loads(done.stdout or "{}")
        if report.get("summary", {}).get("done") == jobs:
            return
        assert report.get("summary", {}).get("failed", 0) == 0, report
        if time.monotonic() - last_update > 20:
            client.cmd("--project", client.url, "update", check=False)
            last_update = time.monotonic()
        time.sleep(3)
    raise AssertionError(f"batch {batch} not done in {TIMEOUT}s: {report}\nclient log:\n{client.log()[-3000:]}")


def test_a_retired_batch_and_its_files_go_once_finished_and_an_expired_one_by_the_scheduled_task(
        jobs_stack: Stack, boinc_client, tmp_path):
    s, tag = jobs_stack, f"{os.getpid()}_{time.time_ns()}"
    ensure_example_app(s, "uppercase")
    assert bl.TASK_COMMAND in bl.task_commands(apache_sh(s.dir, "cat config.xml"))
    assert count(s, "SELECT COUNT(*) FROM batch_file_assoc") == 0  # made at start, for job_file.php
    own, shared = f"lifecycle own {tag}\n", f"lifecycle shared {tag}\n"
    a = submit(s, tmp_path / "a", [own, shared], tag)
    b = submit(s, tmp_path / "b", [shared], tag)

    # Pending jobs: retiring is refused and changes nothing.
    refused = run_cli("batch", "retire", a, cwd=s.dir, check=False)
    assert refused.returncode == 1 and "not finished; nothing was changed" in refused.stderr, refused.stderr
    assert count(s, f"SELECT state FROM batch WHERE id={a}") == bj.BATCH_IN_PROGRESS

    wait_batch_done(s, boinc_client, a, 2)
    wait_batch_done(s, boinc_client, b, 1)
    copied = json.loads(run_cli("results", "--batch", a, "--out", tmp_path / "out", "--json", cwd=s.dir).stdout)
    assert len(copied["copied"]) == 2
    a_jobs = [j["name"] for j in copied["jobs"]]
    assert exists(s, staged(own)) and exists(s, staged(shared)) and exists(s, f"results/{a}")

    retired = json.loads(run_cli("batch", "retire", a, "--json", cwd=s.dir).stdout)
    assert retired == {"batch": a, "state": "retired", "was_retired": False}
    # On demand; the jobs wait for the transitioner and the file_deleter (file_delete_state DONE).
    deadline, runs = time.monotonic() + 180, []
    while count(s, f"SELECT COUNT(*) FROM batch WHERE id={a}"):
        assert time.monotonic() < deadline, runs[-3:]
        time.sleep(3 if runs else 0)
        runs.append(clean_batches(s))
    reports = [x for run in runs + scheduled_runs(s) for x in run.get("batches", []) if x["batch"] == a]
    print("clean-batches on demand:", json.dumps(runs[-1]))
    assert reports and reports[0]["jobs_purged"] == 2 and reports[0]["results_purged"] >= 2, reports
    assert reports[0]["outputs_deleted"] == 2 and reports[0]["batch_deleted"], reports
    names = ",".join(f"'{n}'" for n in a_jobs)
    assert count(s, f"SELECT COUNT(*) FROM batch WHERE id={a}") == 0
    assert count(s, f"SELECT COUNT(*) FROM workunit WHERE name IN ({names})") == 0
    assert count(s, f"SELECT COUNT(*) FROM result WHERE name LIKE '{a_jobs[0]}%' OR name LIKE '{a_jobs[1]}%'") == 0
    assert not exists(s, f"results/{a}") and not exists(s, staged(own))
    # Batch B, not retired, keeps its job, its output and the input it shares with A.
    assert exists(s, staged(shared)) and exists(s, f"results/{b}")
    assert count(s, f"SELECT COUNT(*) FROM workunit WHERE batch={b}") == 1
    assert a not in [x["id"] for x in json.loads(run_cli("batch", "list", "--json", cwd=s.dir).stdout)]
    assert "no batch" in run_cli("results", "--batch", a, cwd=s.dir, check=False).stderr

    # Batch C expires: a run on demand cancels its job and retires it; bin/start --cron removes it.
    mine = f"lifecycle expired {tag}\n"
    c = submit(s, tmp_path / "c", [mine], tag)
    sql(s.dir, s.project, f"UPDATE batch SET expire_time=UNIX_TIMESTAMP()-1 WHERE id={c}")
    print("clean-batches on demand:", json.dumps(clean_batches(s)))  # unless the scheduled run just did it
    assert count(s, f"SELECT state FROM batch WHERE id={c}") == bl.BATCH_RETIRED
    assert count(s, f"SELECT error_mask & {bj.WU_ERROR_CANCELLED} FROM workunit WHERE batch={c}") == \
        bj.WU_ERROR_CANCELLED
    deadline, last_update = time.monotonic() + CRON_TIMEOUT, 0.0
    while count(s, f"SELECT COUNT(*) FROM batch WHERE id={c}"):
        assert time.monotonic() < deadline, apache_sh(s.dir, f"tail -5 log_boincserver/{bl.TASK_OUTPUT}")
        if time.monotonic() - last_update > 30:  # a result the client took before the cancel comes back
            boinc_client.cmd("--project", boinc_client.url, "update", check=False)
            last_update = time.monotonic()
        time.sleep(5)
    scheduled = scheduled_runs(s)
    print("the scheduled task's last run:", json.dumps(scheduled[-1]))
    assert any(x["batch"] == c and x["batch_deleted"] for run in scheduled for x in run.get("batches", []))
    assert count(s, f"SELECT COUNT(*) FROM workunit WHERE batch={c}") == 0
    assert not exists(s, staged(mine)) and not exists(s, f"results/{c}")
