"""`boincserver-jobs app-state|app-install|apps`: BOINC apps in the apache service.

boincserver on the host assembles a version (files, signatures, version.xml, templates,
project.xml) and unpacks it in PROJECT_ROOT; what needs the project's programs and database
is done here: bin/xadd, bin/update_versions, the app's daemons in config.xml.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import database, status
from boincserver.container import common
from boincserver.container.common import ProjectFolder, Refused

# project.xml as it was before the host unpacked a version over it: put back if that fails.
PROJECT_XML_BEFORE = "project.xml.boincserver-old"
RESTART_WAIT = 30.0


def app_row(cursor, name: str) -> tuple | None:
    """(id, name, user_friendly_name, deprecated) of an app, None if it has no row."""
    cursor.execute(database.APP_BY_NAME, (name,))
    return cursor.fetchone()


def app_state(project: ProjectFolder, args: list[str]) -> dict:
    """What the host needs to assemble a new version of app args[0]."""
    name = args[0]
    versions = project.root / "apps" / name
    return {"project_xml": project.read("project.xml"),
            "version_dirs": sorted(os.listdir(versions)) if versions.is_dir() else [],
            "daemons": boinc_apps.config_daemon_commands(project.read("config.xml")),
            "registered": app_row(project.cursor(), name) is not None}


def restart_daemons(project: ProjectFolder, wait: float = RESTART_WAIT, pause: float = 1.0) -> None:
    """bin/stop, then bin/start. bin/start refuses while another bin/start holds its lock
    (the container's own start sleeps 5 s after forking the daemons, and the cron job runs it
    every 5 minutes), so both are retried until that one is done."""
    deadline = time.monotonic() + wait
    for cmd in (["bin/stop"], ["bin/start"]):
        while True:
            done = common.run_command(cmd, cwd=project.root)
            if done.returncode == 0:
                break
            if status.START_RUNNING not in done.stdout + done.stderr or time.monotonic() > deadline:
                raise common.failure(cmd, done)
            time.sleep(pause)


def app_install(project: ProjectFolder, args: list[str]) -> dict:
    """xadd, update_versions --noconfirm, then the app's daemons (restarting them if new).

    args: the app, its daemons as JSON ([{"cmd", "xml"}]), the version folder the host
    unpacked. If xadd or update_versions fails, the version folder goes and project.xml is
    put back: nothing is left half-installed."""
    name, vdir = args[0], args[2]
    daemons = [boinc_apps.daemon_from_json(d) for d in json.loads(args[1])]
    before = project.root / PROJECT_XML_BEFORE
    try:
        out = {"xadd": project.run(["bin/xadd"]).strip().splitlines()[-3:]}
        printed = project.run(["bin/update_versions", "--noconfirm"])
        out["update_versions"] = [line.strip() for line in printed.splitlines() if line.strip()][-5:]
        if boinc_apps.update_versions_refused(printed):
            raise Refused("update_versions did not add the version: " + " | ".join(out["update_versions"]))
    except Refused:
        shutil.rmtree(project.root / vdir, ignore_errors=True)
        if before.is_file():
            os.replace(before, project.root / "project.xml")
        raise
    if before.is_file():
        before.unlink()
    config = project.root / "config.xml"
    text = config.read_text()
    added = boinc_apps.missing_daemons(text, daemons)
    out["daemons_added"] = [d.cmd for d in added]
    if added:
        common.replace_file(config, boinc_apps.config_xml_with_daemons(text, added))
        restart_daemons(project)
    out["app"] = app_row(project.cursor(), name)[0]
    return out


def list_apps(project: ProjectFolder, args: list[str]) -> list[dict]:
    """Every app with its versions and its daemons."""
    cursor = project.cursor()
    cursor.execute(database.APPS_AND_VERSIONS)
    apps = boinc_apps.apps_from_rows(cursor.fetchall())
    commands = boinc_apps.config_daemon_commands(project.read("config.xml"))
    for app in apps:
        app["daemons"] = boinc_apps.app_daemon_commands(commands, app["name"])
    return apps


COMMANDS = {"app-state": app_state, "app-install": app_install, "apps": list_apps}
