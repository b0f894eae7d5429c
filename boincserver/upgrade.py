"""`boincserver upgrade`: move a project to the pins of the installed boincserver.

In order: a backup (database, volumes, secrets), the project folder's rendered files and its
overlays' FROM lines (only those that still name an older boincserver base image), a rebuild,
a restart, then BOINC's own database step, html/ops/upgrade_db.php, run in the apache service
as the BOINC user. upgrade_db.php applies each update newer than the project's db_revision
file and writes that file after each one. What boincserver records (the pins the project is
on, in .boincserver/pins.json on the project volume) is written only after upgrade_db.php
ran to its end: an upgrade cut short is taken up again by the next `upgrade`, never skipped.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from boincserver import __version__, backup, pins
from boincserver import project as core
from boincserver.context import Project, Reporter, check_docker, created_record, read_volume_file, require_compose
from boincserver.errors import ProjectError

PINS_RECORD = ".boincserver/pins.json"
FROM_RE = re.compile(r"^(FROM\s+)" + re.escape(pins.BASE_IMAGE_REPO) + r"/(mysql|apache|makeproject):(\S+)",
                     re.M)
UPGRADE_FAILED = "database upgrade failed"


@dataclass
class Plan:
    current: dict
    target: dict
    changes: list[str] = field(default_factory=list)
    dockerfiles: dict[str, str] = field(default_factory=dict)  # rel path -> new text


def target_pins() -> dict:
    return {"boincserver": __version__, "boinc_commit": pins.BOINC_COMMIT, "base_os_image": pins.BASE_OS_IMAGE}


def recorded_pins(project: Project) -> dict:
    """What the project is on: the record of its last upgrade, else what created it."""
    data = read_volume_file(project, "project", PINS_RECORD)
    if data:
        return json.loads(data)
    record = created_record(project) or {}
    return {"boincserver": project.settings.boincserver_version, "boinc_commit": record.get("boinc_commit", "")}


def plan(project: Project) -> Plan:
    current, target = recorded_pins(project), target_pins()
    p = Plan(current, target)
    if project.settings.boincserver_version != target["boincserver"]:
        p.changes.append(f"project folder rendered by boincserver {project.settings.boincserver_version} "
                         f"-> {target['boincserver']}")
    if current.get("boinc_commit") != target["boinc_commit"]:
        p.changes.append(f"BOINC {current.get('boinc_commit') or 'unknown'} -> {target['boinc_commit']}")
    if current.get("boincserver") != target["boincserver"] and current.get("boincserver"):
        p.changes.append(f"project data on boincserver {current['boincserver']} -> {target['boincserver']}")
    for service in ("mysql", "apache", "makeproject"):
        rel = f"images/{service}/Dockerfile"
        path = project.dir / rel
        if not path.is_file():
            continue
        text = path.read_text()

        def repl(m: re.Match) -> str:
            return m.group(1) + pins.base_image(m.group(2))
        new = FROM_RE.sub(repl, text)
        if new != text:
            p.dockerfiles[rel] = new
            p.changes.append(f"{rel}: FROM {pins.base_image(service)}")
    return p


def default_backup_file(project: Project) -> Path:
    base = Path.home() / ".local" / "share" / "boincserver" / "backups"
    return base / f"{project.settings.compose_name}-before-upgrade-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.backup"


def run_upgrade_db(project: Project) -> tuple[str, str]:
    """BOINC's html/ops/upgrade_db.php, answered 'y'; returns (its output, db_revision after)."""
    root = project.settings.project_root
    ran = project.engine.exec("apache", ["php", "upgrade_db.php"], user=project.settings.boinc_user,
                              workdir=f"{root}/html/ops", stdin=b"y\n", check=False)
    text = ran.out.decode(errors="replace") + ran.err
    if ran.code != 0 or UPGRADE_FAILED in text:
        raise ProjectError("BOINC's database upgrade (html/ops/upgrade_db.php) failed; the project's pins "
                           f"were not recorded, so the next `boincserver upgrade` tries again:\n{text.strip()[-2000:]}",
                           advice="see html/ops/db_update.php for the update that failed; "
                                  "the backup taken first restores the project as it was")
    rev = project.engine.exec("apache", ["cat", f"{root}/db_revision"], user=project.settings.boinc_user,
                              check=False).out
    return text, rev.decode().strip()


def record(project: Project, data: dict) -> None:
    root = project.settings.project_root
    payload = (json.dumps(data, indent=1) + "\n").encode()
    ran = project.engine.exec(
        "apache", ["sh", "-c", 'cat > "$0.tmp" && chmod 644 "$0.tmp" && mv "$0.tmp" "$0"', f"{root}/{PINS_RECORD}"],
        user="root", stdin=payload, check=False)  # .boincserver/ is the makeproject job's (root)
    if ran.code != 0:
        raise ProjectError(f"could not record the project's pins in {PINS_RECORD}: {ran.err.strip()}")


def upgrade(project: Project, reporter: Reporter, passphrase: Callable[[], str],
            backup_file: Path | None = None) -> dict:
    """`passphrase` is asked for the backup only when there is something to upgrade."""
    started = time.monotonic()
    require_compose(project)
    check_docker(project.engine)
    if created_record(project) is None:
        raise ProjectError("the project does not exist yet: nothing to upgrade", advice="`boincserver up` creates it")
    p = plan(project)
    if not p.changes:
        return {"upgraded": False, "pins": p.target,
                "message": f"already on boincserver {p.target['boincserver']} and BOINC "
                           f"{p.target['boinc_commit'][:12]}: nothing to do"}
    for change in p.changes:
        reporter.step(f"upgrade: {change}")
    backup_file = backup_file or default_backup_file(project)
    reporter.step(f"backing up the project first, into {backup_file}")
    taken = backup.backup(project, reporter, backup_file, passphrase())
    reporter.step("rewriting the project folder's rendered files")
    for rel, text in p.dockerfiles.items():
        path = project.dir / rel
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    core.write_settings(project, project.settings.with_changes(boincserver_version=p.target["boincserver"]))
    reporter.step("rebuilding and restarting")
    core.up(project, reporter)
    reporter.step("running BOINC's database upgrade (html/ops/upgrade_db.php)")
    output, revision = run_upgrade_db(project)
    for line in output.splitlines():
        reporter.line(line)
    data = {**p.target, "db_revision": revision,
            "upgraded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "from": p.current}
    record(project, data)
    return {"upgraded": True, "changes": p.changes, "pins": p.target, "db_revision": revision,
            "backup": taken.file, "upgrade_db": output.strip().splitlines()[-3:],
            "seconds": round(time.monotonic() - started, 1)}
