"""Parallel instances of BOINC's daemons on the session's shared stacks: `[daemon_instances]
transitioner = 2` in boincserver.toml and `up` run two transitioners, `--mod 2 0` and
`--mod 2 1`, each with its own pid file; the setting taken out and `up` again give back one
transitioner and config.xml exactly as it was. Then on the jobs stack, two of the transitioner,
the file deleter and every app's validator and assimilator: an app added meanwhile gets its
two of each, and a real client's jobs of both shares (an even and an odd workunit id) are
computed, validated and assimilated. The shared stacks' settings are put back."""

from __future__ import annotations

import time

from boincserver.boinc import status
from boincserver.boinc import daemon_instances
from tests.stack.conftest import Stack, apache_sh, compose, ensure_example_app, run_cli, sql

PIDS = "pid_boincserver"  # bin/start's pid folder on the apache service's fixed hostname


def daemons(stack: Stack) -> list[dict]:
    """bin/status -v's daemon rows ([] while bin/start holds its lock: bin/status then fails)."""
    return status.parse(compose(stack.dir, "exec", "-T", "apache", "bin/status", "-v", check=False).stdout)


def transitioners(stack: Stack, want: int, timeout: float = 90) -> list[dict]:
    """bin/status -v's transitioner rows, once `want` of them run (bin/start, started by the
    apache service, forks the daemons and holds its lock 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [d for d in daemons(stack) if d["name"] == "transitioner"]
        if (len(rows) == want and all(d["running"] for d in rows)) or time.monotonic() > deadline:
            return rows
        time.sleep(2)


def all_running(stack: Stack, commands: set[str], timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = daemons(stack)
        if commands <= {d["command"] for d in rows if d["running"]} or time.monotonic() > deadline:
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
        names = [d["name"] for d in daemons(stack)]
        assert names.count("feeder") == 1 and names.count("file_deleter") == 1
    finally:
        settings_file.write_text(original)
        run_cli("up", cwd=stack.dir)
    rows = transitioners(stack, 1)
    assert [(d["command"], d["running"]) for d in rows] == [("transitioner -d 3", True)], rows
    assert [p for p in processes(stack) if p.startswith("transitioner")] == ["transitioner -d 3"]
    assert apache_sh(stack.dir, "cat config.xml") == config_before


def test_jobs_of_both_shares_complete_and_a_new_app_gets_its_instances(jobs_stack: Stack, boinc_client, tmp_path):
    from .test_client_e2e import run_job
    stack = jobs_stack
    ensure_example_app(stack, "uppercase")
    settings_file = stack.dir / "boincserver.toml"
    original = settings_file.read_text()
    counts = {"transitioner": 2, "file_deleter": 2, "validator": 2, "assimilator": 2}
    app = "modcheck"
    try:
        table = "".join(f"{k} = {v}\n" for k, v in counts.items())
        settings_file.write_text(original + "\n[daemon_instances]\n" + table)
        run_cli("up", cwd=stack.dir)
        # an app added now gets two of each of its daemons
        added = run_cli("app", "add", app, "--example", "uppercase", cwd=stack.dir).stdout
        assert f"daemon added: sample_trivial_validator --app {app}" in added
        wanted = {f"{program} --mod 2 {i}" for program in ("transitioner -d 3", "file_deleter -d 3",
                                                            f"sample_trivial_validator --app {app}",
                                                            f"sample_assimilator --app {app}",
                                                            "sample_trivial_validator --app uppercase",
                                                            "sample_assimilator --app uppercase") for i in (0, 1)}
        rows = all_running(stack, wanted)
        assert wanted <= {d["command"] for d in rows if d["running"]}, rows
        assert not [d for d in rows if d["name"] in ("sample_trivial_validator", "sample_assimilator",
                                                     "transitioner", "file_deleter") and "--mod 2" not in d["command"]]
        # jobs of both shares: consecutive workunits, an even id and an odd one
        texts = {f"mod_{n}": f"share {n} of two\n" for n in (0, 1)}
        for wu, text in texts.items():
            assert run_job(stack, boinc_client, app, wu, text, tmp_path) == text.upper()
        ids = [int(i) for i in sql(stack.dir, stack.project,
                                   "SELECT id FROM workunit WHERE name IN ('mod_0', 'mod_1')").split()]
        assert sorted(i % 2 for i in ids) == [0, 1], ids
        for i in (0, 1):  # each validator instance has a log of its own
            assert apache_sh(stack.dir, f"ls log_boincserver/sample_trivial_validator_{app}_mod2_{i}.log").strip()
    finally:
        settings_file.write_text(original)
        run_cli("up", cwd=stack.dir)
    config = apache_sh(stack.dir, "cat config.xml")
    assert daemon_instances.with_instances(config, {}) == config and "--mod" not in config
    assert f"<pid_file>sample_trivial_validator_{app}.pid</pid_file>" in config
    rows = all_running(stack, {"transitioner -d 3", f"sample_assimilator --app {app}"})
    assert not [d for d in rows if "--mod" in d["command"]], rows
