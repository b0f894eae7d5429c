"""Moving a project from one BOINC server release to another: which release a project volume
runs, and how BOINC's own tools install a release's files and update the database.

Facts from BOINC's upgrade path (tools/upgrade, py/Boinc/setup_project.py's
install_boinc_files, html/ops/upgrade_db.php), server_release 1.4.7 and 1.6.2:
- install_boinc_files(dest, web, server) copies the release's programs over a project: bin/
  (the daemons and tools), cgi-bin/ (cgi, file_upload_handler, fcgi; the old ones renamed
  *.old), py/Boinc, bin/start (stop and status its symlinks, by absolute path), and the web
  code: html/inc, html/ops/*.php, html/user/*.php|inc|css|js|txt, images, translations. It
  writes bin/boinc_path_config.py naming `dest`. It leaves html/project/ (project.inc and the
  project's own pages), config.xml, keys, apps, upload and download alone.
- It reports a file it could not copy with "failed to copy SRC to DEST" and goes on; the
  caller must look for that line.
- upgrade_db.php applies, in order, each update of db_update.php newer than the project's
  db_revision file, writing that file after each; it asks before applying (answered "y"),
  then for a database user and password (it does not take config.xml's), one line each.
- bin/start, stop and status are symlinks to absolute paths, so `dest` must be the project's
  path as the services see it (PROJECT_ROOT), not where a one-off container mounts the volume.

The record (RELEASE_RECORD on the project volume) is written by the makeproject job only
after every step succeeded; which release a volume runs is the newest record's.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

# Relative to the project volume (PROJECT_ROOT).
CREATED_RECORD = ".boincserver/created.json"
PINS_RECORD = ".boincserver/pins.json"  # written by `boincserver upgrade` after a whole upgrade
RELEASE_RECORD = ".boincserver/release.json"  # written by the makeproject job after a release's install
DB_REVISION = "db_revision"

# What BOINC's install prints for a file it could not copy (and then goes on).
INSTALL_FAILED = "failed to copy"
# What upgrade_db.php prints when an update failed.
UPGRADE_DB_FAILED = "database upgrade failed"

# The Python run in the BOINC source's tools/ folder (where configure wrote boinc_path_config.py,
# which setup_project imports): BOINC's install_boinc_files, web and server files, by copy.
_INSTALL = """\
import sys
sys.path.insert(0, sys.argv[1] + "/py")
from Boinc import setup_project
setup_project.options.srcdir = sys.argv[1]
setup_project.options.install_method = "copy"
setup_project.init()
setup_project.install_boinc_files(sys.argv[2], True, True)
print("installed the release's files into", sys.argv[2])
"""


def volume_commit(created: dict | None, pins_record: dict | None, release_record: dict | None) -> str:
    """The BOINC commit a project volume runs: the release record's (the job's last install),
    else the upgrade record's, else the one it was created with; "" when none says."""
    for record in (release_record, pins_record, created):
        if record and record.get("boinc_commit"):
            return str(record["boinc_commit"])
    return ""


def read_records(read) -> tuple[dict | None, dict | None, dict | None]:
    """(created, pins, release) records through `read(relpath) -> bytes | str | None`."""
    out = []
    for rel in (CREATED_RECORD, PINS_RECORD, RELEASE_RECORD):
        data = read(rel)
        out.append(json.loads(data) if data else None)
    return out[0], out[1], out[2]


def install_command(boinc_src: str, project_root: str) -> list[str]:
    """BOINC's install_boinc_files of the release in `boinc_src` over the project at
    `project_root`; run it with cwd `install_cwd(boinc_src)`, as the BOINC user."""
    return ["python3", "-c", _INSTALL, boinc_src, project_root]


def install_cwd(boinc_src: str) -> str:
    return str(PurePosixPath(boinc_src) / "tools")


def install_failures(output: str) -> list[str]:
    """The lines where BOINC's install said a file could not be copied."""
    return [line.strip() for line in output.splitlines() if INSTALL_FAILED in line]


def upgrade_db_command() -> list[str]:
    """html/ops/upgrade_db.php; run it in html/ops as the BOINC user, `upgrade_db_answers` on stdin."""
    return ["php", "upgrade_db.php"]


def upgrade_db_answers(db_user: str, db_password: str) -> str:
    """What upgrade_db.php asks when it has updates to apply: whether to apply them, then (its
    db_init_cli, html/inc/util_ops.inc) a database user and password able to alter the tables,
    each read as one line of at most 79 characters."""
    if len(db_user) > 79 or len(db_password) > 79 or "\n" in db_user + db_password:
        raise ValueError("upgrade_db.php reads the database user and password as lines of at most 79 characters")
    return f"y\n{db_user}\n{db_password}\n"


def upgrade_db_failed(returncode: int, output: str) -> bool:
    return returncode != 0 or UPGRADE_DB_FAILED in output


def release_record(boinc_commit: str, previous_commit: str, db_revision: str, when: str) -> dict:
    return {"boinc_commit": boinc_commit, "from": previous_commit, "db_revision": db_revision, "installed": when}
