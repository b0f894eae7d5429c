"""What the in-container programs share: the error a user can fix, where the volumes are,
the BOINC user, running a command, files replaced in one step, and the database."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable

from boincserver.boinc import configxml

Statement = tuple[str, tuple]
# How much of a failed command's output a message carries.
OUTPUT_TAIL = 2000


class Refused(Exception):
    """What the user can fix or must look at; the message says what, nothing was changed."""


@dataclass(frozen=True)
class Mounts:
    """Where the makeproject service has the volumes (compose.yaml.j2) and the image its files."""

    project: Path = Path("/run/boincserver/project")
    secrets: Path = Path("/run/boincserver/secrets")
    results: Path = Path("/run/boincserver/results")
    tls: Path = Path("/run/boincserver/tls")
    mysql_socket: str = "/run/mysqld/mysqld.sock"
    catalogue: Path = Path("/usr/local/share/boincserver/catalogue.toml")
    boinc_src: Path = Path("/usr/src/boinc")
    # Where the image's overlay waits while make_project creates PROJECT_ROOT.
    overlay_aside: Path = Path("/var/tmp/boincserver-overlay")

    @property
    def keys(self) -> Path:
        return self.secrets / "keys"


@dataclass(frozen=True)
class Owner:
    """The BOINC user: the files of the shared volumes belong to it in every service."""

    name: str
    uid: int
    gid: int

    @classmethod
    def named(cls, name: str) -> "Owner":
        import pwd
        entry = pwd.getpwnam(name)
        return cls(name, entry.pw_uid, entry.pw_gid)

    def give(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)


def write_private(path: Path, text: str, owner: Owner, mode: int = 0o600) -> None:
    """Write a file in one step, with this owner and mode from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    owner.give(tmp)
    os.replace(tmp, path)


# -- commands -------------------------------------------------------------------------------
def run_command(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None,
                stdin: IO | None = None, answers: str | None = None) -> subprocess.CompletedProcess:
    """A command to its end, its output captured as text; never raises for its exit code.

    `answers`: lines typed at its questions, through a terminal. Why not a pipe: a program that
    reads its answers through two streams (BOINC's upgrade_db.php reads the first with STDIN,
    then opens php://stdin for the next) gets all of a pipe's lines in the first stream's
    buffer, and nothing in the second; a terminal in canonical mode gives one line per read."""
    if answers is None:
        return subprocess.run(cmd, cwd=cwd, env=env, stdin=stdin, capture_output=True, text=True)
    import termios
    controller, terminal = os.openpty()
    try:
        mode = termios.tcgetattr(terminal)
        mode[3] &= ~termios.ECHO  # the answers (a password among them) are not echoed into the output
        termios.tcsetattr(terminal, termios.TCSANOW, mode)
        os.write(controller, answers.encode())
        return subprocess.run(cmd, cwd=cwd, env=env, stdin=terminal, capture_output=True, text=True)
    finally:
        os.close(terminal)
        os.close(controller)


def failure(cmd: list[str], done: subprocess.CompletedProcess, what: str | None = None) -> Refused:
    output = "\n".join(s for s in (done.stdout.strip(), done.stderr.strip()) if s)
    return Refused(f"{what or '`' + ' '.join(cmd) + '`'} failed (exit {done.returncode}): {output[-OUTPUT_TAIL:]}")


def run(cmd: list[str], what: str | None = None, **kwargs) -> str:
    """A command's standard output; Refused, with the end of its output, if it fails (the
    command named by `what` where its arguments must not be shown)."""
    done = run_command(cmd, **kwargs)
    if done.returncode != 0:
        raise failure(cmd, done, what)
    return done.stdout


