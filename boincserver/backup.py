"""`boincserver backup` and `restore`: the database, the project and results volumes, the secrets.

One file, encrypted and authenticated with a passphrase (the key comes from scrypt, as for
`secrets backup`), written and read as a stream: the dump and the volumes' tar streams go
through this process in 1 MiB pieces, never whole in memory. Each piece is sealed with
AES-256-GCM under a counter nonce, and the last one is marked as last, so a reordered,
changed or cut file is refused.

Inside, named sections follow each other: manifest (JSON), secrets (tar of the secrets
volume), database (mariadb-dump of the project's database, by MariaDB's root through its
socket), project (tar of the project volume), results (tar of the results volume).

The secrets volume is copied whole rather than through `secrets backup`: a restore goes into
an empty project, where the vault's restore (a rotation of a live project's secrets) has no
old code-signing key to sign a key change with, and whole, the volume also keeps the history
of earlier key changes that attached clients rely on.
"""

from __future__ import annotations

import json
import os
import secrets as rand
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

from boincserver import __version__, pins, secrets
from boincserver.context import Project, Reporter, check_docker, created_record, service_running
from boincserver.errors import InvalidInput, ProjectError

MAGIC = b"BOINCSERVER-PROJECT-BACKUP-1\n"
PIECE = 1 << 20
FORMAT = 1
PROJECT_MOUNT = "/run/boincserver/project"  # where the makeproject service has the project volume
SECRETS_MOUNT = "/run/boincserver/secrets"  # and the secrets volume
# Run by python3 in a one-shot makeproject container, read from stdin: the project's MariaDB
# user with the password of the restored secrets volume, which never leaves the containers.
DB_USER_SCRIPT = b"""
import sys, MySQLdb
user, db, path = sys.argv[1:4]
password = open(path).read().strip()
conn = MySQLdb.connect(unix_socket="/run/mysqld/mysqld.sock", user="root")
cur = conn.cursor()
cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
cur.execute("GRANT ALL PRIVILEGES ON `%s`.* TO %%s@'%%%%'" % db, (user,))
cur.execute("FLUSH PRIVILEGES")
conn.commit()
"""


# -- the sealed stream ---------------------------------------------------------------------
class SealedWriter:
    """Plain bytes in, sealed pieces out."""

    def __init__(self, out: IO[bytes], passphrase: str):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        from boincserver.secrets import _key
        salt, self._prefix = rand.token_bytes(16), rand.token_bytes(8)
        self._aead = AESGCM(_key(passphrase, salt))
        self._out = out
        self._buf = bytearray()
        self._n = 0
        out.write(MAGIC + salt + self._prefix)

    def _seal(self, plain: bytes, last: bool) -> None:
        nonce = self._prefix + self._n.to_bytes(4, "big")
        sealed = self._aead.encrypt(nonce, plain, MAGIC + (b"\1" if last else b"\0"))
        self._out.write(len(sealed).to_bytes(4, "big") + sealed)
        self._n += 1

    def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= PIECE:
            self._seal(bytes(self._buf[:PIECE]), False)
            del self._buf[:PIECE]

    def close(self) -> None:
        self._seal(bytes(self._buf), True)
        self._buf.clear()


