"""backup, wipe, restore: the project serves the same users and jobs; and `upgrade`.

A project of its own (name and port), deleted with its volumes at the end. Its two tests run
in either order: each starts from a project at this boincserver's pins, and leaves it so.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from boincserver import __version__, pins

from .conftest import Stack, compose, run_cli, running_project, sql

PASS = {"BOINCSERVER_BACKUP_PASSPHRASE": "correct horse battery"}
WU_COLUMNS = ("appid batch rsc_fpops_est rsc_fpops_bound rsc_memory_bound rsc_disk_bound need_validate "
              "canonical_resultid canonical_credit delay_bound error_mask file_delete_state "
              "assimilate_state hr_class opaque min_quorum target_nresults max_error_results "
              "max_total_results max_success_results priority rsc_bandwidth_bound fileset_id "
              "app_version_id transitioner_flags app_version_num").split()


@pytest.fixture(scope="module")
def bu_stack(tmp_path_factory):
    with running_project(tmp_path_factory.mktemp("backup"), "bu") as s:
        yield s


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=20) as resp:
        return resp.status, resp.read().decode(errors="replace")


def _create_account(s: Stack, email: str, password: str, name: str) -> str:
    """Through BOINC's own web RPC, as a client would; returns the account's authenticator."""
    passwd_hash = hashlib.md5((password + email).encode()).hexdigest()
    query = urllib.parse.urlencode({"email_addr": email, "passwd_hash": passwd_hash, "user_name": name})
    status, body = _get(f"{s.local}/{s.project}/create_account.php?{query}")
    assert status == 200 and "<authenticator>" in body, body
    return re.search(r"<authenticator>(\w+)</authenticator>", body).group(1)


def test_backup_wipe_restore_serves_the_same_users_and_jobs(bu_stack, tmp_path):
    s = bu_stack
    auth = _create_account(s, "alice@example.org", "a-password", "alice")
    sets = ", ".join(f"{c}=0" for c in WU_COLUMNS)
    sql(s.dir, s.project, f"INSERT INTO workunit SET create_time=UNIX_TIMESTAMP(), name='kept_job', "
                          f"xml_doc='<workunit/>', result_template_file='templates/none', keywords='', "
                          f"transition_time=2147483647, {sets}")
    before_users = sql(s.dir, s.project, "SELECT id, email_addr, name, authenticator FROM user ORDER BY id")
    before_wus = sql(s.dir, s.project, "SELECT id, name FROM workunit ORDER BY id")
    assert "alice@example.org" in before_users and "kept_job" in before_wus
    secrets_before = run_cli("secrets", "show", "--json", cwd=s.dir).stdout

    file = tmp_path / "project.backup"
    run_cli("backup", file, "--json", cwd=s.dir, env=PASS)
    assert file.stat().st_mode & 0o777 == 0o600
    raw = file.read_bytes()
    assert b"alice@example.org" not in raw and auth.encode() not in raw  # encrypted

    refused = run_cli("restore", file, cwd=s.dir, env=PASS, check=False)
    assert refused.returncode == 1 and "already has data" in refused.stderr

    run_cli("down", "--volumes", "--yes", cwd=s.dir)
    wrong = run_cli("restore", file, cwd=s.dir, env={"BOINCSERVER_BACKUP_PASSPHRASE": "wrong passphrase"},
                    check=False)
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    cut = tmp_path / "cut.backup"
    cut.write_bytes(raw[: len(raw) - 100])
    assert run_cli("restore", cut, cwd=s.dir, env=PASS, check=False).returncode == 1
    run_cli("down", "--volumes", "--yes", cwd=s.dir)

    run_cli("restore", file, cwd=s.dir, env=PASS)
    run_cli("up", cwd=s.dir)
    assert sql(s.dir, s.project, "SELECT id, email_addr, name, authenticator FROM user ORDER BY id") == before_users
    assert sql(s.dir, s.project, "SELECT id, name FROM workunit ORDER BY id") == before_wus
    assert run_cli("secrets", "show", "--json", cwd=s.dir).stdout == secrets_before
    status, _ = _get(f"{s.local}/{s.project}/")
    assert status == 200
    # The account works: BOINC's lookup RPC finds it with its password.
    passwd_hash = hashlib.md5(("a-password" + "alice@example.org").encode()).hexdigest()
    query = urllib.parse.urlencode({"email_addr": "alice@example.org", "passwd_hash": passwd_hash})
    status, body = _get(f"{s.local}/{s.project}/lookup_account.php?{query}")
    assert auth in body, body


def test_upgrade_is_a_noop_on_the_same_pins_and_records_only_after_upgrade_db(bu_stack, tmp_path):
    s = bu_stack
    same = json.loads(run_cli("upgrade", "--json", cwd=s.dir).stdout)
    assert same["upgraded"] is False and "nothing to do" in same["message"]

    # An older project: folder rendered by an older boincserver, an overlay FROM an older base.
    toml = s.dir / "boincserver.toml"
    dockerfile = s.dir / "images" / "apache" / "Dockerfile"
    originals = {toml: toml.read_text(), dockerfile: dockerfile.read_text()}
    try:
        upgrade_an_older_project(s, toml, dockerfile, tmp_path)
    finally:
        # The operator's line goes again, so the other test finds the project as `init` made it.
        for path, text in originals.items():
            path.write_text(text)
        run_cli("up", cwd=s.dir)
    assert json.loads(run_cli("upgrade", "--json", cwd=s.dir).stdout)["upgraded"] is False


def upgrade_an_older_project(s: Stack, toml: Path, dockerfile: Path, tmp_path: Path) -> None:
    toml.write_text(toml.read_text().replace(f'boincserver_version = "{__version__}"',
                                             'boincserver_version = "0.0.9"'))
    mine = "RUN true  # the operator's own line\n"
    dockerfile.write_text(dockerfile.read_text().replace(pins.base_image("apache"),
                                                         "boincserver/apache:0.0.9-boinc1.6.1") + mine)
    backup_file = tmp_path / "before.backup"
    result = json.loads(run_cli("upgrade", "--backup", backup_file, "--json", cwd=s.dir, env=PASS).stdout)
    assert result["upgraded"] is True and backup_file.is_file()
    assert f"FROM {pins.base_image('apache')}\n" in dockerfile.read_text()
    assert dockerfile.read_text().endswith(mine)
    assert f'boincserver_version = "{__version__}"' in toml.read_text()
    assert re.fullmatch(r"\d+", result["db_revision"])
    assert any("No updates needed" in l or "All done" in l for l in result["upgrade_db"]), result
    recorded = json.loads(sql_free_read(s, ".boincserver/pins.json"))
    assert recorded["boinc_commit"] == pins.BOINC_COMMIT and recorded["db_revision"] == result["db_revision"]
    again = json.loads(run_cli("upgrade", "--json", cwd=s.dir).stdout)
    assert again["upgraded"] is False
    status, _ = _get(f"{s.local}/{s.project}/")
    assert status == 200


def sql_free_read(s: Stack, rel: str) -> str:
    return compose(s.dir, "exec", "-T", "apache", "sh", "-c", f'cat "$PROJECT_ROOT/{rel}"').stdout