# -- files ----------------------------------------------------------------------------------
def replace_file(path: Path, text: str) -> bool:
    """Write `text` over `path` in one step (readers never see half a file), keeping its
    owner and mode; False if the file held that text already."""
    if path.read_text() == text:
        return False
    stat = path.stat()
    tmp = path.with_name(path.name + ".boincserver-tmp")
    tmp.write_text(text)
    made = tmp.stat()
    if (made.st_uid, made.st_gid) != (stat.st_uid, stat.st_gid):
        os.chown(tmp, stat.st_uid, stat.st_gid)
    tmp.chmod(stat.st_mode & 0o7777)
    os.replace(tmp, path)
    return True


# -- the database -----------------------------------------------------------------------------
def connect(settings: dict[str, str]):
    """The project's database, as config.xml's db_* elements (or a dict with those keys) say."""
    import MySQLdb
    return MySQLdb.connect(host=settings["db_host"], user=settings["db_user"], passwd=settings["db_passwd"],
                           db=settings["db_name"], charset="utf8mb4", autocommit=True)


def project_database(project_root: Path):
    return connect(configxml.database_settings((project_root / "config.xml").read_text()))


def swarm_db_password(environ: dict[str, str]) -> str | None:
    """On Swarm the database is on another node, so its user's password is a Swarm secret,
    mounted where DB_PASSWORD_FILE says; None elsewhere (the secrets volume holds it)."""
    where = environ.get("DB_PASSWORD_FILE")
    if not where:
        return None
    try:
        password = Path(where).read_text().strip()
    except OSError as exc:
        raise Refused(f"the database password's Swarm secret cannot be read at {where}: {exc.strerror}") from None
    if not password:
        raise Refused(f"the database password's Swarm secret at {where} is empty")
    return password


def connect_as_root(socket: str, timeout: float = 120):
    """MariaDB's root through its socket (no password exists), waiting for the server."""
    import MySQLdb
    deadline = time.monotonic() + timeout
    while True:
        try:
            return MySQLdb.connect(unix_socket=socket, user="root")
        except MySQLdb.Error as exc:
            if time.monotonic() > deadline:
                raise Refused(f"MariaDB did not answer on {socket} in {timeout:g}s: {exc}") from None
            time.sleep(1)


def ensure_db_user(conn, database: str, user: str, password: str) -> None:
    """The project's database user with this password, reachable from the other services and
    limited to its database (`database` is a checked project name). Closes `conn`."""
    import MySQLdb
    try:
        cur = conn.cursor()
        cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
        cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@'%%'", (user,))
        cur.execute("FLUSH PRIVILEGES")
        conn.commit()
    except MySQLdb.Error as exc:
        raise Refused(f"MariaDB refused the new password of {user!r}: {exc}") from None
    finally:
        conn.close()


def query_all(cursor, statements: Iterable[Statement]) -> list[tuple]:
    """The rows of several SELECTs, one after the other."""
    rows: list[tuple] = []
    for sql, params in statements:
        cursor.execute(sql, params)
        rows += list(cursor.fetchall())
    return rows


def execute_all(cursor, statements: Iterable[Statement]) -> list[int]:
    """Run the statements; how many rows each changed."""
    counts = []
    for sql, params in statements:
        cursor.execute(sql, params)
        counts.append(cursor.rowcount)
    return counts


class ProjectFolder:
    """The project folder a helper works in (PROJECT_ROOT), its database (opened on first
    use) and the binary stream its answer goes to."""

    def __init__(self, root: Path, out: IO[bytes]):
        self.root = root
        self.out = out
        self._cursor = None

    def cursor(self):
        if self._cursor is None:
            self._cursor = project_database(self.root).cursor()
        return self._cursor

    def read(self, relpath: str) -> str:
        return (self.root / relpath).read_text()

    def run(self, cmd: list[str], **kwargs) -> str:
        """A project command (bin/...), run in the project folder."""
        return run(cmd, cwd=self.root, **kwargs)


def required_env(environ: dict[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise Refused(f"{name} is not set: it comes from the project's .env (build arg or environment)")
    return value
