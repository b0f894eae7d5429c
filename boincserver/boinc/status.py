"""Reading BOINC's `bin/status -v` output.

Without a terminal bin/status prints only "BOINC is ENABLED|DISABLED" unless given -v; with
-v it prints a table of daemons, then one of tasks. A daemon row starts with its number,
then its host, command and state columns; we keep the command's program name and whether
the row says it is running.
"""

from __future__ import annotations

import re

ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(.+?)\s{2,}(\S.*?)\s*$")


def enabled(output: str) -> bool | None:
    if "BOINC is ENABLED" in output:
        return True
    if "BOINC is DISABLED" in output:
        return False
    return None


def parse(output: str) -> list[dict]:
    """The daemon table as [{"name", "command", "host", "state", "running"}]."""
    daemons = []
    section = None
    for line in output.splitlines():
        header = line.strip().upper()
        if header.startswith("DAEMON"):
            section = "daemons"
            continue
        if header.startswith("TASK"):
            section = "tasks"
            continue
        if section != "daemons":
            continue
        m = ROW.match(line)
        if not m:
            continue
        _num, host, command, state = m.groups()
        name = command.split()[0]
        daemons.append({"name": name, "command": command.strip(), "host": host, "state": state.strip(),
                        "running": state.strip().lower().startswith("running")})
    return daemons
