"""`boincserver upgrade`: move a project to the pins of the installed boincserver, including
its BOINC server release (`init --boinc-release` makes a project at an older one).

In order: the plan (`--dry-run` stops there), a backup (database, volumes, secrets), the
project folder's files (boincserver.toml's boinc_release, the overlays' FROM lines: only those
that still name one of boincserver's base images), a build of the new images while the project
still serves, then, for a new BOINC release, apache stopped (its daemons must not run while
their programs are replaced) and the one start whose makeproject job installs the release's
programs and web code, runs BOINC's database updates and aligns the schema with a fresh
project's (container/release.py). Then BOINC's upgrade_db.php in the apache service (a check
when the job ran it), and last the record of the pins (.boincserver/pins.json on the project
volume): an upgrade cut short is taken up again by the next `upgrade`, never skipped.

A failure before the project volume is touched puts the folder's files back and leaves the
old release running; after, it names the one command that restores the backup.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from boincserver import __version__, backup, pins, paths
from boincserver import project as core
from boincserver.boinc import releases
from boincserver.context import Project, Reporter, check_docker, created_record, read_volume_file, require_compose
from boincserver.errors import BoincServerError, ProjectError

PINS_RECORD = releases.PINS_RECORD
FROM_RE = re.compile(r"^(FROM\s+)" + re.escape(pins.BASE_IMAGE_REPO) + r"/(mysql|apache|makeproject):(\S+)",
                     re.M)


@dataclass
class Plan:
    current: dict
    target: dict
    changes: list[str] = field(default_factory=list)
    dockerfiles: dict[str, str] = field(default_factory=dict)  # rel path -> new text
    release_from: str = ""  # the BOINC commit the volume runs, when the release changes
    release_to: str = ""


def target_pins() -> dict:
    release = pins.server_release()
    return {"boincserver": __version__, "boinc_commit": release.commit, "boinc_release": release.tag,
            "base_os_image": pins.BASE_OS_IMAGE}


def recorded_pins(project: Project) -> dict:
    """What the project is on: the record of its last upgrade, else what created it; its
    boinc_commit is the one the volume runs (boinc/releases.py)."""
    created, pins_record, release_record = releases.read_records(
        lambda rel: read_volume_file(project, "project", rel))
    base = pins_record or {"boincserver": project.settings.boincserver_version}
    return {**base, "boinc_commit": releases.volume_commit(created, pins_record, release_record)}


def release_name(commit: str) -> str:
    """A commit as its release's version where boincserver knows it."""
    for release in pins.server_releases().values():
        if release.commit == commit:
            return f"{release.version} ({commit[:12]})"
    return commit[:12] or "unknown"


def plan(project: Project) -> Plan:
    current, target = recorded_pins(project), target_pins()
    p = Plan(current, target)
    if project.settings.boincserver_version != target["boincserver"]:
        p.changes.append(f"project folder rendered by boincserver {project.settings.boincserver_version} "
                         f"-> {target['boincserver']}")
    if current.get("boinc_commit") and current["boinc_commit"] != target["boinc_commit"]:
        p.release_from, p.release_to = current["boinc_commit"], target["boinc_commit"]
        p.changes.append(f"BOINC server {release_name(p.release_from)} -> {release_name(p.release_to)}: the "
                         "release's programs (bin/, cgi-bin/) and web code (html/inc, html/ops, html/user) "
                         "installed over the project, BOINC's database updates, the schema aligned with a "
                         "fresh project's; config.xml, keys, apps, uploads, downloads and html/project kept; "
                         "apache stopped meanwhile")
    elif current.get("boincserver") != target["boincserver"] and current.get("boincserver"):
        p.changes.append(f"project data on boincserver {current['boincserver']} -> {target['boincserver']}")
    if project.settings.release.version != pins.BOINC_VERSION:
        p.changes.append(f"boincserver.toml: boinc_release {project.settings.release.version} -> {pins.BOINC_VERSION}")
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
    if releases.upgrade_db_failed(ran.code, text):
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


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def restore_advice(backup_file: Path | str) -> str:
    return (f"`boincserver down --volumes --yes && boincserver restore {backup_file} && boincserver up` "
            "puts the project back as it was before the upgrade (the folder's files are back already)")


def _put_back(project: Project, old_files: dict[str, str], old_settings) -> None:
    for rel, text in old_files.items():
        _write(project.dir / rel, text)
    core.write_settings(project, old_settings)


def upgrade(project: Project, reporter: Reporter, passphrase: Callable[[], str],
            backup_file: Path | None = None, dry_run: bool = False) -> dict:
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
                           f"{release_name(p.target['boinc_commit'])}: nothing to do"}
    if dry_run:
        return {"upgraded": False, "dry_run": True, "changes": p.changes, "pins": p.target, "from": p.current,
                "message": "would change:\n" + "\n".join(f"  {c}" for c in p.changes)}
    for change in p.changes:
        reporter.step(f"upgrade: {change}")
    backup_file = backup_file or default_backup_file(project)
    reporter.step(f"backing up the project first, into {backup_file}")
    taken = backup.backup(project, reporter, backup_file, passphrase())
    # The folder's files as they were, put back if the upgrade stops before the volume changes.
    old_files = {rel: (project.dir / rel).read_text() for rel in [*p.dockerfiles, paths.SETTINGS_FILE]}
    old_settings = project.settings
    downtime = None
    try:
        reporter.step("rewriting the project folder's files")
        for rel, text in p.dockerfiles.items():
            _write(project.dir / rel, text)
        core.write_settings(project, project.settings.with_changes(boincserver_version=p.target["boincserver"],
                                                                   boinc_release=pins.BOINC_VERSION))
        reporter.step("building the new images (the project serves meanwhile)")
        core.build(project, reporter)
    except BaseException:
        _put_back(project, old_files, old_settings)
        raise
    try:
        job_env = None
        if p.release_to:
            reporter.step("stopping apache: its daemons must not run while BOINC's programs are replaced")
            stopped = time.monotonic()
            project.engine.compose_stop(["apache"], reporter.line)
            job_env = {"BOINC_UPGRADE": p.release_to}
        reporter.step("restarting" + (" with the new release: installing it, updating the database" if p.release_to
                                      else ""))
        core.up(project, reporter, job_env=job_env)
        if p.release_to:
            downtime = round(time.monotonic() - stopped, 1)
        reporter.step("running BOINC's database upgrade (html/ops/upgrade_db.php)")
        output, revision = run_upgrade_db(project)
        for line in output.splitlines():
            reporter.line(line)
        data = {**p.target, "db_revision": revision,
                "upgraded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "from": p.current}
        record(project, data)
    except BoincServerError as exc:
        _put_back(project, old_files, old_settings)
        raise ProjectError(f"the upgrade stopped after the backup: {exc}",
                           advice=restore_advice(taken.file)) from exc
    return {"upgraded": True, "changes": p.changes, "pins": p.target, "db_revision": revision,
            "backup": taken.file, "upgrade_db": output.strip().splitlines()[-3:],
            "release": {"from": p.release_from, "to": p.release_to} if p.release_to else None,
            "downtime_seconds": downtime, "seconds": round(time.monotonic() - started, 1)}
