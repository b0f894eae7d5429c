"""`boincserver-project-setup`: the makeproject job, run at every `up` (also under plain
`docker compose up -d`), and the subcommands the host runs in a one-shot makeproject container
(`secrets ...`, `sign-md5 MD5...`, `db-user`: see container/secrets.py).

The job:
1. The first time, creates the project: the database and its user (through MariaDB's socket,
   as its root, so no administrator password exists), then BOINC's make_project with the keys
   generated straight into the secrets volume. make_project runs here, at first start, and
   never at image build time, so no private key is ever in an image layer.
2. Every time: refuses a changed PROJECT, BOINC_USER or PROJECT_ROOT; gives the results volume
   to the BOINC user; puts what the image adds under PROJECT_ROOT (the project's overlay) onto
   the project volume, keeping what the running project made; applies the runtime values
   (URL_BASE and the others) to the files that hold them and to the database rows that store
   download URLs, and the throughput settings (boinc/tuning.py): the job array's size in
   config.xml and BOINC's FastCGI scheduler and upload handler in cgi-bin.
   And the batch life cycle's part (container/lifecycle.py): the batch_file_assoc table BOINC's
   job_file.php needs, and the clean-up task in config.xml.
   And html/project/remote_apps.inc (and submitters.inc), which BOINC's submit.php and
   show_apps.php require (container/remote_apps.py), and what BUDA's pages need
   (container/buda.py), and the project's mail in project.inc (container/mail.py).
   And the home page (container/home_page.py): the long name and description from
   boincserver.toml, html/user/about.php and the forums; a welcome news item at creation.

Exit codes: 0 done, 2 failed (the message is on stderr as "[makeproject] error: ...").
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import IO

from boincserver.boinc import daemon_instances, home_page as home, makeproject, naming, substitution, tuning
from boincserver.container import common, secrets
from boincserver.container import buda, lifecycle, release
from boincserver.container.apps import instance_counts
from boincserver.container import home_page
from boincserver.container import mail as project_mail
from boincserver.container import remote_apps
from boincserver.container.common import Mounts, Owner, Refused
from boincserver.container.vault import Vault

STATE_DIR = ".boincserver"
DB_HOST = "mysql"
FAILED = 2
ERROR_PREFIX = "[makeproject] error: "  # how a failure is worded on stderr (inproject.py reads it)


def log(message: str) -> None:
    print(f"[makeproject] {message}", flush=True)


def restore_overlay(mounts: Mounts, root: Path) -> None:
    """Put the image's overlay back where the image has it, if an earlier run moved it."""
    if mounts.overlay_aside.exists():
        if root.exists():
            shutil.rmtree(root)
        shutil.move(str(mounts.overlay_aside), str(root))


def check_locked(volume: Path, locked: dict[str, str]) -> bool:
    """Whether the project exists; Refused if it was made with other build-time values, or the
    volume holds something boincserver did not make."""
    record_path = volume / STATE_DIR / "created.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        changed = {k: (record[k], v) for k, v in locked.items() if record.get(k) != v}
        if changed:
            what = ", ".join(f"{k.upper()} {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise Refused(
                f"the project exists and its build-time values cannot change ({what}); nothing was "
                "changed. Put the old values back in .env, or start over with "
                "`docker compose down --volumes` (this deletes the project and its data).")
        return True
    if any(p.name != STATE_DIR for p in volume.iterdir()):
        raise Refused(f"the project volume holds files but no {STATE_DIR}/created.json: not made by "
                      "boincserver; use an empty volume")
    return False


def own_results(mounts: Mounts, owner: Owner) -> None:
    """The results and tls volumes belong to the BOINC user (the assimilators write results,
    Apache's mod_md its certificates; apache runs as that user). A stack whose makeproject
    service does not mount one is left alone."""
    for volume in (mounts.results, mounts.tls):
        if volume.is_dir():
            owner.give(volume)


