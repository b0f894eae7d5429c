"""A project made at an older BOINC server release (1.4.7), populated, upgraded to the pinned one.

Populated as a project in use is: an app (BOINC's uc2), accounts, jobs a real client (Debian's
boinc-client 7.20) finished, and jobs it holds while the server is upgraded (uc2 spinning
--cpu_time). `boincserver upgrade` then moves it to the pinned release while a thread asks the
scheduler twice a second. Afterwards: the same accounts and jobs, the held jobs reported,
validated and assimilated without re-attaching the client, a job made after the upgrade done
too, the pages and BOINC's own status answering, and every table's SHOW CREATE TABLE equal to
a fresh project's at the pinned release (the session's shared project).

Needs the 1.4.7 source as well (`git archive` of its commit in boincserver's cache).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from boincserver import boinc_source, pins
from boincserver.boinc import schema

from .conftest import Stack, apache_sh, debian_client, run_cli, running_project, sql

OLD = pins.server_release("1.4.7")
PASS = {"BOINCSERVER_BACKUP_PASSPHRASE": "correct horse battery"}
TIMEOUT = 600

pytestmark = pytest.mark.skipif(
    boinc_source.cached(boinc_source.server_source(OLD)) is None,
    reason=f"BOINC {OLD.tag} source not cached: put boinc-{OLD.commit}.tar.gz into boincserver's cache")


@pytest.fixture(scope="module")
def old_stack(tmp_path_factory):
    with running_project(tmp_path_factory.mktemp("release"), "ru", ("--boinc-release", OLD.tag)) as s:
        yield s


def tables(s: Stack) -> dict[str, str]:
    names = sql(s.dir, s.project, "SHOW TABLES").split()
    out = {}
    for name in names:
        # -N -B prints "name<TAB>statement" with newlines as \n.
        row = sql(s.dir, s.project, f"SHOW CREATE TABLE `{name}`").rstrip("\n")
        out[name] = row.split("\t", 1)[1].replace("\\n", "\n")
    return out


def jobs_state(s: Stack, prefix: str) -> dict[str, tuple[str, str]]:
    """{workunit: (assimilate_state, validate states of its results)} for names with `prefix`."""
    rows = sql(s.dir, s.project, "SELECT w.name, w.assimilate_state, GROUP_CONCAT(r.validate_state) FROM workunit w "
                                 f"LEFT JOIN result r ON r.workunitid = w.id WHERE w.name LIKE '{prefix}%' "
                                 "GROUP BY w.id")
    return {name: (a, v) for name, a, v in (line.split("\t") for line in rows.splitlines())}


def wait_jobs(s: Stack, client, prefix: str, count: int) -> dict:
    """Until `count` jobs named `prefix`... are assimilated with a valid result; nudging the client."""
    deadline = time.monotonic() + TIMEOUT
    last = 0.0
    state = {}
    while time.monotonic() < deadline:
        state = jobs_state(s, prefix)
        if len(state) == count and all(a == "2" and "1" in v.split(",") for a, v in state.values()):
            return state
        if time.monotonic() - last > 20:
            client.cmd("--network_available", check=False)  # retry transfers the downtime deferred
            client.cmd("--project", client.url, "update", check=False)
            last = time.monotonic()
        time.sleep(3)
    raise AssertionError(f"jobs {prefix}* not done in {TIMEOUT}s: {state}\nclient log:\n{client.log()[-4000:]}")


def create_jobs(s: Stack, tmp_path: Path, prefix: str, count: int, cpu_seconds: int) -> None:
    for i in range(count):
        src = tmp_path / f"{prefix}{i}.txt"
        src.write_text(f"job {i} of {prefix}\n")
        run_cli("create-work", "uppercase", src, "--wu-name", f"{prefix}{i}", "--command-line",
                f"--cpu_time {cpu_seconds}", cwd=s.dir)


class SchedulerProbe:
    """Asks the scheduler's URL twice a second; the seconds it did not answer 200."""

    def __init__(self, url: str):
        self.url, self.refused, self.stop = url, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    body = resp.read()  # a GET is an empty request: any reply but "down" is an answer
                    ok = resp.status == 200 and b"project_is_down" not in body and b"maintenance" not in body
            except (urllib.error.URLError, OSError):
                ok = False
            if not ok:
                self.refused += 0.5
            self.stop.wait(0.5)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_a_populated_older_project_upgrades_to_the_pinned_release(old_stack, stack, tmp_path):
    s = old_stack
    shown = json.loads(run_cli("versions", "--json", cwd=s.dir).stdout)["project"]
    assert shown["boinc_release"] == OLD.version and shown["running"].startswith(OLD.version), shown
    run_cli("app", "add", "uppercase", "--example", "uppercase", cwd=s.dir)
    with debian_client(s, "release") as client:
        create_jobs(s, tmp_path, "before_", 2, 1)
        wait_jobs(s, client, "before_", 2)
        # Held by the client over the upgrade: sent, computing for minutes.
        create_jobs(s, tmp_path, "held_", 2, 60)
        deadline = time.monotonic() + TIMEOUT
        while sql(s.dir, s.project, "SELECT COUNT(*) FROM result WHERE name LIKE 'held_%' AND server_state = 4").strip() != "2":
            assert time.monotonic() < deadline, client.log()[-4000:]
            client.cmd("--project", client.url, "update", check=False)
            time.sleep(10)
        users = sql(s.dir, s.project, "SELECT id, email_addr, name, authenticator, total_credit FROM user ORDER BY id")
        hosts = sql(s.dir, s.project, "SELECT id, userid, domain_name FROM host ORDER BY id")
        workunits = sql(s.dir, s.project, "SELECT id, name, canonical_resultid FROM workunit ORDER BY id")
        assert "volunteer@example.org" in users and hosts.strip()

        planned = json.loads(run_cli("upgrade", "--dry-run", "--json", cwd=s.dir).stdout)
        assert planned["dry_run"] and any(f"BOINC server {OLD.version}" in c for c in planned["changes"])
        assert json.loads(run_cli("versions", "--json", cwd=s.dir).stdout)["project"]["boinc_release"] == OLD.version

        probe_url = f"{s.local}/{s.project}_cgi/cgi"
        with SchedulerProbe(probe_url) as probe:
            result = json.loads(run_cli("upgrade", "--backup", tmp_path / "before.backup", "--json",
                                        cwd=s.dir, env=PASS).stdout)
        print(f"\nupgrade {OLD.version} -> {pins.BOINC_VERSION}: {result['seconds']} s, apache down "
              f"{result['downtime_seconds']} s, scheduler refused {probe.refused} s")
        assert result["upgraded"] and result["release"] == {"from": OLD.commit, "to": pins.BOINC_COMMIT}

        shown = json.loads(run_cli("versions", "--json", cwd=s.dir).stdout)["project"]
        assert shown["boinc_release"] == pins.BOINC_VERSION and shown["running"].startswith(pins.BOINC_VERSION)
        installed = json.loads(apache_sh(s.dir, 'cat "$PROJECT_ROOT/.boincserver/release.json"'))
        assert installed["boinc_commit"] == pins.BOINC_COMMIT and installed["from"] == OLD.commit
        assert apache_sh(s.dir, 'cat "$PROJECT_ROOT/db_revision"').strip() == "27030"

        # The same accounts, hosts and jobs; the held jobs finish and validate, unattached again.
        assert sql(s.dir, s.project, "SELECT id, name FROM workunit ORDER BY id") == \
            "".join(f"{line.split(chr(9))[0]}\t{line.split(chr(9))[1]}\n" for line in workunits.splitlines())
        assert sql(s.dir, s.project, "SELECT id, userid, domain_name FROM host ORDER BY id") == hosts
        wait_jobs(s, client, "held_", 2)
        create_jobs(s, tmp_path, "after_", 1, 1)
        wait_jobs(s, client, "after_", 1)
        assert sql(s.dir, s.project, "SELECT COUNT(*) FROM host").strip() == "1"  # the same host, not a new one
        after_users = sql(s.dir, s.project, "SELECT id, email_addr, name, authenticator FROM user ORDER BY id")
        assert after_users == "".join("\t".join(line.split("\t")[:4]) + "\n" for line in users.splitlines())

    # The pages, and BOINC's own view of its daemons.
    for page in ("", "create_account_form.php", "server_status.php", "apps.php", "top_users.php"):
        with urllib.request.urlopen(f"{s.local}/{s.project}/{page}", timeout=20) as resp:
            body = resp.read().decode(errors="replace")
            assert resp.status == 200 and "Fatal error" not in body, (page, body[-2000:])
    status = json.loads(run_cli("status", "--json", cwd=s.dir).stdout)  # BOINC's bin/status -v, read
    running = {d["name"] for d in status["daemons"] if d["running"]}
    assert {"feeder", "transitioner", "file_deleter", "sample_trivial_validator",
            "sample_assimilator"} <= running, status["bin_status"]
    with urllib.request.urlopen(f"{s.local}/{s.project}_cgi/cgi", timeout=20) as resp:  # the FastCGI scheduler
        assert b"<scheduler_reply>" in resp.read()

    # The schema: every table as a fresh project's at the pinned release.
    upgraded, fresh = tables(s), tables(stack)
    assert schema.differences(upgraded, fresh) == [], {
        t: (upgraded.get(t), fresh.get(t)) for t in schema.differences(upgraded, fresh)}
    assert os.path.getsize(tmp_path / "before.backup") > 0


