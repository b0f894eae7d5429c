"""The use cases: init, build, up, down, status, logs, exec. Each takes the engine it needs.

Nothing here prints: progress goes to a Reporter the caller passes in, results are returned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from boincserver import __version__, boinc_source, certificates, images, paths, pins, render, secrets
from boincserver import registry as reg
from boincserver.boinc import keys, releases
from boincserver.boinc import status as boinc_status
from boincserver.context import (Project, Reporter, Silent, build_lines, check_docker, created_record, download_progress,
                                 read_volume_file, service_running, wait_until_certified, wait_until_serving)
from boincserver.errors import DockerError, EnvironmentProblem, InvalidInput, ProjectError
from boincserver.settings import Settings, locked_changes, save as save_settings, to_toml

SERVICES = ("mysql", "makeproject", "apache")
PROJECT_INPUTS_LABEL = "org.boincserver.project-inputs"
# Files of the project folder that are settings, not build inputs (see the .dockerignore);
# volunteer/ is `boincserver volunteer`'s client: its account key and the files it computes.
# stack.yaml holds Swarm's runtime values (swarm_storage), as .env does Compose's.
NOT_BUILD_INPUTS = {".env", paths.SETTINGS_FILE, paths.STACK_FILE, ".git", ".github", "volunteer"}


# -- init ----------------------------------------------------------------------------------
def init(project_dir: Path, settings: Settings) -> list[render.Written]:
    """Scaffold a new project folder; refuse to touch an existing or non-empty one."""
    project_dir = project_dir.absolute()
    settings.check_https()
    if (project_dir / paths.SETTINGS_FILE).exists():
        raise ProjectError(f"{project_dir} is already a boincserver project; nothing was changed",
                           advice="use `boincserver up` there, or choose a new folder")
    if project_dir.exists() and (not project_dir.is_dir() or any(project_dir.iterdir())):
        raise ProjectError(f"{project_dir} exists and is not empty; nothing was changed",
                           advice="choose a new folder name (init never overwrites files)")
    # Missing parent folders are made, as `git init a/b/c` does; a failure removes them again.
    made_parent = _make_parents(project_dir.parent)
    try:
        # Write everything into a sibling folder, then move it into place: no half-made project.
        staging = Path(tempfile.mkdtemp(prefix=f".{project_dir.name}.", dir=project_dir.parent))
    except BaseException:
        if made_parent:
            shutil.rmtree(made_parent, ignore_errors=True)
        raise
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; a project folder follows the umask
    try:
        written = render.write_project(staging, settings, initial=True)
        (staging / paths.SETTINGS_FILE).write_text(to_toml(settings))
        (staging / ".dockerignore").write_text(
            "# Settings are runtime values, not image inputs: changing them never rebuilds.\n"
            + "\n".join(sorted(NOT_BUILD_INPUTS)) + "\n")
        if project_dir.exists():
            for entry in staging.iterdir():
                entry.rename(project_dir / entry.name)
            staging.rmdir()
        else:
            staging.rename(project_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made_parent:
            shutil.rmtree(made_parent, ignore_errors=True)
        raise
    return [render.Written(project_dir / w.path.relative_to(staging), w.state) for w in written] + [
        render.Written(project_dir / paths.SETTINGS_FILE, "created"),
        render.Written(project_dir / ".dockerignore", "created"),
    ]


def _make_parents(folder: Path) -> Path | None:
    """Make `folder` and its missing parents; the topmost one made (None if all existed)."""
    missing = None
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            break
        if candidate.exists() or candidate.is_symlink():
            raise InvalidInput(f"{candidate} is in the way of the project folder and is not a folder; "
                               "nothing was changed", advice="choose another place for the project")
        missing = candidate
    if missing is None:
        return None
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        shutil.rmtree(missing, ignore_errors=True)
        raise InvalidInput(f"cannot create {folder} ({exc.strerror or exc}); nothing was changed",
                           advice="choose a place you may write to") from None
    return missing


# -- shared steps --------------------------------------------------------------------------
def check_release(project: Project, settings: Settings, created: dict, upgrading: str = "") -> None:
    """Refuse, before anything is built, a BOINC release other than the one the volume runs:
    only `upgrade` moves a project between releases (`upgrading` is its target commit). The
    volume's other records are read only when the one it was created with disagrees."""
    want = settings.release
    if created.get("boinc_commit", want.commit) == want.commit or upgrading == want.commit:
        return
    running = releases.volume_commit(*releases.read_records(lambda rel: read_volume_file(project, "project", rel)))
    if not running or running == want.commit:
        return
    known = {r.commit: r for r in pins.server_releases().values()}
    name = known[running].version if running in known else running[:12]
    keep = (f"set boinc_release = \"{known[running].version}\" in boincserver.toml to keep running it, or "
            if running in known else "")
    raise ProjectError(
        f"the project runs BOINC {name} and boincserver.toml asks for BOINC {want.version}; moving a project "
        "to another release is `boincserver upgrade`'s work; nothing was changed",
        advice=f"{keep}`boincserver upgrade` moves it to BOINC {pins.BOINC_VERSION} (backup first)")