def create_project(mounts: Mounts, vault: Vault, project: str, owner: Owner, root: Path, url: str,
                   host: str, environ: dict[str, str]) -> None:
    log(f"creating BOINC project {project!r} at {url}/{project}/ (make_project)")
    db_password = vault.value("db")
    if environ.get("DB_ADMIN") != "external":  # on Swarm the db-user job, on the database's node, made it
        common.ensure_db_user(common.connect_as_root(mounts.mysql_socket), project, owner.name, db_password)
    # make_project creates PROJECT_ROOT itself and refuses an existing one: the overlay the
    # image has there is moved aside for the time of the run, then put back.
    mounts.overlay_aside.parent.mkdir(parents=True, exist_ok=True)
    if root.exists():
        # A move, not a rename: the overlay is in a lower image layer (EXDEV on overlayfs).
        shutil.move(str(root), str(mounts.overlay_aside))
    root.parent.mkdir(parents=True, exist_ok=True)
    owner.give(root.parent)
    cmd = makeproject.make_project_command(str(mounts.boinc_src), project, url, str(root), host,
                                           str(mounts.keys), owner.name, DB_HOST, db_password)
    # Named, not shown: the command line holds the database password.
    out = common.run(["runuser", "-u", owner.name, "--"] + cmd, what="make_project",
                     cwd=mounts.boinc_src / "tools",
                     env=dict(environ, USER=owner.name, HOME=f"/home/{owner.name}"))
    for line in out.splitlines()[-3:]:
        log(line)
    config = root / "config.xml"
    config.write_text(tuning.with_lost_results_resent(tuning.with_upload_certificates(config.read_text())))
    inc = root / makeproject.PROJECT_INC
    inc.write_text(home.project_inc_without_display_errors(makeproject.project_inc_defaults(inc.read_text(), project)))
    # The ops area's password file lives in the secrets volume, not beside the pages.
    htaccess = root / makeproject.OPS_HTACCESS
    htaccess.write_text(makeproject.ops_htaccess_with_password_file(
        htaccess.read_text(), str(vault.path(vault.catalogue["ops"].paths[1]))))
    log("copying the new project onto the project volume")
    common.run(["rsync", "-a", f"{root}/", f"{mounts.project}/"])
    shutil.rmtree(root)
    restore_overlay(mounts, root)


def apply_overlay(mounts: Mounts, root: Path, values: dict[str, str], owner: Owner) -> None:
    """Carry the image's files under PROJECT_ROOT onto the volume (without deleting)."""
    if not root.is_dir() or not any(root.iterdir()):
        return
    log("putting the overlay's files onto the project volume")
    common.run(["rsync", "-a", "--chown", f"{owner.name}:{owner.name}", f"{root}/", f"{mounts.project}/"])
    # ${project} in file names (e.g. ${project}.httpd.conf), anywhere in what was copied.
    for path in sorted(mounts.project.rglob("*$*"), key=lambda p: len(p.parts), reverse=True):
        named = substitution.substituted_name(path.name, values)
        if named != path.name:
            path.rename(path.with_name(named))


def substitute_files(volume: Path, values: dict[str, str], previous_url: str) -> list[str]:
    """The runtime values into the files that hold them; the files changed."""
    changed = []
    for relpath in substitution.substituted_files(p.name for p in volume.iterdir()):
        path = volume / relpath
        if path.is_file() and common.replace_file(path, substitution.substitute(path.read_text(), values,
                                                                                previous_url)):
            changed.append(relpath)
    return changed


def update_db_urls(values: dict[str, str], previous_url: str, url: str) -> None:
    statements = substitution.sql_url_updates(previous_url, url)
    if not statements:
        return
    conn = common.connect(values)
    try:
        common.execute_all(conn.cursor(), statements)
    finally:
        conn.close()
    log(f"stored download URLs moved from {previous_url} to {url}")


def work_slots(environ: dict[str, str]) -> int:
    """WORK_SLOTS (boincserver.toml's work_slots), checked before anything is changed."""
    raw = environ.get("WORK_SLOTS") or str(tuning.DEFAULT_WORK_SLOTS)
    try:
        return tuning.check_work_slots(int(raw))
    except (ValueError, tuning.TuningError):
        raise Refused(f"WORK_SLOTS {raw!r} is not valid: set work_slots in boincserver.toml to a number "
                      f"from {tuning.MIN_WORK_SLOTS} to {tuning.MAX_WORK_SLOTS} (or fix .env)") from None


def tune(mounts: Mounts, slots: int, instances: dict[str, int] | None = None) -> list[str]:
    """config.xml's job array and feeder, its daemons' instances (DAEMON_INSTANCES), and the
    FastCGI programs under the CGI names, from this image's BOINC build; what changed."""
    changed = []
    config = mounts.project / "config.xml"
    old = config.read_text()
    tuned = tuning.tuned_config(old, slots)
    new = daemon_instances.with_instances(tuned, instances or {})
    if common.replace_file(config, new):
        if tuned != old:
            changed.append(f"config.xml (work slots {slots})")
        if new != tuned:
            changed.append(f"config.xml's daemons ({daemon_instances.to_env(instances or {}) or 'one each'})")
    for name, program in tuning.FASTCGI_PROGRAMS.items():
        built, installed = mounts.boinc_src / "sched" / program, mounts.project / "cgi-bin" / name
        if not built.is_file() or not installed.parent.is_dir():
            continue  # a BOINC built without libfcgi: the CGI programs stay
        if installed.is_file() and installed.read_bytes() == built.read_bytes():
            continue
        stat = installed.stat() if installed.is_file() else installed.parent.stat()
        tmp = installed.with_name(name + ".boincserver-tmp")
        shutil.copyfile(built, tmp)
        os.chown(tmp, stat.st_uid, stat.st_gid)
        tmp.chmod(0o755)
        os.replace(tmp, installed)
        changed.append(f"cgi-bin/{name} (FastCGI)")
    return changed


