"""The makeproject job's part in moving a project to another BOINC server release.

The volume says which release it runs (boinc/releases.py); the image says which it was built
from (BOINC_COMMIT). When they differ the job refuses, unless BOINC_UPGRADE names the image's
commit: `boincserver upgrade` sets it for the one start that moves the project, after taking a
backup and stopping the daemons. Then, in order: BOINC's install_boinc_files over the project
(as PROJECT_ROOT, where the services see it), BOINC's translations, html/ops/upgrade_db.php,
the schema's alignment with a fresh project's (boinc/schema.py), and only after all of them
the record. The project's own files (html/project, config.xml, keys, apps, upload, download)
are not touched by the install; the overlay and the runtime values are applied after it, by
the rest of the job.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from boincserver.boinc import releases, schema
from boincserver.container import common
from boincserver.container.common import Mounts, Owner, Refused


def read_volume_records(volume: Path) -> tuple[dict | None, dict | None, dict | None]:
    def read(rel: str) -> str | None:
        path = volume / rel
        return path.read_text() if path.is_file() else None
    return releases.read_records(read)


def check(volume: Path, environ: dict[str, str]) -> tuple[str, str] | None:
    """(the volume's commit, the image's) when this start is to move the project to the image's
    release; None when they agree (or either is unknown); Refused when they differ unasked."""
    image = environ.get("BOINC_COMMIT", "")
    current = releases.volume_commit(*read_volume_records(volume))
    if not image or not current or image == current:
        return None
    if environ.get("BOINC_UPGRADE", "") != image:
        raise Refused(
            f"the project runs BOINC commit {current[:12]} and this image is BOINC {image[:12]}: moving a "
            "project to another BOINC release is `boincserver upgrade`'s work (it backs up first); nothing "
            "was changed. To keep the release the project has, set boinc_release back in boincserver.toml")
    return current, image


@contextmanager
def project_root_on_volume(mounts: Mounts, root: Path) -> Iterator[Path]:
    """PROJECT_ROOT, for a while, a symlink to the project volume: BOINC's install writes
    absolute paths (bin/stop -> PROJECT_ROOT/bin/start), which must be the services' path.
    The image's overlay there waits aside meanwhile and is put back after."""
    mounts.overlay_aside.parent.mkdir(parents=True, exist_ok=True)
    if root.exists() and not root.is_symlink():
        shutil.move(str(root), str(mounts.overlay_aside))  # a move: the overlay is in a lower layer
    root.parent.mkdir(parents=True, exist_ok=True)
    root.symlink_to(mounts.project)
    try:
        yield root
    finally:
        root.unlink()
        if mounts.overlay_aside.exists():
            shutil.move(str(mounts.overlay_aside), str(root))