def _account(s: Stack, email: str, name: str) -> None:
    import hashlib
    import urllib.parse
    query = urllib.parse.urlencode({"email_addr": email, "user_name": name,
                                    "passwd_hash": hashlib.md5(("a-password" + email).encode()).hexdigest()})
    with urllib.request.urlopen(f"{s.local}/{s.project}/create_account.php?{query}", timeout=20) as resp:
        assert b"<authenticator>" in resp.read()


def test_a_failed_upgrade_names_the_restore_and_the_restore_runs_the_old_release(tmp_path):
    """1.4.7 lets two accounts share a name; 1.6.2's schema makes user.name unique, so the
    upgrade fails after BOINC's own updates. Its Fix line, run as printed, brings back 1.4.7."""
    with running_project(tmp_path, "rf", ("--boinc-release", OLD.tag)) as s:
        _account(s, "one@example.org", "twin")
        _account(s, "two@example.org", "twin")
        users = sql(s.dir, s.project, "SELECT id, email_addr, name FROM user ORDER BY id")
        backup = tmp_path / "before.backup"
        failed = run_cli("upgrade", "--backup", backup, cwd=s.dir, env=PASS, check=False)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "Duplicate entry 'twin'" in failed.stdout + failed.stderr, failed.stdout + failed.stderr
        fix = failed.stderr.split("Fix: `", 1)[1].split("`", 1)[0]
        assert fix == f"boincserver down --volumes --yes && boincserver restore {backup} && boincserver up"
        assert json.loads(run_cli("versions", "--json", cwd=s.dir).stdout)["project"]["boinc_release"] == OLD.version

        for command in fix.split(" && "):
            run_cli(*command.split()[1:], cwd=s.dir, env=PASS)

        shown = json.loads(run_cli("versions", "--json", cwd=s.dir).stdout)["project"]
        assert shown["running"].startswith(OLD.version), shown
        assert sql(s.dir, s.project, "SELECT id, email_addr, name FROM user ORDER BY id") == users
        assert apache_sh(s.dir, 'cat "$PROJECT_ROOT/db_revision"').strip() == "27028"
        with urllib.request.urlopen(f"{s.local}/{s.project}/", timeout=20) as resp:
            assert resp.status == 200
