"""`boincserver-jobs app-state|app-install|apps|buda-state|buda-install|buda-apps`: BOINC apps
(and BUDA's Docker science apps, boinc/buda.py) in the apache service.

boincserver on the host assembles a version (files, signatures, version.xml, templates,
project.xml) and unpacks it in PROJECT_ROOT; what needs the project's programs and database
is done here: bin/xadd, bin/update_versions, the app's daemons in config.xml, and the
plan_class_spec.xml the scheduler needs once a Docker app exists (boinc/plan_classes.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import buda as bb
from boincserver.boinc import configxml, daemon_instances, database, plan_classes, status
from boincserver.boinc.jobs import DEFAULT_FANOUT
from boincserver.container import common
from boincserver.container import remote_apps
from boincserver.container.common import ProjectFolder, Refused

# project.xml as it was before the host unpacked a version over it: put back if that fails.
PROJECT_XML_BEFORE = "project.xml.boincserver-old"
RESTART_WAIT = 30.0


def app_row(cursor, name: str) -> tuple | None:
    """(id, name, user_friendly_name, deprecated) of an app, None if it has no row."""
    cursor.execute(database.APP_BY_NAME, (name,))
    return cursor.fetchone()


def plan_class_state(project: ProjectFolder, args: list[str] | None = None) -> dict:
    """The plan classes of the versions the scheduler may send, and plan_class_spec.xml's
    text (None: no file)."""
    cursor = project.cursor()
    cursor.execute(plan_classes.PLAN_CLASSES_IN_USE)
    spec = project.root / plan_classes.FILE_NAME
    return {"plan_classes": sorted({row[0] for row in cursor.fetchall() if row[0]}),
            "plan_class_spec": spec.read_text() if spec.is_file() else None}


def app_state(project: ProjectFolder, args: list[str]) -> dict:
    """What the host needs to assemble a new version of app args[0]."""
    name = args[0]
    versions = project.root / "apps" / name
    return {"project_xml": project.read("project.xml"),
            "version_dirs": sorted(os.listdir(versions)) if versions.is_dir() else [],
            "daemons": boinc_apps.config_daemon_commands(project.read("config.xml")),
            "registered": app_row(project.cursor(), name) is not None,
            **plan_class_state(project)}


def write_file(path: Path, text: str) -> None:
    """Write `text` as `path` in one step (the scheduler reads the file at every request: it
    must never see half of it), the mode of the file it replaces or 0644."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    tmp = path.with_name(path.name + ".boincserver-tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


# Apache's graceful restart ends its FastCGI processes (the scheduler and the upload handler),
# which read config.xml and plan_class_spec.xml only when they start (boinc/tuning.py).
RECYCLE_FASTCGI = ["apache2ctl", "graceful"]


def recycle_fastcgi(project: ProjectFolder) -> None:
    done = common.run_command(RECYCLE_FASTCGI, cwd=project.root)
    if done.returncode != 0:
        raise common.failure(RECYCLE_FASTCGI, done)


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


def instance_counts(environ: dict[str, str]) -> dict[str, int]:
    """DAEMON_INSTANCES (boincserver.toml's [daemon_instances]), checked before anything changes."""
    try:
        return daemon_instances.from_env(environ.get(daemon_instances.ENV, ""))
    except daemon_instances.DaemonInstancesError as exc:
        raise Refused(f"{daemon_instances.ENV}: {exc}; fix [daemon_instances] in boincserver.toml "
                      "(and run `boincserver up`)") from None


