"""Faults under load for bench/throughput.py (--fault): a crash of the apache container and a
restart of MariaDB, each at a time or at a fraction of the jobs assimilated, and how long the
project took to come back.

kill-apache is a crash, not a stop: SIGKILL to the container's main process (supervisord) from
the host, as root. Docker then restarts the container by its restart policy (compose.yaml:
`restart: unless-stopped`). `docker kill -s KILL` would not do: Docker counts it as a manual
stop, and unless-stopped leaves the container down (tried on this engine, 20.10).
restart-mysql is `docker restart` of the mysql container: MariaDB shuts down cleanly and comes
back; every connection to it is lost meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable

KINDS = {"kill-apache": "apache", "restart-mysql": "mysql"}


def parse_fault_at(text: str) -> tuple[str, float]:
    """("seconds", s) for "15" or "15s" (after the hosts started), ("fraction", f) for "30%"
    (of the jobs assimilated)."""
    text = text.strip()
    try:
        if text.endswith("%"):
            value = float(text[:-1]) / 100
            if not 0 <= value < 1:
                raise ValueError
            return "fraction", value
        value = float(text[:-1] if text.endswith("s") else text)
        if value < 0:
            raise ValueError
        return "seconds", value
    except ValueError:
        raise ValueError(f"--fault-at {text!r}: give seconds (15, 15s) or a share of the jobs (30%)") from None


def plan(kinds: list[str], fault_at: list[str]) -> list["Fault"]:
    """One Fault per kind, in order. Without --fault-at they come at 30 %, 60 % ... of the jobs."""
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"--fault {kind!r}: one of {', '.join(KINDS)}")
    if fault_at and len(fault_at) != len(kinds):
        raise ValueError(f"--fault-at: one value per --fault ({len(kinds)}), got {len(fault_at)}")
    whens = [parse_fault_at(t) for t in fault_at] or [("fraction", round(0.3 * (i + 1), 2)) for i in range(len(kinds))]
    return [Fault(kind, KINDS[kind], *when) for kind, when in zip(kinds, whens)]


def container_state(cid: str) -> dict:
    out = subprocess.run(["docker", "inspect", "-f",
                          "{{.State.Running}}\t{{.State.StartedAt}}\t{{.RestartCount}}\t{{.State.Pid}}", cid],
                         capture_output=True, text=True).stdout.strip()
    running, started, restarts, pid = (out.split("\t") + ["", "", "0", "0"])[:4]
    return {"running": running == "true", "started_at": started, "restart_count": int(restarts or 0),
            "pid": int(pid or 0)}


@dataclass
class Fault:
    kind: str
    service: str
    when: str            # "seconds" or "fraction"
    value: float
    container: str = ""
    at: float = 0.0      # monotonic time of the fault
    at_s: float = 0.0    # seconds after the hosts started
    at_assimilated: int = 0
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    back_s: float | None = None   # until the container runs again (a new StartedAt)
    error: str = ""

    def due(self, elapsed: float, assimilated: int, jobs: int) -> bool:
        return elapsed >= self.value if self.when == "seconds" else assimilated >= self.value * jobs

    def strike(self, container: str, busy: Callable[[], bool], patience: float = 10.0,
               timeout: float = 900.0) -> None:
        """Do the fault, then wait until Docker has the container running again (blocking:
        run it in a thread). The fault waits (`patience` seconds at most) for a moment when
        `busy()`, hosts having requests in flight, so that it cuts some: hosts send in bursts
        (every request_delay), and a crash between two bursts would go unseen. A fault that
        cannot be done is recorded in .error."""
        self.container = container
        self.before = container_state(container)
        until = time.monotonic() + patience
        while not busy() and time.monotonic() < until:
            time.sleep(0.002)
        self.at = time.monotonic()
        if self.kind == "kill-apache":
            try:
                os.kill(self.before["pid"], signal.SIGKILL)
            except (PermissionError, ProcessLookupError) as exc:
                self.error = f"kill -9 {self.before['pid']} failed ({exc}): the crash needs root"
                return
        else:
            done = subprocess.run(["docker", "restart", container], capture_output=True, text=True)
            if done.returncode != 0:
                self.error = f"docker restart failed: {done.stderr.strip()}"
                return
        while time.monotonic() - self.at < timeout:
            state = container_state(container)
            if state["running"] and state["started_at"] != self.before["started_at"]:
                self.after, self.back_s = state, time.monotonic() - self.at
                return
            time.sleep(0.2)
        self.after = container_state(container)
        self.error = f"the {self.service} container was not running again after {timeout:.0f} s"

    def figures(self, started: float, events: dict[str, list], progress_at: float | None, until: float) -> dict:
        """What the fault did and how long recovery took, in seconds from the fault: the
        container back, the first good scheduler reply, the first reply with work, the first
        job assimilated after it; what hosts saw from the fault to `until` (the next fault or
        the end): errors and their longest outage (first failure to the next success)."""
        def first_after(times: list[float]) -> float | None:
            later = [t for t in times if t > self.at]
            return round(min(later) - self.at, 1) if later else None

        outages = [end - start for start, end in events.get("outages", []) if self.at <= end and start < until]
        # Work handed out from the fault on: the longest wait between two replies with work.
        work = [self.at] + [t for t in events.get("work", []) if self.at < t < until]
        work_gap = max((b - a for a, b in zip(work, work[1:])), default=None)

        return {
            "kind": self.kind, "container": self.container[:12], "at_s": round(self.at - started, 1) if self.at else None,
            "at_assimilated": self.at_assimilated, "error": self.error,
            "started_at_before": self.before.get("started_at"), "started_at_after": self.after.get("started_at"),
            "restart_count_before": self.before.get("restart_count"),
            "restart_count_after": self.after.get("restart_count"),
            "container_back_s": None if self.back_s is None else round(self.back_s, 1),
            "first_good_rpc_s": first_after(events.get("rpc_ok", [])),
            "first_work_s": first_after(events.get("work", [])),
            "longest_work_gap_s": None if work_gap is None else round(work_gap, 1),
            "first_assimilated_s": None if progress_at is None else round(progress_at - self.at, 1),
            "host_errors": sum(1 for t in events.get("error", []) if self.at <= t < until),
            "longest_host_outage_s": round(max(outages), 1) if outages else 0.0,
        }
