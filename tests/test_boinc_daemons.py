"""images/apache/boinc-daemons: the BOINC daemons started, and a dead one started again within
seconds (not at the next 5-minute `bin/start --cron`), against a fake project whose bin/start
starts `sleep` processes as daemons the way BOINC's does (a pid file each in pid_HOST/)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "images" / "apache" / "boinc-daemons"

# BOINC's bin/start in miniature: each daemon of ./daemons not running gets a new process and
# pid file (--cron does the same unless the project is stopped); every call is logged.
FAKE_START = """#!/bin/sh
echo "start $*" >> calls.log
[ "${1:-}" = --cron ] && [ -e stop_daemons ] && exit 0
rm -f stop_daemons
for d in $(cat daemons); do
  f="pid_$(hostname -s)/$d.pid"
  if [ -e "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then continue; fi
  setsid sleep 1000 </dev/null >/dev/null 2>&1 &
  echo $! > "$f"
done
"""
FAKE_STOP = """#!/bin/sh
echo stop >> calls.log
touch stop_daemons
for f in pid_$(hostname -s)/*.pid; do kill "$(cat "$f")" 2>/dev/null; done
"""


def pid_of(root: Path, host: str, daemon: str) -> int:
    return int((root / f"pid_{host}" / f"{daemon}.pid").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of this test's shell may linger as a zombie: dead all the same.
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"


def wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def project(tmp_path):
    host = socket.gethostname().split(".")[0]
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip() or host
    root = tmp_path / "project"
    (root / "bin").mkdir(parents=True)
    (root / f"pid_{host}").mkdir()
    (root / f"log_{host}").mkdir()
    for name, text in (("start", FAKE_START), ("stop", FAKE_STOP)):
        (root / "bin" / name).write_text(text)
        (root / "bin" / name).chmod(0o755)
    (root / "daemons").write_text("feeder transitioner\n")
    # A pid file from an earlier life of the container, of a daemon no longer configured.
    stale = root / f"pid_{host}" / "old_validator.pid"
    stale.write_text("999999\n")
    os.utime(stale, (time.time() - 3600,) * 2)
    # Apache's control, as far as the script uses it: a graceful restart, logged.
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "apache2ctl").write_text(f'#!/bin/sh\necho "apache2ctl $*" >> {root / "calls.log"}\n')
    (stubs / "apache2ctl").chmod(0o755)
    # The nudge of stalled workunits: logged, and failing while the file nudge_fails exists.
    (stubs / "boincserver-jobs").write_text(f'#!/bin/sh\necho "$*" >> {root / "nudges.log"}\n'
                                            f'[ ! -e {root / "nudge_fails"} ]\n')
    (stubs / "boincserver-jobs").chmod(0o755)
    # Passes of 0.2 s: a nudge again 10 passes after a restart, else every 100 (20 s).
    env = {**os.environ, "PROJECT_ROOT": str(root), "TMPDIR": str(tmp_path), "BOINCSERVER_DAEMONS_CHECK_S": "0.2",
           "BOINCSERVER_NUDGE_AGAIN": "10", "BOINCSERVER_NUDGE_EVERY": "100",
           "PATH": f"{stubs}:{os.environ['PATH']}"}
    proc = subprocess.Popen(["sh", str(SCRIPT)], cwd=root, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (root / f"pid_{host}" / "transitioner.pid").exists())
        yield root, host, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        for f in (root / f"pid_{host}").glob("*.pid"):
            try:
                os.kill(int(f.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def calls(root: Path) -> list[str]:
    return (root / "calls.log").read_text().splitlines()


def test_a_dead_daemon_is_started_again_within_seconds(project):
    root, host, proc = project
    feeder, transitioner = pid_of(root, host, "feeder"), pid_of(root, host, "transitioner")
    assert calls(root) == ["start "]
    time.sleep(1)
    assert calls(root) == ["start "], "nothing restarted while all daemons live (nor for the stale pid file)"
    os.kill(transitioner, signal.SIGKILL)
    assert wait_for(lambda: pid_of(root, host, "transitioner") != transitioner)
    assert alive(pid_of(root, host, "transitioner")) and pid_of(root, host, "feeder") == feeder
    time.sleep(1)
    assert calls(root) == ["start ", "start --cron"]
    # A new feeder: the FastCGI scheduler must let go of the old one's shared memory.
    os.kill(feeder, signal.SIGKILL)
    assert wait_for(lambda: pid_of(root, host, "feeder") != feeder and alive(pid_of(root, host, "feeder")))
    assert wait_for(lambda: calls(root)[-1] == "apache2ctl graceful")
    assert calls(root) == ["start ", "start --cron", "start --cron", "apache2ctl graceful"]


def test_a_stopped_project_stays_stopped_and_term_stops_the_daemons(project):
    root, host, proc = project
    feeder = pid_of(root, host, "feeder")
    subprocess.run(["sh", "bin/stop"], cwd=root, check=True)
    assert wait_for(lambda: not alive(feeder))
    time.sleep(1)
    assert "start --cron" not in calls(root)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert calls(root)[-1] == "stop"


def nudges(root: Path) -> int:
    log = root / "nudges.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_stalled_workunits_are_nudged_at_start_after_a_restart_and_again_a_little_later(project):
    root, host, proc = project
    assert wait_for(lambda: nudges(root) == 1)
    time.sleep(1)
    assert nudges(root) == 1, "nothing more while all daemons live (until the periodic nudge)"
    os.kill(pid_of(root, host, "transitioner"), signal.SIGKILL)
    assert wait_for(lambda: nudges(root) == 2)
    # The requests in flight when the daemons died end after that first nudge: another follows.
    assert wait_for(lambda: nudges(root) == 3, seconds=5)
    assert (root / "nudges.log").read_text().splitlines() == ["nudge-stalled"] * 3


def test_a_failed_nudge_is_tried_again(project):
    root, host, proc = project
    assert wait_for(lambda: nudges(root) == 1)
    (root / "nudge_fails").touch()
    os.kill(pid_of(root, host, "transitioner"), signal.SIGKILL)
    assert wait_for(lambda: nudges(root) == 3, seconds=5), "failed, then tried again 6 passes later"
    (root / "nudge_fails").unlink()
    assert wait_for(lambda: nudges(root) == 4, seconds=5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "nudge-stalled failed; again in 6 checks" in proc.stderr.read()