def run_job(mounts: Mounts, environ: dict[str, str]) -> None:
    project = naming.check_project_name(common.required_env(environ, "PROJECT"))
    owner = Owner.named(naming.check_boinc_user(common.required_env(environ, "BOINC_USER")))
    root = Path(naming.check_project_root(common.required_env(environ, "PROJECT_ROOT")))
    url = naming.normalise_url_base(common.required_env(environ, "URL_BASE"))
    host = environ.get("PROJECT_HOST", "boincserver")
    slots = work_slots(environ)
    instances = instance_counts(environ)
    mail_settings = project_mail.settings(environ)
    long_name, description = home_page.settings(environ, project)
    restore_overlay(mounts, root)
    locked = {"project": project, "boinc_user": owner.name, "project_root": str(root)}
    exists = check_locked(mounts.project, locked)
    moving = release.check(mounts.project, environ) if exists else None  # before anything changes
    vault = Vault(mounts, owner)
    vault.prepare()
    swarm_password = common.swarm_db_password(environ)
    if swarm_password is not None and vault.value("db") != swarm_password:
        vault.write(vault.catalogue["db"].files[0].path, swarm_password + "\n")
        log("the database password: from the Swarm secret")
    finished = vault.complete(secrets.effects(mounts, project, owner, vault))  # a rotation an earlier run left
    if finished:
        log(f"finished an interrupted rotation of: {', '.join(finished)}")
    made = vault.ensure()
    if made:
        log(f"generated secrets: {', '.join(made)}")
    owner.give(mounts.project)
    own_results(mounts, owner)
    state_path = mounts.project / STATE_DIR / "state.json"
    if not exists:
        create_project(mounts, vault, project, owner, root, url, host, environ)
        home_page.welcome(mounts.project, int(time.time()))
        previous_url = url
        (mounts.project / STATE_DIR).mkdir(exist_ok=True)
        record = {**locked, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "boinc_commit": environ.get("BOINC_COMMIT", "")}
        common.write_private(mounts.project / STATE_DIR / "created.json", json.dumps(record) + "\n", owner, 0o644)
    else:
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        previous_url = state.get("url_base", url)
    secrets.apply_secrets_to_config(mounts, vault)
    values = {"url_base": url, "project": project, "boinc_user": owner.name, "project_root": str(root),
              "db_passwd": vault.value("db"), "db_host": DB_HOST, "db_user": owner.name, "db_name": project}
    if moving:
        release.upgrade(mounts, root, owner, environ, moving, log,
                        lambda: release.align_schema(mounts, project, log), vault.value("db"))
    apply_overlay(mounts, root, values, owner)
    schedulers = mounts.project / makeproject.SCHEDULERS_TXT
    if schedulers.is_file() and common.replace_file(schedulers,
                                                    makeproject.schedulers_txt_repaired(schedulers.read_text())):
        log(f"{makeproject.SCHEDULERS_TXT}: the scheduler's link repaired (make_project 1.4.7 wrote href=\"url\")")
    changed = substitute_files(mounts.project, values, previous_url)
    if changed:
        log("runtime values written into: " + ", ".join(changed))
    tuned = tune(mounts, slots, instances)
    if tuned:
        log("tuned for throughput: " + ", ".join(tuned))
    update_db_urls(values, previous_url, url)
    for prepared in lifecycle.prepare_project(mounts.project, values):
        log(f"batch clean-up: {prepared}")
    for written in remote_apps.prepare_project(mounts.project, values):
        log(f"for BOINC's submission pages: {written}")
    for prepared in buda.prepare_project(mounts.project, str(root), previous_url, url):
        log(f"for BUDA (Docker apps on the web): {prepared}")
    for written in project_mail.prepare_project(mounts.project, mail_settings):
        log(f"mail: {written}")
    for written in home_page.prepare_project(mounts.project, long_name, description, values):
        log(f"home page: {written}")
    common.write_private(state_path, json.dumps({"url_base": url}) + "\n", owner, 0o644)
    log(f"ready: {url}/{project}/")


def main(argv: list[str] | None = None, *, mounts: Mounts | None = None, environ: dict[str, str] | None = None,
         stdin: IO[bytes] | None = None, out: IO[bytes] | None = None, err: IO[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    environ = dict(os.environ) if environ is None else environ
    mounts = mounts or Mounts(boinc_src=Path(environ.get("BOINC_SRC", str(Mounts.boinc_src))))
    out = sys.stdout.buffer if out is None else out
    try:
        if not argv:
            run_job(mounts, environ)
            return 0
        command, rest = argv[0], argv[1:]
        if command == "secrets":
            answer = secrets.secrets_command(rest, mounts, environ, sys.stdin.buffer if stdin is None else stdin)
        elif command == "sign-md5":
            answer = secrets.sign_md5(rest, mounts)
        elif command == "db-user":
            answer = secrets.db_user(mounts, environ)
        else:
            raise Refused(f"unknown command {command!r}: none (the job), secrets, sign-md5 or db-user")
    except (Refused, ValueError) as exc:
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr if err is None else err, flush=True)
        return FAILED
    out.write(answer if isinstance(answer, bytes) else (json.dumps(answer) + "\n").encode())
    out.flush()
    return 0