def app_install(project: ProjectFolder, args: list[str]) -> dict:
    """xadd, update_versions --noconfirm, then the app's daemons (restarting them if new).

    args: the app, its daemons as JSON ([{"cmd", "xml"}]), the version folder the host
    unpacked. If xadd or update_versions fails, the version folder goes and project.xml is
    put back: nothing is left half-installed.

    Once a Docker version exists the scheduler needs plan_class_spec.xml; it is made (or a
    user's file completed) before xadd, so a plan class it cannot serve stops the install, and
    written once the version is in; the first Docker app also turns on <debug_user_messages>
    (the scheduler then logs why a host gets no Docker job, e.g. "Docker not present").
    The app's daemons get as many instances as DAEMON_INSTANCES says (boinc/daemon_instances.py)."""
    name, vdir = args[0], args[2]
    daemons = [boinc_apps.daemon_from_json(d) for d in json.loads(args[1])]
    before = project.root / PROJECT_XML_BEFORE
    new_class = boinc_apps.plan_class_of(Path(vdir).name)
    classes = plan_class_state(project)
    try:
        counts = instance_counts(dict(os.environ))  # refused like the rest: the version folder goes
        try:
            spec = plan_classes.spec_file([*classes["plan_classes"], new_class], classes["plan_class_spec"])
        except boinc_apps.AppError as exc:
            raise Refused(str(exc)) from None
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
    out["plan_classes_added"] = []
    if spec is not None and spec != classes["plan_class_spec"]:
        had = plan_classes.class_names(classes["plan_class_spec"]) if classes["plan_class_spec"] else []
        out["plan_classes_added"] = [c for c in plan_classes.class_names(spec) if c not in had]
        write_file(project.root / plan_classes.FILE_NAME, spec)
    config = project.root / "config.xml"
    text = daemon_instances.with_instances(config.read_text(), {})  # one entry a daemon, as the host's
    added = boinc_apps.missing_daemons(text, daemons)
    out["daemons_added"] = [d.cmd for d in added]
    new_text = boinc_apps.config_xml_with_daemons(text, added)
    if new_class == plan_classes.DOCKER and plan_classes.DOCKER not in classes["plan_classes"]:
        new_text = configxml.set_element(new_text, "debug_user_messages", "1")
    common.replace_file(config, daemon_instances.with_instances(new_text, counts))
    if added:
        restart_daemons(project)
    recycle_fastcgi(project)
    out["app"] = app_row(project.cursor(), name)[0]
    # BOINC's submit.php lists the app, and knows where its outputs go (container/remote_apps.py).
    out["submission_pages"] = remote_apps.write_files(project.root, project.cursor())
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


# -- BUDA science apps (boinc/buda.py) -----------------------------------------------------------
def _buda_name(args: list[str], what: str) -> str:
    if len(args) != 1:
        raise Refused(f"{what} takes the BUDA app's name")
    return bb.check_app_name(args[0])


def buda_state(project: ProjectFolder, args: list[str]) -> dict:
    """What the host needs to lay out BUDA app args[0]: config.xml's download URL and fanout
    (variant.json bakes the URL in), its desc.json's text if it exists (None otherwise), and
    whether a BOINC app has that name (then `--submit NAME` would be ambiguous)."""
    name = _buda_name(args, "buda-state")
    config = project.read("config.xml")
    desc = project.root / bb.app_dir(name) / bb.DESC_JSON
    return {"download_url": configxml.get_element(config, "download_url") or "",
            "fanout": int(configxml.get_element(config, "uldl_dir_fanout") or DEFAULT_FANOUT),
            "desc": desc.read_text() if desc.is_file() else None,
            "boinc_app": app_row(project.cursor(), name) is not None}


def buda_install(project: ProjectFolder, args: list[str]) -> dict:
    """After the host unpacked BUDA app args[0] in PROJECT_ROOT: its desc.json read back as the
    scheduler reads it, and the FastCGI scheduler restarted (it reads buda_apps/ once, when it
    starts: sched/sched_main.cpp:506)."""
    name = _buda_name(args, "buda-install")
    desc = bb.parse_desc_json(project.read(f"{bb.app_dir(name)}/{bb.DESC_JSON}"))
    recycle_fastcgi(project)
    return {"app": name, "inputs": list(desc.input_file_names), "outputs": list(desc.output_file_names),
            "submitters": list(desc.submitters)}


def buda_apps(project: ProjectFolder, args: list[str]) -> list[dict]:
    """Every BUDA science app (buda_apps/*/desc.json) with its variants; a desc.json that cannot
    be read is shown with its error."""
    out = []
    folder = project.root / bb.APPS_DIR
    for desc_path in sorted(folder.glob(f"*/{bb.DESC_JSON}")) if folder.is_dir() else []:
        app = desc_path.parent
        if app.name.startswith("."):
            continue  # buda.inc skips these (10, 25)
        variants = sorted(v.name for v in app.iterdir() if (v / bb.VARIANT_JSON).is_file())
        try:
            desc = bb.parse_desc_json(desc_path.read_text())
        except bb.BudaError as exc:
            out.append({"name": app.name, "error": exc.message, "variants": variants})
            continue
        out.append({"name": app.name, "long_name": desc.long_name, "inputs": list(desc.input_file_names),
                    "outputs": list(desc.output_file_names), "min_nsuccess": desc.min_nsuccess,
                    "max_total": desc.max_total, "user_id": desc.user_id, "submitters": list(desc.submitters),
                    "variants": variants})
    return out


COMMANDS = {"app-state": app_state, "app-install": app_install, "apps": list_apps,
            "plan-classes": plan_class_state, "buda-state": buda_state, "buda-install": buda_install,
            "buda-apps": buda_apps}
