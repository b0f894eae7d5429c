"""Faults under load (issue 11): bench/throughput.py's simulated hosts run 200 jobs on a project
of this module's own while the apache container crashes (kill -9, brought back by Docker's
restart policy) or MariaDB restarts. The run must drain, every job assimilated exactly once,
and the fault must really have happened and been seen by the hosts. The bench's long runs
(2,000 jobs, 100 hosts) are in `./run bench`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Stack, apache_sh, running_project

BENCH = Path(__file__).resolve().parents[2] / "bench" / "throughput.py"
JOBS = 200


@pytest.fixture(scope="module")
def faults_stack(tmp_path_factory):
    """A project of its own: crashing the session's shared one would disturb other tests."""
    pytest.importorskip("httpx", reason="the load generator needs httpx (the test extra)")
    with running_project(tmp_path_factory.mktemp("faults"), "flt") as s:
        yield s


def scheduler_log_tail(stack: Stack) -> str:
    """The scheduler's last lines (why a report went unacknowledged, say), for a failure's message."""
    try:
        return "scheduler.log:\n" + apache_sh(stack.dir, 'tail -n 80 "log_$(hostname -s)/scheduler.log"')[-6000:]
    except AssertionError as exc:
        return f"(no scheduler log: {str(exc)[:200]})"


def run_with_fault(stack: Stack, fault: str) -> dict:
    # A stall window longer than a host's HTTP timeout (120 s): a request that hangs (seen once
    # in 10 MariaDB restarts, see below) is given up and sent again, as a client does, before
    # the run is called stalled; nothing may be lost all the same.
    done = subprocess.run([sys.executable, str(BENCH), "--project-dir", str(stack.dir), "--hosts", "10",
                           "--jobs", str(JOBS), "--fault", fault, "--stall", "300", "--json"],
                          capture_output=True, text=True, timeout=1200)
    try:
        out = json.loads(done.stdout)
    except ValueError:
        out = {}
    summary = {k: v for k, v in (out.get("runs") or [{}])[0].items()
               if k in ("assimilated", "errors", "host_view", "faults")}
    assert done.returncode == 0, (f"{fault}: exit {done.returncode}\n{summary}\nproblems: {out.get('problems', [])[:6]}"
                                  f"\n{done.stderr[:1500]}\n{scheduler_log_tail(stack)}")
    assert out["problems"] == []
    (run,) = out["runs"]
    assert (run["lost"], run["duplicates"], run["assimilated"]) == (0, 0, JOBS)
    (seen,) = run["faults"]
    assert seen["kind"] == fault and seen["error"] == ""
    assert seen["started_at_after"] != seen["started_at_before"], "the container did not start again"
    # Recovered by itself within seconds: work handed out again and jobs assimilated (the
    # 5-minute bin/start --cron alone would take minutes to restart a daemon that died).
    # No work after the fault means none was left to hand out (the hosts held the rest, seen
    # once in CI with the fault at 124 of 200): had the scheduler stopped giving work, the run
    # would not have drained, which the exit code above checks.
    assert seen["longest_work_gap_s"] is None or seen["longest_work_gap_s"] < 60, seen
    assert seen["first_assimilated_s"] is not None and seen["first_assimilated_s"] < 60, seen
    return run


@pytest.mark.skipif(os.geteuid() != 0, reason="kill -9 of a container's process from the host needs root")
def test_apache_crash_comes_back_by_itself_and_nothing_is_lost(faults_stack: Stack):
    run = run_with_fault(faults_stack, "kill-apache")
    seen = run["faults"][0]
    # A crash, not a stop: Docker's restart policy brought the container back.
    assert seen["restart_count_after"] == seen["restart_count_before"] + 1
    # It came while requests were in flight: hosts saw them cut, and sent them again.
    assert seen["host_errors"] > 0 and run["host_view"]["rpc_retries"] + run["host_view"].get("upload_retries", 0) > 0
    assert all(kind.startswith(("scheduler: ", "upload: ")) for kind in run["errors"]), run["errors"]


def test_mariadb_restart_is_survived_and_nothing_is_lost(faults_stack: Stack):
    run = run_with_fault(faults_stack, "restart-mysql")
    seen = run["faults"][0]
    # Docker restarted the same container (no crash): the restart count stays.
    assert seen["restart_count_after"] == seen["restart_count_before"]
    # Hosts may see nothing: the FastCGI scheduler reconnects per request, and MariaDB is back
    # within a second. What they did see can only be the scheduler's "project down" replies, its
    # "account key refused" when MariaDB went away during the user lookup (BOINC reads that as a
    # wrong key; bench/throughput_hosts.py), or a request that got no answer until the host's
    # timeout (once in 10 restarts, a request sent just after Apache's graceful restart that
    # follows the feeder's; cause not found, README "Faults").
    expected = ("scheduler: account key refused", "scheduler: ReadTimeout")
    assert all("project down" in kind or kind in expected for kind in run["errors"]), run["errors"]
