"""`boincserver backup` and `restore`: the database, the project and results volumes, the secrets.

One file, encrypted and authenticated with a passphrase, written and read as a sealed stream
(sealed.py): the dump and the volumes' tar streams go through this process in 1 MiB pieces,
never whole in memory, and a reordered, changed or cut file is refused.

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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from boincserver import __version__, pins, secrets
from boincserver.context import Project, Reporter, check_docker, created_record, require_compose, service_running
from boincserver.errors import DockerError, InvalidInput, ProjectError
from boincserver.sealed import (OpenedReader, SealedWriter, SectionFeed, end_sections, next_section, read_stream,
                                section_chunks, write_section)

FORMAT = 1
# After the manifest, in this order. tls (the certificates and mod_md's ACME account) came later:
# a backup without it restores, and the project then gets a new certificate.
SECTIONS = ("secrets", "tls", "database", "project", "results")
PROJECT_MOUNT = "/run/boincserver/project"  # where the makeproject service has the project volume
SECRETS_MOUNT = "/run/boincserver/secrets"  # and the secrets volume
# and the results volume: through makeproject (root), because apache runs as the BOINC user
# and a fresh results volume is root's until the makeproject job gives it to that user.
RESULTS_MOUNT = "/run/boincserver/results"
TAR_SOME_FILES_CHANGED = 1  # GNU tar's exit status for files that changed or went while read
TAR_QUIET = ("--warning=no-file-changed", "--warning=no-file-removed", "--warning=no-file-ignored")
TLS_MOUNT = "/run/boincserver/tls"  # the same: mod_md writes it as the BOINC user
# -- backup --------------------------------------------------------------------------------
@dataclass
class BackupResult:
    file: str
    bytes: int
    sections: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def volume_places(project: Project) -> dict[str, tuple[str, str]]:
    """Each volume a backup holds, by section: the service that mounts it, and where."""
    return {"secrets": ("makeproject", SECRETS_MOUNT), "project": ("makeproject", PROJECT_MOUNT),
            "results": ("makeproject", RESULTS_MOUNT), "tls": ("makeproject", TLS_MOUNT)}


def _back_up_section(project: Project, reporter: Reporter, w: SealedWriter, name: str) -> int:
    """One section streamed into the writer: the database's dump, or a volume's tar."""
    def into_section(src: IO[bytes]) -> int:
        return write_section(w, name, read_stream(src))
    if name == "database":
        reporter.step("backing up the database (mariadb-dump, one consistent transaction)")
        return project.engine.exec("mysql", ["mariadb-dump", "--single-transaction", "--quick", "--routines",
                                             "--triggers", "--databases", project.settings.project],
                                   consume=into_section).out
    reporter.step(f"backing up the {name} volume")
    service, path = volume_places(project)[name]
    # The project runs on: bin/start removes its stop files, daemons write pid files and logs,
    # mod_md renews. GNU tar then exits 1 ("file changed as we read it", "File removed before
    # we read it"): what it wrote is still a good archive of each file it read, so only 2 and
    # above (fatal) fail the backup.
    ran = project.engine.run(["-C", path, "--numeric-owner", "--ignore-failed-read", *TAR_QUIET, "-cf", "-", "."],
                             service=service, entrypoint="tar", consume=into_section, check=False)
    if ran.code not in (0, TAR_SOME_FILES_CHANGED):
        raise DockerError(ran.command, ran.code, ran.err)
    return ran.out


def _ensure_mysql(project: Project, reporter: Reporter) -> None:
    if not service_running(project, "mysql"):
        reporter.step("starting mysql")
        project.engine.compose_up(["mysql"], reporter.line)


def manifest(project: Project) -> dict:
    record = created_record(project) or {}
    return {"format": FORMAT, "boincserver": __version__, "boinc_commit": record.get("boinc_commit", ""),
            "pins": {"boinc_commit": project.settings.release.commit, "base_os_image": pins.BASE_OS_IMAGE},
            "locked": project.settings.locked_values(), "compose_name": project.settings.compose_name,
            "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def backup(project: Project, reporter: Reporter, file: Path, passphrase: str) -> BackupResult:
    started = time.monotonic()
    file = file.expanduser().absolute()
    if file.exists():
        raise InvalidInput(f"{file} exists already; nothing was written. Choose a new file name")
    if len(passphrase) < 8:
        raise InvalidInput("the passphrase is too short: use 8 characters or more")
    require_compose(project)
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
            for name in SECTIONS:
                result.sections[name] = _back_up_section(project, reporter, w, name)
            end_sections(w)
        tmp.replace(file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    result.bytes = file.stat().st_size
    result.seconds = time.monotonic() - started
    return result


# -- restore -------------------------------------------------------------------------------
def restore(project: Project, reporter: Reporter, file: Path, passphrase: str) -> dict:
    """Into a project without data (after `down --volumes`): the next `up` serves it as it was."""
    started = time.monotonic()
    if not file.is_file():
        raise InvalidInput(f"{file} does not exist")
    require_compose(project)
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
            target = volume_places(project).get(name)
            if name == "database":
                _ensure_mysql(project, reporter)
                reporter.step("restoring the database")
                section = SectionFeed(r)
                project.engine.exec("mysql", ["mariadb"], stdin=section.feed)
                section.rest()
            elif target:
                reporter.step(f"restoring the {name} volume")
                section = SectionFeed(r)
                project.engine.run(["-C", target[1], "--numeric-owner", "-xpf", "-"], service=target[0],
                                   entrypoint="tar", stdin=section.feed)
                section.rest()
            else:
                SectionFeed(r).rest()
                continue
            restored.append(name)
        if "secrets" not in restored or "database" not in restored:
            raise InvalidInput("the backup holds no secrets or no database; it is not complete")
        reporter.step("giving the project's database user its password from the secrets")
        project.engine.run(["boincserver-project-setup", "db-user"], service="makeproject")
    return {"restored": restored, "from": meta,
            "seconds": round(time.monotonic() - started, 1)}
