"""html/project/remote_apps.inc and submitters.inc, which BOINC's submit.php and show_apps.php
require (boinc/remote_apps.py has the facts and the text): written by the makeproject job at
every start (container/setup.py) and by app-install after every app or version (container/apps.py),
from the app rows and config.xml's daemons. submit.php reads the file at every request, so no
restart is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import remote_apps as br
from boincserver.container import common


def _write(path: Path, text: str) -> bool:
    """Write `text` as `path` in one step, owned as its folder is (the makeproject job runs as
    root), mode 0644; False if it held that text already."""
    if path.is_file() and path.read_text() == text:
        return False
    folder = path.parent.stat()
    tmp = path.with_name(path.name + ".boincserver-tmp")
    tmp.write_text(text)
    made = tmp.stat()
    if (made.st_uid, made.st_gid) != (folder.st_uid, folder.st_gid):
        os.chown(tmp, folder.st_uid, folder.st_gid)
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return True


def write_files(root: Path, cursor) -> list[str]:
    """remote_apps.inc from the project's apps, and submitters.inc where there is none; the
    files written. A project folder without BOINC's html/project/ gets neither."""
    if not (root / br.REMOTE_APPS_INC).parent.is_dir():
        return []
    cursor.execute(br.APP_ROWS)
    apps = br.remote_apps(cursor.fetchall(), boinc_apps.config_daemon_commands((root / "config.xml").read_text()))
    written = []
    if _write(root / br.REMOTE_APPS_INC, br.remote_apps_inc(apps)):
        written.append(br.REMOTE_APPS_INC)
    if not (root / br.SUBMITTERS_INC).exists() and _write(root / br.SUBMITTERS_INC, br.SUBMITTERS_TEXT):
        written.append(br.SUBMITTERS_INC)
    return written


def prepare_project(root: Path, db_settings: dict[str, str]) -> list[str]:
    """At every start: write_files over a connection of its own."""
    conn = common.connect(db_settings)
    try:
        return write_files(root, conn.cursor())
    finally:
        conn.close()