def upgrade(mounts: Mounts, root: Path, owner: Owner, environ: dict[str, str], commits: tuple[str, str],
            log: Callable[[str], None], align_schema: Callable[[], list[str]], db_password: str) -> dict:
    """Install the image's release over the project, update its database (as the project's
    database user, named as the BOINC user, with `db_password`), then record it."""
    previous, image = commits
    src = str(mounts.boinc_src)
    as_owner = ["runuser", "-u", owner.name, "--"]
    env = dict(environ, USER=owner.name, HOME=f"/home/{owner.name}")
    log(f"moving the project from BOINC {previous[:12]} to {image[:12]}: installing the release's programs "
        "and web code (BOINC's install_boinc_files)")
    with project_root_on_volume(mounts, root):
        out = common.run(as_owner + releases.install_command(src, str(root)), what="BOINC's install_boinc_files",
                         cwd=releases.install_cwd(src), env=env)
        failed = releases.install_failures(out)
        if failed:
            raise Refused("BOINC's install could not copy every file (" + "; ".join(failed[:5]) + "): the "
                          "project is half-installed; restore the backup `boincserver upgrade` took")
        ops = root / "html" / "ops"
        done = common.run_command(as_owner + ["php", "update_translations.php", "-d", "1"], cwd=ops, env=env)
        if done.returncode != 0:  # as BOINC's own upgrade: the pages fall back to English
            log("BOINC's update_translations.php failed; the pages fall back to English")
        log("applying BOINC's database updates (html/ops/upgrade_db.php)")
        done = common.run_command(as_owner + releases.upgrade_db_command(), cwd=ops, env=env,
                                  answers=releases.upgrade_db_answers(owner.name, db_password))
    output = (done.stdout or "") + (done.stderr or "")
    if releases.upgrade_db_failed(done.returncode, output):
        raise Refused("BOINC's database upgrade (html/ops/upgrade_db.php) failed:\n" + output.strip()[-1500:])
    for line in output.strip().splitlines()[-5:]:
        log(f"upgrade_db: {line}")
    try:
        aligned = align_schema()
    except Exception as exc:  # MySQLdb's errors, SchemaError: the database is as upgrade_db.php left it
        raise Refused(f"aligning the schema with a fresh project's failed ({type(exc).__name__}: {exc}); BOINC's "
                      "own database updates were applied: restore the backup `boincserver upgrade` took") from None
    for statement in aligned:
        log(f"schema: {statement}")
    revision_file = mounts.project / releases.DB_REVISION
    revision = revision_file.read_text().strip() if revision_file.is_file() else ""
    record = releases.release_record(image, previous, revision, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    common.write_private(mounts.project / releases.RELEASE_RECORD,
                         json.dumps({**record, "schema_aligned": aligned}) + "\n", owner, 0o644)
    log(f"the project runs BOINC {image[:12]} (db_revision {revision or 'unknown'})")
    return record


def _tables(cursor, database: str) -> dict[str, str]:
    """SHOW CREATE TABLE of each base table (views are not a schema make_project defines)."""
    cursor.execute(f"SHOW FULL TABLES FROM `{database}` WHERE Table_type = 'BASE TABLE'")
    names = [row[0] for row in cursor.fetchall()]
    out = {}
    for name in names:
        cursor.execute(f"SHOW CREATE TABLE `{database}`.`{name}`")
        out[name] = cursor.fetchone()[1]
    return out


def align_schema(mounts: Mounts, database: str, log: Callable[[str], None]) -> list[str]:
    """The project's database made as a fresh one at the image's release (boinc/schema.py):
    the reference is a scratch database from the release's db/ scripts, made through MariaDB's
    socket as its root (the project's user may not create databases) and dropped after."""
    conn = common.connect_as_root(mounts.mysql_socket)
    scratch = f"boincserver_reference_{database}"[:64]
    try:
        cursor = conn.cursor()
        cursor.execute(f"DROP DATABASE IF EXISTS `{scratch}`")
        cursor.execute(f"CREATE DATABASE `{scratch}` {schema.DATABASE_OPTIONS}")
        cursor.execute(f"USE `{scratch}`")
        for script in schema.SCHEMA_SCRIPTS:
            for statement in schema.script_statements((mounts.boinc_src / "db" / script).read_text()):
                cursor.execute(statement)
        reference = _tables(cursor, scratch)
        statements, notes = schema.alignment(_tables(cursor, database), reference)
        cursor.execute(f"USE `{database}`")
        # The server runs MariaDB without strict mode (BOINC needs it); here a column that
        # would cut a value short must fail instead, so that nothing is lost.
        cursor.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
        for statement in statements:
            cursor.execute(statement)
        for note in notes:
            log(f"schema: {note}")
        left = [t for t in schema.differences(_tables(cursor, database), reference) if t in reference]
        if left:
            log(f"schema: tables still unlike a fresh project's: {', '.join(left)}")
        cursor.execute(f"DROP DATABASE `{scratch}`")
        conn.commit()
    finally:
        conn.close()
    return statements