class OpenedReader:
    """Sealed pieces in, plain bytes out; refuses a wrong passphrase, a change or a cut."""

    def __init__(self, src: IO[bytes], passphrase: str):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        from boincserver.secrets import _key
        head = src.read(len(MAGIC) + 24)
        if not head.startswith(MAGIC) or len(head) < len(MAGIC) + 24:
            raise InvalidInput("not a boincserver project backup; nothing was changed")
        salt, self._prefix = head[len(MAGIC):len(MAGIC) + 16], head[len(MAGIC) + 16:]
        self._aead = AESGCM(_key(passphrase, salt))
        self._src = src
        self._buf = bytearray()
        self._n = 0
        self._last = False

    def _open_next(self) -> None:
        from cryptography.exceptions import InvalidTag
        size = self._src.read(4)
        if len(size) < 4:
            raise InvalidInput("the backup file is cut short")
        want = int.from_bytes(size, "big")
        sealed = self._src.read(want)
        if len(sealed) < want:
            raise InvalidInput("the backup file is cut short")
        nonce = self._prefix + self._n.to_bytes(4, "big")
        for last in (False, True):
            try:
                self._buf += self._aead.decrypt(nonce, sealed, MAGIC + (b"\1" if last else b"\0"))
                self._last = last
                self._n += 1
                return
            except InvalidTag:
                continue
        raise InvalidInput("wrong passphrase, or the backup file was changed")

    def read(self, n: int) -> bytes:
        while len(self._buf) < n and not self._last:
            self._open_next()
        if len(self._buf) < n:
            raise InvalidInput("the backup file is cut short")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def read_some(self, most: int) -> bytes:
        if not self._buf and not self._last:
            self._open_next()
        data = bytes(self._buf[:most])
        del self._buf[:most]
        return data


# -- sections ------------------------------------------------------------------------------
def write_section(w: SealedWriter, name: str, chunks) -> int:
    w.write(b"S" + bytes([len(name)]) + name.encode())
    total = 0
    for chunk in chunks:
        if chunk:
            w.write(len(chunk).to_bytes(4, "big") + chunk)
            total += len(chunk)
    w.write(b"\0\0\0\0")
    return total


def read_stream(src: IO[bytes], size: int = PIECE) -> Iterator[bytes]:
    while True:
        chunk = src.read(size)
        if not chunk:
            return
        yield chunk


def next_section(r: OpenedReader) -> str | None:
    kind = r.read(1)
    if kind == b"E":
        return None
    if kind != b"S":
        raise InvalidInput("the backup file is not in a known format")
    return r.read(r.read(1)[0]).decode()


def section_chunks(r: OpenedReader) -> Iterator[bytes]:
    while True:
        n = int.from_bytes(r.read(4), "big")
        if n == 0:
            return
        yield r.read(n)


# -- backup --------------------------------------------------------------------------------
@dataclass
class BackupResult:
    file: str
    bytes: int
    sections: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _dump_command(project: Project) -> list[str]:
    return ["mariadb-dump", "--single-transaction", "--quick", "--routines", "--triggers",
            "--databases", project.settings.project]


def _ensure_mysql(project: Project, reporter: Reporter) -> None:
    if not service_running(project, "mysql"):
        reporter.step("starting mysql")
        project.engine.compose_up(["mysql"], reporter.line)