def check_locked(project: Project, settings: Settings | None = None, upgrading: str = "") -> None:
    settings = settings or project.settings
    record = created_record(project)
    if not record:
        return
    check_release(project, settings, record, upgrading)
    changed = locked_changes(record, settings)
    if changed:
        what = ", ".join(f"{k.upper()} {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ProjectError(
            f"the project exists and its build-time values cannot change ({what}); nothing was changed",
            advice=("put the old values back in boincserver.toml, or start over: "
                    "`boincserver down --volumes --yes` deletes the project and its data, then `boincserver up`"))


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def port_is_ours(project: Project, port: int, container_port: int = 80) -> bool:
    """True if this project's running apache is what holds the port."""
    published = project.engine.compose_port("apache", container_port) if service_running(project, "apache") else None
    return bool(published) and published.rsplit(":", 1)[-1] == str(port)


ADVICE_PORT = "free it, or choose another: `boincserver up --http-port PORT`"


def check_port_free(project: Project, port: int, container_port: int = 80) -> None:
    """Refuse a host port that something other than this project's apache holds."""
    if not port_is_ours(project, port, container_port) and not port_is_free(port):
        raise EnvironmentProblem(f"port {port} is already taken on this machine",
                                 advice=ADVICE_PORT if container_port == 80 else
                                 "free it, or choose another: `boincserver up --https-port PORT`")


def write_settings(project: Project, settings: Settings) -> None:
    """The new settings into boincserver.toml (the user's comments and layout kept), then the files from it."""
    save_settings(project.dir, settings)
    render.write_project(project.dir, settings, initial=False)
    project.settings = settings


