"""Small fakes for the in-container programs' unit tests: MySQLdb over SQLite, a fake BOINC
project folder, and the BOINC user as this process's own user. No Docker, no MariaDB."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
import textwrap
import types
from pathlib import Path

from boincserver import paths
from boincserver.container.common import Mounts, Owner

# The columns of BOINC's tables (db/schema.sql) that the programs read or write.
SCHEMA = """
CREATE TABLE platform (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE app (id INTEGER PRIMARY KEY, name TEXT UNIQUE, user_friendly_name TEXT, deprecated INTEGER DEFAULT 0);
CREATE TABLE app_version (id INTEGER PRIMARY KEY, appid INTEGER, version_num INTEGER, platformid INTEGER,
                          plan_class TEXT DEFAULT '', deprecated INTEGER DEFAULT 0, xml_doc TEXT DEFAULT '');
CREATE TABLE workunit (id INTEGER PRIMARY KEY, name TEXT UNIQUE, batch INTEGER DEFAULT 0, appid INTEGER DEFAULT 0,
                       error_mask INTEGER DEFAULT 0, canonical_resultid INTEGER DEFAULT 0,
                       assimilate_state INTEGER DEFAULT 0, transition_time INTEGER DEFAULT 0, xml_doc TEXT DEFAULT '',
                       mod_time INTEGER DEFAULT 0, need_validate INTEGER DEFAULT 0);
CREATE TABLE result (id INTEGER PRIMARY KEY, workunitid INTEGER, batch INTEGER DEFAULT 0,
                     server_state INTEGER, outcome INTEGER DEFAULT 0, validate_state INTEGER DEFAULT 0,
                     received_time INTEGER DEFAULT 0, appid INTEGER DEFAULT 0);
CREATE TABLE batch (id INTEGER PRIMARY KEY, user_id INTEGER, create_time INTEGER, logical_start_time REAL,
                    logical_end_time REAL, est_completion_time REAL, njobs INTEGER, fraction_done REAL,
                    nerror_jobs INTEGER, state INTEGER, completion_time REAL, credit_estimate REAL,
                    credit_canonical REAL, credit_total REAL, name TEXT, app_id INTEGER, project_state INTEGER,
                    description TEXT, expire_time REAL);
CREATE TABLE category (id INTEGER PRIMARY KEY, orderID INTEGER, lang INTEGER, name TEXT, is_helpdesk INTEGER,
                       UNIQUE (name, is_helpdesk));
CREATE TABLE forum (id INTEGER PRIMARY KEY, category INTEGER, orderID INTEGER, title TEXT, description TEXT,
                    is_dev_blog INTEGER DEFAULT 0, parent_type INTEGER DEFAULT 0, UNIQUE (parent_type, category, title));
"""
# MariaDB's account statements: recorded, not run (SQLite has no users).
ACCOUNT_STATEMENTS = ("CREATE USER", "ALTER USER", "GRANT", "FLUSH")


class FakeCursor:
    def __init__(self, db: "FakeMySQLdb", conn: sqlite3.Connection):
        self.db, self.conn, self.cur = db, conn, conn.cursor()
        self.rowcount, self.lastrowid = -1, None

    def execute(self, sql: str, params: tuple | None = None) -> None:
        self.db.statements.append((sql, tuple(params or ())))
        if sql.startswith(ACCOUNT_STATEMENTS):
            self.db.accounts.append((sql, tuple(params or ())))
            return
        # MySQLdb's %s parameters and %% for a literal %, as SQLite's ? and %; MariaDB's
        # INSERT IGNORE as SQLite's INSERT OR IGNORE.
        sql = sql.replace("INSERT IGNORE ", "INSERT OR IGNORE ", 1)
        self.cur.execute(sql.replace("%s", "?").replace("%%", "%"), tuple(params or ()))
        self.rowcount, self.lastrowid = self.cur.rowcount, self.cur.lastrowid
        self.conn.commit()

    def fetchone(self):
        return self.cur.fetchone()

    def fetchall(self):
        return self.cur.fetchall()


class FakeConnection:
    def __init__(self, db: "FakeMySQLdb", kwargs: dict):
        self.db, self.kwargs = db, kwargs
        self.conn = sqlite3.connect(db.path)
        # mod_time (a TIMESTAMP in MariaDB, set on every change of a row) is kept here as Unix
        # seconds, written by the test itself.
        self.conn.create_function("UNIX_TIMESTAMP", 1, lambda value: value)
        self.closed = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.db, self.conn)

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.closed = True
        self.conn.close()


class FakeMySQLdb(types.ModuleType):
    """Put in sys.modules["MySQLdb"]: connections go to one SQLite file with BOINC's tables."""

    Error = sqlite3.Error

    def __init__(self, path: Path):
        super().__init__("MySQLdb")
        self.path = path
        self.connects: list[dict] = []
        self.statements: list[tuple[str, tuple]] = []
        self.accounts: list[tuple[str, tuple]] = []
        with sqlite3.connect(path) as conn:
            conn.executescript(SCHEMA)

    def connect(self, **kwargs) -> FakeConnection:
        self.connects.append(kwargs)
        return FakeConnection(self, kwargs)

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(self.path) as conn:
            rows = conn.execute(statement, params).fetchall()
        return rows


def install_mysqldb(tmp_path: Path, monkeypatch) -> FakeMySQLdb:
    """The fake as the MySQLdb the programs import (lazily, as in the images)."""
    fake = FakeMySQLdb(tmp_path / "boinc.sqlite")
    monkeypatch.setitem(sys.modules, "MySQLdb", fake)
    monkeypatch.setenv("FAKE_BOINC_DB", str(fake.path))  # for fake_create_work
    return fake


def fake_mounts(tmp_path: Path) -> Mounts:
    """The makeproject service's mounts, each an empty folder under tmp_path, with the real catalogue."""
    mounts = Mounts(project=tmp_path / "volumes/project", secrets=tmp_path / "volumes/secrets",
                    results=tmp_path / "volumes/results", tls=tmp_path / "volumes/tls", mysql_socket="/fake/mysqld.sock",
                    catalogue=paths.data_dir("secrets") / "catalogue.toml", boinc_src=tmp_path / "src/boinc",
                    overlay_aside=tmp_path / "var/tmp/overlay")
    for folder in (mounts.project, mounts.secrets, mounts.results, mounts.tls, mounts.boinc_src / "tools"):
        folder.mkdir(parents=True)
    return mounts


def this_user(name: str = "boincadm") -> Owner:
    """The BOINC user as this process's own uid and gid: chown works without root."""
    return Owner(name, os.getuid(), os.getgid())


CONFIG_XML = """<?xml version="1.0" ?>
<boinc>
  <config>
    <db_host>mysql</db_host>
    <db_user>boincadm</db_user>
    <db_passwd>secret</db_passwd>
    <db_name>demo</db_name>
    <key_dir>{key_dir}/</key_dir>
    <uldl_dir_fanout>1024</uldl_dir_fanout>
  </config>
  <daemons>
    <daemon>
      <cmd>feeder -d 3 </cmd>
    </daemon>
  </daemons>
</boinc>
"""
PROJECT_XML = "<boinc>\n    <app>\n        <name>up</name>\n    </app>\n</boinc>\n"


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return path


def project_folder(root: Path, key_dir: Path | None = None) -> Path:
    """A BOINC project folder as make_project leaves it, cut down to what the helpers read:
    config.xml, project.xml, templates, apps, results, and bin/ programs that log their
    calls to calls.log (bin/create_work: see fake_create_work)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.xml").write_text(CONFIG_XML.format(key_dir=key_dir or root / "keys"))
    (root / "project.xml").write_text(PROJECT_XML)
    (root / "templates").mkdir()
    (root / "results").mkdir()
    (root / "apps" / "up" / "1.00" / "x86_64-pc-linux-gnu").mkdir(parents=True)
    # apache2ctl is Apache's (the apache image has it on PATH); see on_path.
    for name in ("xadd", "update_versions", "stop", "start", "apache2ctl"):
        script(root / "bin" / name, f"""
            #!/bin/sh
            echo "{name} $*" >> calls.log
            echo "{name} done"
            """)
    return root


def helper_json(root: Path, *argv) -> tuple[int, object, str]:
    """boincserver-jobs ARGV run in this process: (exit code, its JSON answer, its stderr)."""
    from boincserver.container import jobs
    out, err = io.BytesIO(), io.StringIO()
    code = jobs.main(list(argv), root=root, out=out, err=err)
    return code, json.loads(out.getvalue() or "null"), err.getvalue()


def fake_make_user(bin_dir: Path, authenticator: str | None = None) -> Path:
    """`php` playing BOINC's make_user (container/accounts.py's MAKE_USER_PHP): it inserts the
    user into the fake database and logs its working folder and arguments to FAKE_PHP_LOG.
    The authenticator is `authenticator`, or a new random one per user."""
    made = repr(authenticator) if authenticator else "secrets.token_hex(16)"
    return script(bin_dir / "php", f"""
        #!{sys.executable}
        import os, secrets, sqlite3, sys
        with open(os.environ["FAKE_PHP_LOG"], "a") as log:
            log.write(os.getcwd() + " " + repr(sys.argv[1:]) + "\\n")
        conn = sqlite3.connect(os.environ["FAKE_BOINC_DB"])
        conn.execute("INSERT INTO user (email_addr, name, authenticator, passwd_hash) VALUES (?, ?, ?, ?)",
                     (sys.argv[4], sys.argv[5], {made}, "$2y$10$hashed"))
        conn.commit()
        """)


def on_path(monkeypatch, root: Path) -> None:
    """The project's fake bin/ first on PATH (for apache2ctl, which the image has there)."""
    monkeypatch.setenv("PATH", f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")


def fake_create_work(root: Path) -> Path:
    """bin/create_work that inserts each stdin line's job (a workunit and one unsent result)
    into the fake database named by FAKE_BOINC_DB; with FAKE_CREATE_WORK_FAIL_AFTER=N it
    fails after N jobs, as create_work does half-way (it commits in pieces)."""
    return script(root / "bin" / "create_work", f"""
        #!{sys.executable}
        import os, sqlite3, sys
        args = sys.argv[1:]
        with open("calls.log", "a") as log:
            log.write("create_work " + " ".join(args) + "\\n")
        batch = int(args[args.index("--batch") + 1]) if "--batch" in args else 0
        fail_after = int(os.environ.get("FAKE_CREATE_WORK_FAIL_AFTER", "-1"))
        conn = sqlite3.connect(os.environ["FAKE_BOINC_DB"])
        for i, line in enumerate(sys.stdin):
            if i == fail_after:
                conn.commit()
                sys.exit("create_work: can't find input file jf_x")
            cur = conn.execute("INSERT INTO workunit (name, batch) VALUES (?, ?)", (line.split()[1], batch))
            conn.execute("INSERT INTO result (workunitid, batch, server_state) VALUES (?, ?, 2)",
                         (cur.lastrowid, batch))
        conn.commit()
        """)
