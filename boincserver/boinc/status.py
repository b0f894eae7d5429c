"""Reading BOINC's `bin/status -v` output (sched/start in server_release 1.6.2).

Without a terminal bin/status prints only "BOINC is ENABLED|DISABLED" unless given -v; with
-v it prints a table of daemons, then one of tasks. A daemon row is: number, pid (0 if none),
status (' running ', 'NOT RUNNING' or blank), lock ('locked'/'UNLOCKED'), disabled
('yes'/'no'), then the command line.
"""

from __future__ import annotations

import re

# What bin/status says while bin/start holds the start lock (bin/start sleeps 5 s after it
# forks the daemons).
START_RUNNING = "start is currently running!"

DAEMON_ROW = re.compile(
    r"^\s*(?P<n>\d+)\s+(?P<pid>\d+)\s+(?P<status>running|NOT RUNNING|)\s*"
    r"\s(?P<lock>locked|UNLOCKED)\s+(?P<disabled>yes|no)\s+(?P<command>\S.*?)\s*$")


def enabled(output: str) -> bool | None:
    if "BOINC is ENABLED" in output:
        return True
    if "BOINC is DISABLED" in output:
        return False
    return None


def parse(output: str) -> list[dict]:
    """The daemon table as [{"name", "command", "pid", "running", "locked", "disabled"}]."""
    daemons = []
    in_daemons = False
    for line in output.splitlines():
        if line.startswith("DAEMON"):
            in_daemons = True
            continue
        if line.startswith("TASK"):
            break
        m = DAEMON_ROW.match(line) if in_daemons else None
        if m:
            daemons.append({
                "name": m["command"].split()[0],
                "command": m["command"],
                "pid": int(m["pid"]) or None,
                "running": m["status"] == "running",
                "locked": m["lock"] == "locked",
                "disabled": m["disabled"] == "yes",
            })
    return daemons