def manifest(project: Project) -> dict:
    record = created_record(project) or {}
    return {"format": FORMAT, "boincserver": __version__, "boinc_commit": record.get("boinc_commit", ""),
            "pins": {"boinc_commit": pins.BOINC_COMMIT, "base_os_image": pins.BASE_OS_IMAGE},
            "locked": project.settings.locked_values(), "compose_name": project.settings.compose_name,
            "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def backup(project: Project, reporter: Reporter, file: Path, passphrase: str) -> BackupResult:
    started = time.monotonic()
    file = file.expanduser().absolute()
    if file.exists():
        raise InvalidInput(f"{file} exists already; nothing was written. Choose a new file name")
    if len(passphrase) < 8:
        raise InvalidInput("the passphrase is too short: use 8 characters or more")
    check_docker(project.engine)
    if created_record(project) is None:
        raise ProjectError("the project has no data to back up yet", advice="`boincserver up` creates it")
    file.parent.mkdir(parents=True, exist_ok=True)
    secrets.recover(project, reporter)
    _ensure_mysql(project, reporter)
    tmp = file.with_name(file.name + ".part")
    result = BackupResult(str(file), 0)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            w = SealedWriter(out, passphrase)
            result.sections["manifest"] = write_section(w, "manifest", [json.dumps(manifest(project)).encode()])
            reporter.step("backing up the secrets volume")
            result.sections["secrets"] = project.engine.run(
                ["-C", SECRETS_MOUNT, "--numeric-owner", "-cf", "-", "."], service="makeproject", entrypoint="tar",
                consume=lambda src: write_section(w, "secrets", read_stream(src))).out
            reporter.step("backing up the database (mariadb-dump, one consistent transaction)")
            result.sections["database"] = project.engine.exec(
                "mysql", _dump_command(project), consume=lambda src: write_section(w, "database", read_stream(src))).out
            reporter.step("backing up the project volume")
            result.sections["project"] = project.engine.run(
                ["-C", PROJECT_MOUNT, "--numeric-owner", "-cf", "-", "."], service="makeproject", entrypoint="tar",
                consume=lambda src: write_section(w, "project", read_stream(src))).out
            reporter.step("backing up the results volume")
            result.sections["results"] = project.engine.run(
                ["-C", f"{project.settings.project_root}/results", "--numeric-owner", "-cf", "-", "."],
                service="apache", entrypoint="tar", consume=lambda src: write_section(w, "results", read_stream(src))).out
            w.write(b"E")
            w.close()
        tmp.replace(file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    result.bytes = file.stat().st_size
    result.seconds = time.monotonic() - started
    return result


# -- restore -------------------------------------------------------------------------------
class _Section:
    """One section of the reader, fed to a command's stdin; `rest()` skips what the command
    did not take (it stopped early), so that the next section is read from its start."""

    def __init__(self, r: OpenedReader):
        self._chunks = section_chunks(r)

    def feed(self, dst: IO[bytes]) -> None:
        for chunk in self._chunks:
            dst.write(chunk)

    def rest(self) -> None:
        for _ in self._chunks:
            pass


def restore(project: Project, reporter: Reporter, file: Path, passphrase: str) -> dict:
    """Into a project without data (after `down --volumes`): the next `up` serves it as it was."""
    started = time.monotonic()
    if not file.is_file():
        raise InvalidInput(f"{file} does not exist")
    check_docker(project.engine)
    if created_record(project) is not None:
        raise ProjectError("this project already has data; a restore goes into an empty project only",
                           advice="back it up first if it matters, then `boincserver down --volumes --yes`")
    with open(file, "rb") as src:
        r = OpenedReader(src, passphrase)
        if next_section(r) != "manifest":
            raise InvalidInput("the backup file is not in a known format")
        meta = json.loads(b"".join(section_chunks(r)))
        if meta.get("format") != FORMAT:
            raise InvalidInput(f"backup format {meta.get('format')} is not known to this boincserver")
        if meta["locked"] != project.settings.locked_values():
            raise ProjectError(f"the backup is of project {meta['locked']}, this folder is "
                               f"{project.settings.locked_values()}; nothing was changed",
                               advice="restore in a folder made with the same PROJECT, BOINC_USER and PROJECT_ROOT")
        restored = []
        while (name := next_section(r)) is not None:
            target = {"secrets": ("makeproject", SECRETS_MOUNT), "project": ("makeproject", PROJECT_MOUNT),
                      "results": ("apache", f"{project.settings.project_root}/results")}.get(name)
            if name == "database":
                _ensure_mysql(project, reporter)
                reporter.step("restoring the database")
                section = _Section(r)
                project.engine.exec("mysql", ["mariadb"], stdin=section.feed)
                section.rest()
            elif target:
                reporter.step(f"restoring the {name} volume")
                section = _Section(r)
                project.engine.run(["-C", target[1], "--numeric-owner", "-xpf", "-"], service=target[0],
                                   entrypoint="tar", stdin=section.feed)
                section.rest()
            else:
                _Section(r).rest()
                continue
            restored.append(name)
        if "secrets" not in restored or "database" not in restored:
            raise InvalidInput("the backup holds no secrets or no database; it is not complete")
        reporter.step("giving the project's database user its password from the secrets")
        db_path = f"{SECRETS_MOUNT}/{secrets.catalogue()['db'].paths[0]}"
        project.engine.run(["-", project.settings.boinc_user, project.settings.project, db_path],
                           service="makeproject", entrypoint="python3", stdin=DB_USER_SCRIPT)
    return {"restored": restored, "from": meta,
            "seconds": round(time.monotonic() - started, 1)}
