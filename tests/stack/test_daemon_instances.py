"""Parallel instances of BOINC's daemons on the session's shared stack: `[daemon_instances]
transitioner = 2` in boincserver.toml and `up` run two transitioners, `--mod 2 0` and
`--mod 2 1`, each with its own pid file; the setting taken out and `up` again give back one
transitioner and config.xml exactly as it was. The shared stack's settings are put back."""

from __future__ import annotations

import time

from boincserver.boinc import status
from tests.stack.conftest import Stack, apache_sh, compose, run_cli

PIDS = "pid_boincserver"  # bin/start's pid folder on the apache service's fixed hostname


def transitioners(stack: Stack, want: int, timeout: float = 90) -> list[dict]:
    """bin/status -v's transitioner rows, once `want` of them run (bin/start, started by the
    apache service, forks the daemons and holds its lock 5 s, when bin/status fails saying so)."""
    deadline = time.monotonic() + timeout
    while True:
        out = compose(stack.dir, "exec", "-T", "apache", "bin/status", "-v", check=False).stdout
        rows = [d for d in status.parse(out) if d["name"] == "transitioner"]
        if (len(rows) == want and all(d["running"] for d in rows)) or time.monotonic() > deadline:
            return rows
        time.sleep(2)


def processes(stack: Stack) -> list[str]:
    """The command lines of the apache service's processes (from /proc: no ps needed)."""
    out = apache_sh(stack.dir, "for p in /proc/[0-9]*; do [ -r $p/cmdline ] && tr '\\0' ' ' <$p/cmdline && echo; done")
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_two_transitioners_each_with_its_share_then_one_again(stack: Stack):
    settings_file = stack.dir / "boincserver.toml"
    original = settings_file.read_text()
    config_before = apache_sh(stack.dir, "cat config.xml")
    assert [d["command"] for d in transitioners(stack, 1)] == ["transitioner -d 3"]
    try:
        settings_file.write_text(original + "\n[daemon_instances]\ntransitioner = 2\n")
        run_cli("up", cwd=stack.dir)
        rows = transitioners(stack, 2)
        assert [(d["command"], d["running"]) for d in rows] == [
            ("transitioner -d 3 --mod 2 0", True), ("transitioner -d 3 --mod 2 1", True)], rows
        running = [p for p in processes(stack) if p.startswith("transitioner")]
        assert sorted(running) == ["transitioner -d 3 --mod 2 0", "transitioner -d 3 --mod 2 1"], running
        pids = apache_sh(stack.dir, f"cat {PIDS}/transitioner_mod2_0.pid {PIDS}/transitioner_mod2_1.pid").split()
        assert sorted(map(int, pids)) == sorted(d["pid"] for d in rows)
        logs = apache_sh(stack.dir, "ls log_boincserver")
        assert "transitioner_mod2_0.log" in logs and "transitioner_mod2_1.log" in logs
        # the feeder and the file deleter stay one each
        daemons = status.parse(compose(stack.dir, "exec", "-T", "apache", "bin/status", "-v", check=False).stdout)
        assert [d["name"] for d in daemons].count("feeder") == 1
        assert [d["name"] for d in daemons].count("file_deleter") == 1
    finally:
        settings_file.write_text(original)
        run_cli("up", cwd=stack.dir)
    rows = transitioners(stack, 1)
    assert [(d["command"], d["running"]) for d in rows] == [("transitioner -d 3", True)], rows
    assert [p for p in processes(stack) if p.startswith("transitioner")] == ["transitioner -d 3"]
    assert apache_sh(stack.dir, "cat config.xml") == config_before