# -- build ---------------------------------------------------------------------------------
def project_inputs_digest(project: Project, service: str) -> str:
    h = hashlib.sha256()
    # The base image's wanted inputs (not the label of whatever base image is there): a new
    # base gives new project images, and the digest needs no base image on this machine, so
    # a machine that only pulls can compute it.
    h.update(json.dumps([service, images.inputs_digest(service, release=project.settings.release),
                         project.settings.locked_values()]).encode())
    for f in sorted(project.dir.rglob("*")):
        rel = f.relative_to(project.dir)
        if f.is_file() and rel.parts[0] not in NOT_BUILD_INPUTS:
            h.update(str(rel).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass
class BuildResult:
    base_built: list[str] = field(default_factory=list)
    project_built: list[str] = field(default_factory=list)
    pulled: list[str] = field(default_factory=list)
    tagged: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    images: dict[str, dict] = field(default_factory=dict)


def build(project: Project, reporter: Reporter, boinc_src: str | None = None,
          force: bool = False, tags: tuple[str, ...] | list[str] = (), push: bool = False,
          registry: str | None = None) -> BuildResult:
    """Build the base images that are missing or outdated, then the project's images.

    With a registry (the project's `registry` setting, or `registry`), a project image that is
    missing here is first pulled by its content tag; `tags` tag the images (in the registry's
    namespace when there is one) and `push` sends them with their content tag.
    """
    result = BuildResult()
    where = reg.check_registry(registry) if registry else project.settings.registry
    tags = [reg.check_tag(t) for t in tags]
    if push and not where:
        raise InvalidInput("--push needs a registry: set `registry` in boincserver.toml "
                           "or pass --registry HOST[:PORT][/PATH]")
    # A source the user names is checked at once, whether or not BOINC needs compiling.
    release = project.settings.release
    given = boinc_source.resolve(boinc_src, release=release) if boinc_src else None
    digests = {s: project_inputs_digest(project, s) for s in SERVICES}

    def current(service: str) -> bool:
        labels = project.engine.image_labels(project.image(service))
        return bool(labels) and labels.get(PROJECT_INPUTS_LABEL) == digests[service]

    needed = [s for s in SERVICES if force or not current(s)]
    if needed:  # before any pull or build: a full disk is found first, not halfway
        images.check_free_disk(project.engine)
    if where and not force:
        for service in list(needed):
            remote = reg.reference(where, project.settings.compose_name, service,
                                   reg.content_tag(__version__, digests[service]))
            reporter.step(f"looking for {remote}")
            if project.engine.pull(remote, reporter.line):
                project.engine.tag_image(remote, project.image(service))
                if current(service):
                    needed.remove(service)
                    result.pulled.append(service)
    if needed:
        result.base_built = images.build_base_images(
            project.engine,
            lambda: given or boinc_source.resolve(on_progress=download_progress(reporter, "BOINC's source"),
                                                  release=release),
            build_lines(reporter), reporter.step, force=force, release=release)
    labels = reg.oci_labels(__version__, release.commit, reg.git_facts(project.dir))
    for service in needed:
        reporter.step(f"building {project.image(service)}")
        project.engine.build_image(
            project.dir, project.image(service),
            {k: v for k, v in project.settings.env().items() if k in ("PROJECT", "BOINC_USER", "PROJECT_ROOT")},
            {PROJECT_INPUTS_LABEL: digests[service],
             "org.opencontainers.image.title": f"{project.settings.project} {service}", **labels},
            build_lines(reporter), dockerfile=project.dir / "images" / service / "Dockerfile")
        result.project_built.append(service)
    for service in SERVICES:
        refs = [reg.reference(where, project.settings.compose_name, service, t) for t in tags]
        if push:
            refs.insert(0, reg.reference(where, project.settings.compose_name, service,
                                         reg.content_tag(__version__, digests[service])))
        for ref in refs:
            project.engine.tag_image(project.image(service), ref)
            result.tagged.append(ref)
        if push:
            for ref in refs:
                reporter.step(f"pushing {ref}")
                project.engine.push_image(ref, reporter.line)
                result.pushed.append(ref)
        result.images[service] = {"image": project.image(service), "id": project.engine.image_id(project.image(service)),
                                  "inputs": digests[service], "tags": refs}
    return result


# -- up ------------------------------------------------------------------------------------
@dataclass
class UpResult:
    master_url: str
    local_url: str
    seconds: float


def up(project: Project, reporter: Reporter, url_base: str | None = None, http_port: int | None = None,
       boinc_src: str | None = None, timeout: float = 300, changes: dict | None = None,
       job_env: dict[str, str] | None = None) -> UpResult:
    """Build what is missing, create or update the project, start it and wait until it serves.

    `job_env` goes to this start's makeproject job only (upgrade's BOINC_UPGRADE).
    `changes` are further settings (https_port, tls, acme_*). A certificate by ACME is waited
    for too; a project that already serves moves to a new https:// URL only once Apache has
    its certificate, so a CA that refuses leaves it serving as before."""
    started = time.monotonic()
    old = project.settings
    new = old.with_changes(url_base=url_base, http_port=http_port, **(changes or {}))
    new.check_https()
    check_docker(project.engine)
    check_locked(project, new, upgrading=(job_env or {}).get("BOINC_UPGRADE", ""))
    check_port_free(project, new.http_port)
    if new.serves_https:
        check_port_free(project, new.published_https_port, container_port=443)
    if boinc_src:  # verified before anything is written
        boinc_src = str(boinc_source.resolve(boinc_src))

    def remaining() -> float:
        return max(10.0, timeout - (time.monotonic() - started))

    if _needs_certificate_first(old, new) and created_record(project) is not None:
        # Phase 1: Apache gets the certificate for the new URL while serving the old one.
        staged = new.with_changes(url_base=old.url_base)
        render.write_project(project.dir, staged, initial=False, env={**staged.env(), **new.tls_env()})
        build(project, reporter, boinc_src=boinc_src)
        reporter.step(f"obtaining a certificate for {new.host} before the URL moves")
        _compose_up(project, reporter)
        try:
            wait_until_serving(staged, timeout=remaining())
            wait_until_certified(project, new, reporter, timeout=remaining())
        except ProjectError:
            reporter.step(f"the project keeps serving at {old.master_url}")
            write_settings(project, old)
            _compose_up(project, reporter)
            raise
    write_settings(project, new)
    build(project, reporter, boinc_src=boinc_src)
    secrets.recover(project, reporter)
    if new.offline_signing_keys and created_record(project) is None:
        # Before the project is made, the server gets the public key only: make_project and
        # the secrets job then keep the private key off the server.
        pair = secrets.make_offline_keys(Path(new.offline_signing_keys))
        reporter.step("offline code signing: sending the public key only")
        secrets.send_public_key(project, keys.public_key_to_text(pair.public))
    reporter.step("starting mysql, creating or updating the project, starting apache")
    _compose_up(project, reporter, job_env)
    local = f"http://127.0.0.1:{new.http_port}/{new.project}/"
    wait_until_serving(new, timeout=remaining())
    if new.serves_https and new.tls == "files" and read_volume_file(project, "tls", "files/fullchain.pem") is None:
        # Apache serves plain HTTP until the files are there; `tls set` then switches it on.
        reporter.step("HTTPS waits for your certificate: `boincserver tls set --cert FULLCHAIN.pem --key PRIVKEY.pem`")
    elif new.serves_https:
        wait_until_certified(project, new, reporter, timeout=remaining())
    return UpResult(new.master_url, local, time.monotonic() - started)


def _needs_certificate_first(old: Settings, new: Settings) -> bool:
    """A move to a URL that ACME must certify first (a new host, CA or way of serving TLS)."""
    if not (new.serves_https and new.tls == "acme"):
        return False
    return not (old.serves_https and old.tls == "acme" and old.host == new.host
                and old.acme_directory == new.acme_directory)


def _compose_up(project: Project, reporter: Reporter, env: dict[str, str] | None = None) -> None:
    try:
        project.engine.compose_up(None, reporter.line, env=env)
    except Exception:
        _explain_failed_job(project, reporter)
        raise


def _explain_failed_job(project: Project, reporter: Reporter) -> None:
    for row in project.engine.compose_ps():
        if row["service"] == "makeproject" and row["exit_code"] not in (0, None):
            reporter.step("the makeproject job failed; its last lines:")
            project.engine.compose_logs(["makeproject"], tail="30", on_line=reporter.line)


# -- down, status, logs, exec --------------------------------------------------------------
def down(project: Project, reporter: Reporter, volumes: bool) -> None:
    check_docker(project.engine)
    project.engine.compose_down(volumes, reporter.line)


def status(project: Project, reporter: Reporter | None = None) -> dict:
    check_docker(project.engine)
    secrets.recover(project, reporter or Silent())
    services = project.engine.compose_ps()
    apache_up = any(r["service"] == "apache" and r["state"] == "running" for r in services)  # one ps
    daemons = []
    raw = ""
    figures: dict = {}
    if apache_up:
        raw = bin_status(project)
        daemons = boinc_status.parse(raw)
        figures = server_figures(project)
    https = certificates.show(project) if apache_up and project.settings.serves_https else None
    return {"project": project.settings.project, "master_url": project.settings.master_url,
            "services": services, "daemons": daemons, "bin_status": raw, "metrics": figures, "tls": https}


def server_figures(project: Project) -> dict:
    """What URL_BASE/metrics shows (container/metrics.py), as a dict; {"error"} when the apache
    service cannot tell (an image older than the metrics, a helper that failed)."""
    from boincserver.inproject import jobs_helper
    try:
        return jobs_helper(project, ["metrics"])
    except ProjectError as exc:
        return {"error": str(exc)}


def bin_status(project: Project, wait: float = 20.0) -> str:
    """BOINC's `bin/status -v`; it refuses while bin/start holds its lock, so wait for that."""
    deadline = time.monotonic() + wait
    while True:
        ran = project.engine.exec("apache", ["bin/status", "-v"], user=project.settings.boinc_user,
                                  workdir=project.settings.project_root, check=False)
        out = ran.out.decode(errors="replace")
        if ran.code == 0:
            return out
        if boinc_status.START_RUNNING not in out + ran.err or time.monotonic() > deadline:
            raise DockerError(ran.command, ran.code, ran.err, out)
        time.sleep(1)
