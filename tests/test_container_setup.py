"""The makeproject job (boincserver.container.setup) over fake volumes: make_project and rsync
are small fakes, MariaDB is SQLite behind a fake MySQLdb, the BOINC user is this user."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from container_fakes import FakeMySQLdb, fake_mounts, install_mysqldb, this_user

from boincserver.boinc import configxml, tuning
from boincserver.container import common, setup
from boincserver.container.common import Mounts, Owner
from boincserver.container.vault import Vault

URL = "http://boinc.example.org"
SAMPLE_PROJECT_INC = ('<?php\ndefine("PROJECT", "REPLACE WITH PROJECT NAME");\n'
                      'define("USE_STOPFORUMSPAM", true);\n')


class Machine:
    """What the job runs: make_project (writes a small project, as BOINC's does, at
    --project_root, which must not exist) and rsync (a copy). Each command is recorded."""

    def __init__(self):
        self.commands: list[list[str]] = []
        self.fail_make_project = False

    def run_command(self, cmd, *, cwd=None, env=None, stdin=None):
        self.commands.append(list(cmd))
        if cmd[0] == "runuser":
            return self.make_project(cmd[cmd.index("--") + 1:], env)
        if cmd[0] == "rsync":
            shutil.copytree(cmd[-2], cmd[-1], dirs_exist_ok=True, symlinks=True)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        raise AssertionError(f"unexpected command {cmd}")

    def make_project(self, cmd, env):
        option = lambda name: cmd[cmd.index(name) + 1]  # noqa: E731
        if self.fail_make_project:
            return subprocess.CompletedProcess(cmd, 1, "", "make_project: can't connect to database")
        root = Path(option("--project_root"))
        assert not root.exists(), "make_project refuses an existing PROJECT_ROOT"
        assert env["USER"] == option("--user_name")
        (root / "html/project").mkdir(parents=True)
        (root / "html/ops").mkdir(parents=True)
        (root / "html/user").mkdir(parents=True)
        (root / "config.xml").write_text(
            f"<boinc>\n  <config>\n    <master_url>{option('--url_base')}{cmd[-1]}/</master_url>\n"
            f"    <db_passwd>{option('--db_passwd')}</db_passwd>\n    <key_dir>{option('--key_dir')}</key_dir>\n"
            "  </config>\n  <daemons>\n    <daemon>\n      <cmd>feeder -d 3 </cmd>\n    </daemon>\n"
            "  </daemons>\n</boinc>\n")
        (root / "cgi-bin").mkdir()
        for cgi in ("cgi", "file_upload_handler"):
            (root / "cgi-bin" / cgi).write_bytes(b"CGI " + cgi.encode())
            (root / "cgi-bin" / cgi).chmod(0o755)
        (root / "html/project/project.inc").write_text(SAMPLE_PROJECT_INC)
        (root / "html/ops/.htaccess").write_text("AuthType Basic\nAuthUserFile /somewhere/.htpasswd\n")
        (root / "html/user/schedulers.txt").write_text(f"<scheduler>{option('--url_base')}{cmd[-1]}_cgi/cgi</scheduler>\n")
        return subprocess.CompletedProcess(cmd, 0, "Done installing files\nProject created.\n", "")


@pytest.fixture
def mounts(tmp_path) -> Mounts:
    return fake_mounts(tmp_path)


@pytest.fixture
def machine(monkeypatch, tmp_path):
    fake = Machine()
    monkeypatch.setattr(common, "run_command", fake.run_command)
    return fake


@pytest.fixture
def db(tmp_path, monkeypatch) -> FakeMySQLdb:
    return install_mysqldb(tmp_path, monkeypatch)


@pytest.fixture
def given(monkeypatch):
    """The paths each Owner.give was called with (the BOINC user is this process's user)."""
    given: list[Path] = []
    monkeypatch.setattr(Owner, "named", staticmethod(this_user))
    monkeypatch.setattr(Owner, "give", lambda self, path: given.append(Path(path)))
    return given


@pytest.fixture
def environ(tmp_path):
    root = tmp_path / "image/home/boincadm/project"
    root.mkdir(parents=True)
    # The project's overlay: a page, and a site configuration named and filled at start.
    (root / "html/user").mkdir(parents=True)
    (root / "html/user/extra.html").write_text("<a href='${URL_BASE}/${project}/'>home</a>\n")
    (root / "${project}.httpd.conf").write_text("Alias /${project} ${project_root}/html/user\n")
    return {"PROJECT": "demo", "BOINC_USER": "boincadm", "PROJECT_ROOT": str(root), "URL_BASE": URL,
            "BOINC_COMMIT": "c" * 40}


def start(mounts, environ) -> tuple[int, str]:
    err = io.StringIO()
    code = setup.main([], mounts=mounts, environ=environ, out=io.BytesIO(), err=err)
    return code, err.getvalue()


def started(mounts, environ):
    code, err = start(mounts, environ)
    assert code == 0, err


def test_the_first_start_creates_the_project(mounts, environ, machine, db, given, capsys):
    started(mounts, environ)
    root, volume = Path(environ["PROJECT_ROOT"]), mounts.project
    vault = Vault(mounts)
    password = vault.value("db")
    assert len(password) == 32 and all(vault.value(n) for n in ("ops", "upload", "code_sign"))
    # The database user first, through MariaDB's socket as its root, then make_project with its password.
    assert db.connects[0] == {"unix_socket": "/fake/mysqld.sock", "user": "root"}
    assert ("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", ("boincadm", password)) in db.accounts
    assert ("GRANT ALL PRIVILEGES ON `demo`.* TO %s@'%%'", ("boincadm",)) in db.accounts
    make_project = machine.commands[0]
    assert make_project[:4] == ["runuser", "-u", "boincadm", "--"]
    assert make_project[make_project.index("--key_dir") + 1] == f"{mounts.keys}/"
    # Its files, fixed and on the volume; the overlay back in place and on the volume too.
    assert 'define("PROJECT", "demo");' in (volume / "html/project/project.inc").read_text()
    assert 'define("USE_STOPFORUMSPAM", false);' in (volume / "html/project/project.inc").read_text()
    assert f"AuthUserFile {mounts.secrets}/ops.htpasswd" in (volume / "html/ops/.htaccess").read_text()
    assert (root / "${project}.httpd.conf").is_file() and not mounts.overlay_aside.exists()
    assert (volume / "demo.httpd.conf").read_text() == f"Alias /demo {root}/html/user\n"
    # Only the files that hold runtime values are filled in (substitution.substituted_files).
    assert (volume / "html/user/extra.html").read_text() == (root / "html/user/extra.html").read_text()
    assert f"<db_passwd>{password}</db_passwd>" in (volume / "config.xml").read_text()
    created = json.loads((volume / ".boincserver/created.json").read_text())
    assert {k: created[k] for k in ("project", "boinc_user", "project_root", "boinc_commit")} == {
        "project": "demo", "boinc_user": "boincadm", "project_root": str(root), "boinc_commit": "c" * 40}
    assert json.loads((volume / ".boincserver/state.json").read_text()) == {"url_base": URL}
    # The volumes belong to the BOINC user: the project's, and the results' (the assimilators write there).
    assert {volume, mounts.results, root.parent} <= set(given)
    assert capsys.readouterr().out.splitlines()[-1] == f"[makeproject] ready: {URL}/demo/"


def test_a_later_start_moves_the_url_everywhere_without_make_project(mounts, environ, machine, db, given, capsys):
    started(mounts, environ)
    db.sql("INSERT INTO app_version (appid, xml_doc) VALUES (1, ?)", (f"<url>{URL}/demo/download/up</url>",))
    machine.commands.clear()
    new_url = "https://other.example.org:8443"
    started(mounts, {**environ, "URL_BASE": new_url})
    assert [c[0] for c in machine.commands] == ["rsync"]  # the overlay only
    assert f"<master_url>{new_url}/demo/</master_url>" in (mounts.project / "config.xml").read_text()
    assert new_url in (mounts.project / "html/user/schedulers.txt").read_text()
    assert db.sql("SELECT xml_doc FROM app_version") == [(f"<url>{new_url}/demo/download/up</url>",)]
    assert db.connects[-1]["host"] == "mysql" and db.connects[-1]["db"] == "demo"
    assert f"stored download URLs moved from {URL} to {new_url}" in capsys.readouterr().out
    assert mounts.results in given


@pytest.mark.parametrize("key, value", [("BOINC_USER", "other"), ("PROJECT", "other")])
def test_changed_build_time_values_are_refused_and_nothing_changes(mounts, environ, machine, db, given, key, value):
    started(mounts, environ)
    before = {p: p.read_bytes() for p in mounts.project.rglob("*") if p.is_file()}
    code, err = start(mounts, {**environ, key: value})
    assert code == setup.FAILED
    assert f"[makeproject] error: the project exists and its build-time values cannot change ({key} " in err
    assert {p: p.read_bytes() for p in mounts.project.rglob("*") if p.is_file()} == before


def test_a_volume_boincserver_did_not_make_is_refused(mounts, environ, machine, db, given):
    (mounts.project / "index.html").write_text("someone else's\n")
    code, err = start(mounts, environ)
    assert code == setup.FAILED and "not made by boincserver; use an empty volume" in err
    assert machine.commands == []


def test_a_stack_without_the_results_mount_still_starts(mounts, environ, machine, db, given):
    mounts.results.rmdir()
    started(mounts, environ)
    assert mounts.results not in given and not mounts.results.exists()


def test_a_missing_value_names_where_it_comes_from(mounts, environ, machine, db, given):
    code, err = start(mounts, {k: v for k, v in environ.items() if k != "URL_BASE"})
    assert code == setup.FAILED and "URL_BASE is not set: it comes from the project's .env" in err


def test_a_failed_make_project_is_named_without_its_password(mounts, environ, machine, db, given):
    machine.fail_make_project = True
    code, err = start(mounts, environ)
    password = Vault(mounts).value("db")
    assert code == setup.FAILED
    assert "make_project failed (exit 1): make_project: can't connect to database" in err
    assert password and password not in err
    # The overlay waits aside, and the next start puts it back before anything else.
    assert (mounts.overlay_aside / "${project}.httpd.conf").is_file()
    machine.fail_make_project = False
    started(mounts, environ)
    assert (Path(environ["PROJECT_ROOT"]) / "${project}.httpd.conf").is_file() and not mounts.overlay_aside.exists()


def test_an_unknown_command_is_refused(mounts, environ):
    err = io.StringIO()
    assert setup.main(["bogus"], mounts=mounts, environ=environ, out=io.BytesIO(), err=err) == setup.FAILED
    assert "unknown command 'bogus'" in err.getvalue()


def built_fastcgi(mounts) -> dict[str, bytes]:
    """BOINC's FastCGI builds in the image's source tree, as the makeproject image has them."""
    (mounts.boinc_src / "sched").mkdir(parents=True, exist_ok=True)
    out = {}
    for name, program in tuning.FASTCGI_PROGRAMS.items():
        out[name] = f"FastCGI {program}".encode()
        (mounts.boinc_src / "sched" / program).write_bytes(out[name])
    return out


def test_every_start_tunes_config_xml_and_puts_fastcgi_under_the_cgi_names(mounts, environ, machine, db, given,
                                                                           capsys):
    fastcgi = built_fastcgi(mounts)
    started(mounts, environ)
    config = (mounts.project / "config.xml").read_text()
    assert configxml.get_element(config, "shmem_work_items") == str(tuning.DEFAULT_WORK_SLOTS)
    assert "<cmd>feeder -d 3 --sleep_interval 1</cmd>" in config
    for name, content in fastcgi.items():
        installed = mounts.project / "cgi-bin" / name
        assert installed.read_bytes() == content
        assert installed.stat().st_mode & 0o777 == 0o755
    assert configxml.get_element(config, "dont_generate_upload_certificates") == "0"
    assert configxml.get_element(config, "ignore_upload_certificates") == "0"
    # A reply MariaDB cut after a job was marked sent: the host gets that job at its next request.
    assert configxml.get_element(config, "resend_lost_results") == "1"
    assert "tuned for throughput: config.xml (work slots 500), cgi-bin/cgi (FastCGI)" in capsys.readouterr().out
    started(mounts, environ)
    assert "tuned for throughput" not in capsys.readouterr().out
    assert (mounts.project / "config.xml").read_text() == config


def test_work_slots_come_from_the_environment(mounts, environ, machine, db, given):
    started(mounts, environ)
    started(mounts, dict(environ, WORK_SLOTS="2000"))
    config = (mounts.project / "config.xml").read_text()
    assert configxml.get_element(config, "shmem_work_items") == "2000"
    assert configxml.get_element(config, "feeder_query_size") == "4000"


def test_bad_work_slots_are_refused_before_anything_changes(mounts, environ, machine, db, given):
    started(mounts, environ)
    before = {p: p.read_bytes() for p in mounts.project.rglob("*") if p.is_file()}
    code, err = start(mounts, dict(environ, WORK_SLOTS="lots", URL_BASE="http://elsewhere.example.org"))
    assert code == setup.FAILED
    assert "WORK_SLOTS 'lots' is not valid" in err and "boincserver.toml" in err
    assert {p: p.read_bytes() for p in mounts.project.rglob("*") if p.is_file()} == before


def test_without_fastcgi_builds_the_cgi_programs_stay(mounts, environ, machine, db, given):
    started(mounts, environ)
    assert (mounts.project / "cgi-bin/cgi").read_bytes() == b"CGI cgi"


def test_upload_certificates_are_turned_on_at_creation_only(mounts, environ, machine, db, given):
    started(mounts, environ)
    config = mounts.project / "config.xml"
    # The operator's choice, made later in config.xml, is kept by the next start.
    config.write_text(tuning.with_upload_certificates(config.read_text(), on=False))
    started(mounts, environ)
    assert configxml.get_element(config.read_text(), "ignore_upload_certificates") == "1"
