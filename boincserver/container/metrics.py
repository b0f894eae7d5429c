"""`boincserver-metrics`: the server's health for Prometheus at `URL_BASE/metrics`, a CGI program
in the apache service (images/apache/metrics.conf routes to it, behind the ops area's user
`admin`), and `boincserver-jobs metrics`: the same figures as JSON, which `status` shows.

It reads BOINC's own sources as the BOINC user, in the container where the daemons run:
config.xml and bin/start's pid files (pid_HOST/), the project's database, bin/show_shmem (the
feeder's shared memory is in this container's IPC namespace), the file systems under the
project and results volumes. boinc/metrics.py says what each costs and renders the text.
Reports of the last hour are counted at most every RECEIVED_EVERY_S seconds (a full read of
the finished results): the count and its time are kept in a file beside the pid files.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Callable

from boincserver.boinc import metrics as bm
from boincserver.boinc import outputs as bo
from boincserver.container import common
from boincserver.container.common import ProjectFolder

NAME = "boincserver-metrics"
RECEIVED_CACHE = "boincserver_received_last_hour.json"
SHOW_SHMEM_TIMEOUT_S = 10


def pid_dir(root: Path) -> Path:
    """bin/start's pid folder: pid_ and the host's short name (sched/start:783)."""
    return root / f"pid_{socket.gethostname().split('.')[0]}"


def pid_alive(pid: int) -> bool:
    """Whether a process of this pid exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def daemon_states(root: Path, alive: Callable[[int], bool] = pid_alive) -> dict[str, int]:
    """Each enabled daemon of config.xml: 1 running, 0 not."""
    folder = pid_dir(root)
    states = {}
    for daemon in bm.daemons((root / "config.xml").read_text()):
        if daemon.disabled:
            continue
        pid_file = folder / daemon.pid_file
        text = pid_file.read_text() if pid_file.is_file() else None
        states[daemon.name] = int(bm.daemon_running(text, alive))
    return states


def feeder(root: Path) -> dict[str, int]:
    """The feeder's job array by bin/show_shmem; {} without one (no feeder yet)."""
    try:
        done = subprocess.run(["bin/show_shmem"], cwd=root, capture_output=True, text=True,
                              timeout=SHOW_SHMEM_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return bm.feeder_slots(done.stdout) if done.returncode == 0 else {}


def filesystems(root: Path) -> dict[str, dict[str, int]]:
    out = {}
    for volume, path in (("project", root), ("results", root / "results")):
        try:
            fs = os.statvfs(path)
        except OSError:
            continue
        out[volume] = {"size_bytes": fs.f_blocks * fs.f_frsize, "avail_bytes": fs.f_bavail * fs.f_frsize}
    return out


def received_last_hour(cursor, cache: Path, now: float) -> int:
    """Reports of the last hour: from the cache while it is younger than RECEIVED_EVERY_S."""
    try:
        kept = json.loads(cache.read_text())
        if 0 <= now - float(kept["time"]) < bm.RECEIVED_EVERY_S:
            return int(kept["count"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    cursor.execute(bm.RECEIVED_SINCE, (int(now) - bm.RECEIVED_WINDOW_S,))
    (count,) = cursor.fetchone()
    tmp = cache.with_name(cache.name + ".tmp")
    try:
        tmp.write_text(json.dumps({"time": now, "count": int(count)}))
        tmp.replace(cache)
    except OSError:
        pass  # counted again next time
    return int(count)


def figures(project: ProjectFolder, now: float | None = None) -> dict:
    """What `status --json` shows as "metrics" and the endpoint renders (boinc/metrics.py)."""
    now = time.time() if now is None else now
    root = project.root
    out: dict = {"time": round(now, 3), "daemons": daemon_states(root), "feeder": feeder(root),
                 "filesystems": filesystems(root)}
    try:
        cursor = project.cursor()
        cursor.execute(bm.RESULTS_BY_APP_AND_STATE)
        out["results"] = bm.results_by_app(cursor.fetchall())
        cursor.execute(bm.WORKUNITS_WAITING)
        out["workunits_waiting"] = bm.waiting_by_app(cursor.fetchall())
        cursor.execute(bm.OLDEST_TRANSITION)
        (oldest,) = cursor.fetchone()
        cursor.execute(bm.TRANSITIONS_DUE, (int(now),))
        (due,) = cursor.fetchone()
        out["transitioner_backlog"] = bm.transitioner_backlog(oldest, due, now)
        out["results_received_last_hour"] = received_last_hour(cursor, pid_dir(root) / RECEIVED_CACHE, now)
        out["database_up"] = 1
    except Exception as exc:  # MariaDB away: the rest still says what it can
        out["database_up"] = 0
        out["database_error"] = str(exc)[:200]
    return out


def metrics_command(project: ProjectFolder, args: list[str]) -> dict:
    """`boincserver-jobs metrics`: the figures as JSON."""
    return figures(project)


COMMANDS = {"metrics": metrics_command}


def answer(environ: dict[str, str], raw_out: IO[bytes], err: IO[str]) -> int:
    """One scrape: 200 with the metrics (also when the database is away: boinc_up 0)."""
    try:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            raw_out.write(bo.cgi_head(405, [("Content-Type", "text/plain; charset=utf-8"), ("Allow", "GET, HEAD")]))
            raw_out.write(b"GET the metrics\n")
            return 0
        project = ProjectFolder(Path(common.required_env(environ, "PROJECT_ROOT")), raw_out)
        body = bm.exposition(bm.metrics(figures(project))).encode()
        raw_out.write(bo.cgi_head(200, [("Content-Type", bm.CONTENT_TYPE), ("Cache-Control", "no-store")]))
        if environ.get("REQUEST_METHOD", "GET") != "HEAD":
            raw_out.write(body)
    except Exception:
        traceback.print_exc(file=err)  # Apache's error log
        raw_out.write(bo.cgi_head(500, [("Content-Type", "text/plain; charset=utf-8")]))
        raw_out.write(f"{NAME} failed; the server's error log says why\n".encode())
        return 1
    finally:
        raw_out.flush()
    return 0


def main() -> int:
    return answer(dict(os.environ), sys.stdout.buffer, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
