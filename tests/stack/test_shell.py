"""A shell in the server is where BOINC's cookbook says: `docker compose exec apache ...`
lands in PROJECT_ROOT as the BOINC user, and nothing in the apache service runs as root.

Plain `docker compose`, as a reader of the cookbook types it; each test leaves the stack as
it found it, so they run in any order.
"""

from __future__ import annotations

import time

from .conftest import Stack, compose


def apache(stack: Stack, *command: str, root: bool = False) -> str:
    return compose(stack.dir, "exec", "-T", *(["--user", "root"] if root else []), "apache", *command).stdout


def settings_of(stack: Stack) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (stack.dir / ".env").read_text().splitlines()
                if line and not line.startswith("#"))


def test_exec_lands_in_the_project_folder_as_the_boinc_user(stack: Stack):
    env = settings_of(stack)
    pwd, user, home = apache(stack, "sh", "-c", "pwd; id -un; echo $HOME").split()
    assert (pwd, user) == (env["PROJECT_ROOT"], env["BOINC_USER"])
    assert home == f"/home/{env['BOINC_USER']}"
    # The cookbook's next step, as it is written: a relative path from where exec lands.
    assert "BOINC is ENABLED" in bin_status(stack)
    daemons = [line.split() for line in bin_status(stack, "-v").splitlines()]
    # make_project's feeder, with the sleep boincserver sets (boinc/tuning.py).
    assert ["feeder", "-d", "3", "--sleep_interval", "1"] in [d[5:] for d in daemons if d[2:3] == ["running"]]


def bin_status(stack: Stack, *args: str) -> str:
    """bin/status; right after a start it refuses while the service's own bin/start holds
    BOINC's start lock ("start is currently running!"), so it is asked again then."""
    deadline = time.monotonic() + 60
    while True:
        done = compose(stack.dir, "exec", "-T", "apache", "bin/status", *args, check=False)
        if done.returncode == 0 or "currently running" not in done.stdout + done.stderr \
                or time.monotonic() > deadline:
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout
        time.sleep(2)


def test_root_is_there_only_when_asked_for(stack: Stack):
    assert apache(stack, "id", "-u", root=True).strip() == "0"
    # Every process of the service (supervisord, Apache, the daemons, this shell) is the
    # BOINC user's: none holds root that a CGI or the web app could reach.
    uids = apache(stack, "sh", "-c", "for f in /proc/[0-9]*/status; do "
                                     "sed -n 's/^Uid:[[:space:]]*\\([0-9]*\\).*/\\1/p' $f; done | sort -u")
    assert uids.split() == [apache(stack, "id", "-u").strip()]
    # No sudo to turn the BOINC user into root.
    assert apache(stack, "sh", "-c", "command -v sudo || echo none").strip() == "none"


def test_the_periodic_tasks_replace_cron(stack: Stack):
    commands = apache(stack, "sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done")
    assert "boincserver-daemons --cron" in commands
    assert not [c for c in commands.splitlines() if c.split()[:1] in (["cron"], ["/usr/sbin/cron"])]


def test_server_name_comes_from_url_base(stack: Stack):
    conf = apache(stack, "cat", "/etc/apache2/conf-enabled/boincserver-servername.conf")
    assert conf == "ServerName 127.0.0.1\n"


def test_secrets_apache_may_read_are_readable_and_the_others_empty(stack: Stack):
    def size(path: str) -> int:
        return int(apache(stack, "sh", "-c", f"wc -c < /run/boincserver/secrets/{path}").strip())
    assert size("keys/upload_private") > 500 and size("keys/code_sign_public") > 200
    assert size("keys/code_sign_private") == 0 and size("db_password") == 0 and size("ops_password") == 0
