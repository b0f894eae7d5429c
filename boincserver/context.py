"""What every use case shares: the loaded project, the reporter, and the steps they all take.

The use cases (project, apps, jobs, secrets, backup, upgrade) import this module; it imports
none of them, so none has to import another lazily to dodge a cycle. The engine comes with
the Project: tests give a recording one (tests/fakes.py), the CLI the real one.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from boincserver import __version__, pins
from boincserver.boinc import releases
from boincserver.engine import Engine
from boincserver.errors import DockerError, ProjectError
from boincserver.settings import Settings, load

# The record the makeproject job writes on the project volume when it creates the project.
CREATED_RECORD = releases.CREATED_RECORD
READ_ONE_FILE = 'test -f "$0" && exec cat "$0"; exit 3'  # exit 3: no such file


class Reporter(Protocol):
    """Where a use case tells its progress: steps, and the lines of long work."""

    def step(self, message: str) -> None: ...
    def line(self, text: str) -> None: ...


def build_lines(reporter: Reporter) -> Callable[[str], None]:
    """Where a Docker build's lines go: the reporter's build_line (a progress display and a
    log file, as the CLI's console has) or, for a reporter without one, its line."""
    return getattr(reporter, "build_line", reporter.line)


class Silent:
    def step(self, message: str) -> None:
        pass

    def line(self, text: str) -> None:
        pass


@dataclass
class Project:
    """A loaded project folder with the engine bound to its Compose project."""

    dir: Path
    settings: Settings
    engine: Engine

    def volume(self, name: str) -> str:
        return f"{self.settings.compose_name}_{name}"

    def image(self, service: str) -> str:
        return f"{self.settings.compose_name}/{service}:{__version__}"


def open_project(project_dir: Path, engine_factory: Callable[[Path, str], Engine]) -> Project:
    settings = load(project_dir)
    engine = engine_factory(project_dir.absolute(), settings.compose_name)
    if settings.deploy == "swarm":
        # Commands in the services go to the nodes; Compose here would act on an empty
        # project of this machine, not on the stack, so its own commands refuse.
        engine.bind_stack(settings.compose_name, settings.swarm_manager or None, settings.swarm_nodes)
        engine.compose_refusal = on_swarm_refusal(settings)
    return Project(project_dir.absolute(), settings, engine)


def on_swarm_refusal(settings: Settings) -> ProjectError:
    return ProjectError(
        f"project {settings.project!r} is deployed on Docker Swarm (deploy = \"swarm\" in boincserver.toml), "
        "and this command works on a project Compose runs on one machine; nothing was changed",
        advice="on Swarm use `boincserver up --swarm`, `status` and `down --swarm`; back up the database "
               "on its node (mariadb-dump) and the swarm_storage folder. `up --compose` starts a "
               "separate project on this machine, with its own volumes")


def require_compose(project: Project) -> None:
    """Refuse, before anything, a use case that works on Compose's volumes when the project is
    deployed on Swarm (its volumes are on the nodes)."""
    if project.settings.deploy == "swarm":
        raise on_swarm_refusal(project.settings)


def download_progress(reporter: Reporter, what: str) -> Callable[[int, int | None], None]:
    """A download's progress as steps, one each 5 MiB: "downloading WHAT: 10 of 45 MiB"."""
    last = [0]

    def show(done: int, total: int | None) -> None:
        if done - last[0] >= 5 << 20 or (total and done == total):
            last[0] = done
            of = f" of {total >> 20} MiB" if total else ""
            reporter.step(f"downloading {what}: {done >> 20} MiB{of}")
    return show


def check_docker(engine: Engine) -> None:
    engine.check_engine()
    engine.check_compose()


def service_running(project: Project, service: str) -> bool:
    return any(r["service"] == service and r["state"] == "running" for r in project.engine.compose_ps())


# -- files of images and volumes -------------------------------------------------------------
def read_file(project: Project, image: str, path: str, volume: str | None = None) -> bytes | None:
    """A file of an image, or of a volume (path relative to it) read with that image; None if absent."""
    where = f"/v/{path}" if volume else path
    ran = project.engine.run(["-c", READ_ONE_FILE, where], image=image, entrypoint="sh", network="none",
                             volumes=[(volume, "/v", "ro")] if volume else [], check=False)
    if ran.code == 3:
        return None
    if ran.code != 0:
        raise DockerError(ran.command, ran.code, ran.err)
    return ran.out


def volume_reader(project: Project) -> str | None:
    """An image present here that has `sh` and `cat`, to read a file of a volume."""
    for image in (pins.BASE_OS_IMAGE, project.image("makeproject"),
                  pins.base_image("mysql", project.settings.release.version)):
        if project.engine.image_labels(image) is not None:
            return image
    return None


def read_volume_file(project: Project, volume: str, path: str) -> bytes | None:
    """A file of one of the project's volumes; None if it, the volume or an image to read with is absent."""
    if not project.engine.volume_exists(project.volume(volume)):
        return None
    reader = volume_reader(project)
    if reader is None:  # no image here yet to read with: up builds or pulls, the job checks
        return None
    return read_file(project, reader, path, volume=project.volume(volume))


def created_record(project: Project) -> dict | None:
    """What the project was created with, read from its volume; None before creation."""
    data = read_volume_file(project, "project", CREATED_RECORD)
    return json.loads(data) if data else None


# -- waiting until the project serves -------------------------------------------------------
def http_get(url: str, host_header: str | None, timeout: float = 5.0) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Host": host_header} if host_header else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(200_000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


def wait_until_serving(settings: Settings, timeout: float = 120.0) -> None:
    """Until the home page and the scheduler answer through the published HTTP port (by IP
    when Apache serves HTTPS: requests for the URL's host are redirected there)."""
    host = None if settings.serves_https else settings.url_base.split("://", 1)[1]
    base = f"http://127.0.0.1:{settings.http_port}"
    deadline = time.monotonic() + timeout
    home = sched = (0, "")
    while time.monotonic() < deadline:
        home = http_get(f"{base}/{settings.project}/", host)
        sched = http_get(f"{base}/{settings.project}_cgi/cgi", host)
        # Right after a restart the scheduler says <project_is_down/> until bin/start has
        # removed the stop file bin/stop left; the project serves only after that.
        if home[0] == 200 and sched[0] == 200 and "<project_is_down/>" not in sched[1]:
            return
        time.sleep(1)
    raise ProjectError(
        f"the server did not answer in {timeout:.0f}s (home page HTTP {home[0]}, scheduler HTTP {sched[0]})",
        advice="see `boincserver logs apache` and `boincserver status`")


MD_STATUS = "http://127.0.0.1/.boincserver/md-status/"


def certificate_state(project: Project, settings: Settings):
    """mod_md's word on the URL's certificate (tls.CertificateState); None if it says nothing."""
    from boincserver import tls
    if settings.tls != "acme":
        return None
    ran = project.engine.exec("apache", ["curl", "-fsS", MD_STATUS + settings.host], check=False)
    try:
        return tls.certificate_state(json.loads(ran.out), settings.acme_directory) if ran.code == 0 else None
    except ValueError:
        return None


def wait_until_certified(project: Project, settings: Settings, reporter: Reporter, timeout: float = 180.0,
                         serial: str | None = None) -> None:
    """Until Apache serves the URL's certificate (that of `serial`, if given) on its HTTPS port;
    an ACME CA's refusal, as mod_md reports it, ends the wait with what to do about it."""
    from boincserver import tls
    if settings.tls == "acme":
        reporter.step(f"waiting for a certificate for {settings.host} from {settings.acme_directory}")
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = certificate_state(project, settings)
        if settings.tls != "acme" or (state and state.ready):
            served = tls.served_certificate("127.0.0.1", settings.published_https_port, settings.host)
            wanted = serial or (state.serial if state else None)
            if served and (wanted is None or served.serial.lstrip("0").upper() == wanted.lstrip("0").upper()):
                return
        elif state and state.errors >= 2 and state.problem:
            # mod_md retries by itself (MDRetryDelay: 5 s, doubling); two refusals are an answer.
            break
        time.sleep(2)
    if state and state.problem:
        raise ProjectError(f"no certificate for {settings.host}: {state.problem}", advice=state.advice)
    raise ProjectError(f"Apache served no certificate for {settings.host} on port "
                       f"{settings.published_https_port} within {timeout:.0f}s",
                       advice="see `boincserver logs apache` and `boincserver status`")


def restart_apache(project: Project, reporter: Reporter, why: str) -> None:
    """Restart a running apache (the daemons and Apache's mounts then see new files) and wait."""
    if service_running(project, "apache"):
        reporter.step(f"restarting apache {why}")
        project.engine.compose_restart(["apache"], reporter.line)
        wait_until_serving(project.settings)
