"""`boincserver volunteer`: a BOINC 8.2 client on this machine that runs the project's apps,
Docker apps too, as a Compose project of its own; and the same client for other machines.

One truth: `up` runs PROJECT/volunteer/compose.yaml, rendered from compose/volunteer/ and
identical to the compose.yaml `manifests DIR` writes (with a Kubernetes DaemonSet). What differs
between machines is in the .env beside it: the client's data folder (an absolute path, the same
inside the container and out, because docker_wrapper mounts a task's "./" and the host's engine
resolves it on the host), its GUI RPC port and the project's URL. The account key is a file,
mounted as a secret: never on a command line or in a plain value.

By default the client attaches to this project with the weak key of the project's volunteer
account, made the first time by BOINC's own make_user in the apache service
(container/accounts.py).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import jinja2

from boincserver import __version__, boinc_source, images, inproject, pins, render
from boincserver.boinc import client
from boincserver.context import Project, Reporter, build_lines, check_docker, download_progress
from boincserver.engine import Engine
from boincserver.errors import InvalidInput, ProjectError, ServiceNotRunning
from boincserver.project import port_is_free

FOLDER = "volunteer"  # in the project folder
DATA = "data"  # in FOLDER: the client's data folder
KEY_FILE = "account-key"  # in FOLDER (0600), and the Secret's key on Kubernetes
SERVICE = "client"
STATUS = ["boincserver-volunteer", "status"]
# Where the container finds the key: Compose's secret and Kubernetes' Secret volume alike.
KEY_DIR = "/run/secrets/boincserver"
TEMPLATES = {"compose": "volunteer/compose.yaml.j2", "env": "volunteer/env.j2",
             "daemonset": "volunteer/daemonset.yaml.j2", "readme": "volunteer/README.md.j2"}
# The client's data folder on other machines (Compose elsewhere, each Kubernetes node).
OTHER_MACHINES_DATA = "/var/lib/{name}"
ADVICE_NO_DOCKER = ("the client checks Docker once, when it starts: make `docker run --rm hello-world` "
                    "work on this machine (`boincserver volunteer up` builds that image), then "
                    "`boincserver volunteer down && boincserver volunteer up`")


def compose_name(project: Project) -> str:
    return f"{project.settings.compose_name}-volunteer"


def kubernetes_name(project: Project) -> str:
    """compose_name as a Kubernetes object's name (DNS-1123: no "_")."""
    return compose_name(project).replace("_", "-")


def folder(project: Project) -> Path:
    return project.dir / FOLDER


def engine_of(project: Project) -> Engine:
    """The engine bound to the volunteer's own Compose project."""
    return project.engine.compose_project(folder(project), compose_name(project))


def leftover_prefix(project_folder_name: str) -> str:
    """What the names docker_wrapper gives a project's images and containers start with (lib/util.cpp
    docker_image_name: boinc__<the project's folder, its escaped URL>__<WU or result>, in lowercase)."""
    return f"boinc__{project_folder_name.lower()}__"


# -- what is written ---------------------------------------------------------------------------
def _render(template: str, **values) -> str:
    try:
        return render.environment().get_template(TEMPLATES[template]).render(
            version=__version__, client_version=pins.CLIENT_VERSION, service=SERVICE, key_file=KEY_FILE,
            key_dir=KEY_DIR, key_path=f"{KEY_DIR}/{KEY_FILE}", **values)
    except jinja2.UndefinedError as exc:  # a template bug, not a user's: say which value
        raise RuntimeError(f"template value missing: {exc}") from exc


def compose_file(project: Project) -> str:
    """The one compose.yaml of the volunteer: what `up` runs and `manifests` writes."""
    return _render("compose", project=project.settings.project, compose_name=compose_name(project),
                   image=pins.volunteer_image())


def env_file(data_dir: str, gui_rpc_port: int, url: str) -> str:
    return _render("env", data_dir=data_dir, gui_rpc_port=gui_rpc_port, project_url=url)


def _write(path: Path, text: str, mode: int | None = None) -> render.Written:
    """Write `text` to `path` in one step unless it holds it already; created, changed or identical."""
    state = "created"
    if path.exists():
        if path.read_text() == text and (mode is None or path.stat().st_mode & 0o777 == mode):
            return render.Written(path, "identical")
        state = "changed"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.touch(mode=0o600 if mode is not None else 0o644)  # a key is never readable by others, not even briefly
    tmp.write_text(text)
    if mode is not None:
        tmp.chmod(mode)
    tmp.replace(path)
    return render.Written(path, state)


def _env_value(env_text: str, name: str) -> str | None:
    found = re.search(rf"^{name}=(.*)$", env_text, re.M)
    return found.group(1).strip() if found else None


def _gui_rpc_port(env_path: Path) -> int:
    """The port chosen at the first `up`, kept; else BOINC's default if free, else a free one."""
    if env_path.is_file():
        kept = _env_value(env_path.read_text(), "BOINC_GUI_RPC_PORT")
        if kept and kept.isdigit():
            return int(kept)
    port = client.DEFAULT_GUI_RPC_PORT
    while not port_is_free(port):
        port += 1
    return port


def write_folder(project: Project, url: str, key: str) -> list[render.Written]:
    """PROJECT/volunteer/: compose.yaml, .env, the key (0600), the data folder, a .gitignore."""
    where = folder(project)
    data_dir = where / DATA
    written = [
        _write(where / ".gitignore", "# The volunteer's files: its key and its client's data stay on this machine.\n*\n"),
        _write(where / "compose.yaml", compose_file(project)),
        _write(where / ".env", env_file(str(data_dir), _gui_rpc_port(where / ".env"), url)),
        _write(where / KEY_FILE, key + "\n", mode=0o600),
    ]
    if not data_dir.is_dir():
        data_dir.mkdir(parents=True)
        written.append(render.Written(data_dir, "created"))
    return written


# -- what it attaches to ----------------------------------------------------------------------
def check_url(url: str) -> str:
    """A project URL given with --attach, as the client would take it. (This project's own master
    URL always passes: its settings refuse what the client would.)"""
    try:
        return client.check_master_url(url)
    except client.ClientError as exc:
        raise InvalidInput(f"{exc}; nothing was started",
                           advice="give the project's master URL as its home page says, "
                                  "e.g. --attach https://boinc.example.org/project/") from None


def read_key(key_file: Path) -> str:
    try:
        key = key_file.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the account key file {key_file} cannot be read "
                           f"({getattr(exc, 'strerror', None) or exc}); nothing was started") from None
    try:
        return client.check_account_key(key)
    except client.ClientError as exc:  # the key itself is never shown
        raise InvalidInput(f"{key_file}: {exc}; nothing was started") from None


def volunteer_account(project: Project) -> dict:
    """The project's volunteer account, made the first time: {"user_id", "weak_key", "created", ...}."""
    return inproject.jobs_helper(project, ["volunteer-account"])


# -- up ------------------------------------------------------------------------------------------
@dataclass
class UpResult:
    url: str
    data_dir: Path
    changed: bool
    built: list[str] = field(default_factory=list)
    written: list[render.Written] = field(default_factory=list)
    state: dict = field(default_factory=dict)  # boincserver-volunteer status
    account: dict | None = None  # this project's volunteer account, without its key
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (problem, fix)
    seconds: float = 0.0


def up(project: Project, reporter: Reporter, attach: str | None = None, account_key_file: Path | None = None,
       timeout: float = 180.0, client_src: str | None = None) -> UpResult:
    """Start (or keep) the client attached to `attach` (default: this project) and wait until it
    answers; nothing is started when the URL or the key is refused."""
    started = time.monotonic()
    if attach and account_key_file is None:
        raise InvalidInput("--attach needs the account key of that project: --account-key-file FILE "
                           "(the weak account key from the project's web site, page weak_auth.php); "
                           "nothing was started")
    url = check_url(attach) if attach else project.settings.master_url
    key = read_key(account_key_file) if account_key_file else None
    check_docker(project.engine)
    account = None
    if key is None:
        reporter.step("the project's volunteer account (made the first time)")
        answer = volunteer_account(project)
        key = answer.pop("weak_key")
        account = answer
    engine = engine_of(project)
    was_running = (folder(project) / "compose.yaml").is_file() and running(engine)
    built = images.ensure_volunteer_images(
        project.engine, lambda: boinc_source.resolve_client(client_src, on_progress=download_progress(reporter, "the BOINC client's source")),
        build_lines(reporter), reporter.step)
    written = write_folder(project, url, key)
    reporter.step(f"starting the volunteer's client ({pins.volunteer_image()})")
    engine.compose_up([SERVICE], reporter.line)
    state = wait_until_answering(engine, url, reporter, timeout)
    changed = bool(built) or not was_running or any(w.state != "identical" for w in written)
    warnings = []
    if not state.get("docker"):
        problem = state.get("docker_problem") or "the client found no Docker"
        warnings.append((f"{problem}: it will get native jobs, no Docker jobs", ADVICE_NO_DOCKER))
    return UpResult(url, folder(project) / DATA, changed, built, written, state, account, warnings,
                    time.monotonic() - started)


def client_state(engine: Engine) -> dict | None:
    """What boincserver-volunteer status says; None if the client is not running. Raises
    ProjectError when the container runs but the client does not answer (yet)."""
    try:
        ran = engine.exec(SERVICE, STATUS, check=False)
    except ServiceNotRunning:
        return None
    if ran.code != 0:
        raise ProjectError(f"the volunteer's client does not answer (exit {ran.code}): {ran.err.strip()[-500:]}",
                           advice="wait a few seconds; its log: `docker compose -f volunteer/compose.yaml logs` "
                                  "in the project folder")
    return json.loads(ran.out.decode())


def running(engine: Engine) -> bool:
    try:
        return client_state(engine) is not None
    except ProjectError:  # running, not answering yet
        return True


def _attached(state: dict, url: str) -> bool:
    return any(client.canonical_master_url(p.get("url") or "x") == client.canonical_master_url(url)
               for p in state.get("projects") or [])


def wait_until_answering(engine: Engine, url: str, reporter: Reporter, timeout: float) -> dict:
    """Until the client answers and lists the project `url`; its status."""
    started = time.monotonic()
    shown = started
    while True:
        try:
            state = client_state(engine)
            if state is None:
                why = "its container is not running"
            elif not state.get("client"):
                why = "it has not said its version yet"
            elif not _attached(state, url):
                why = f"it does not list {url} yet"
            else:
                return state
        except ProjectError as exc:
            why = str(exc)
        now = time.monotonic()
        if now - started >= timeout:
            raise ProjectError(f"the volunteer's client was not ready in {timeout:.0f}s: {why}",
                               advice="see its log: `docker compose -f volunteer/compose.yaml logs` "
                                      "in the project folder")
        if now - shown >= 10:
            shown = now
            reporter.step(f"waiting for the client ({now - started:.0f}s): {why}")
        time.sleep(1)


# -- status and down -------------------------------------------------------------------------------
def status(project: Project) -> dict:
    """boincserver-volunteer status of the running client."""
    check_docker(project.engine)
    state = client_state(engine_of(project)) if (folder(project) / "compose.yaml").is_file() else None
    if state is None:
        raise ProjectError("this project's volunteer is not running",
                           advice="start it with `boincserver volunteer up`")
    return state


def _started_folder(project: Project) -> Path:
    where = folder(project)
    if not (where / "compose.yaml").is_file():
        raise ProjectError("this project's volunteer was never started here",
                           advice="start it with `boincserver volunteer up`")
    return where


def update(project: Project) -> list[str]:
    """Ask the client to contact each of its projects now, e.g. after an app was added (a project
    with no app for the client's platform tells it to come back in a day); the projects' URLs."""
    env = (_started_folder(project) / ".env").read_text()
    state = status(project)
    urls = [p["url"] for p in state.get("projects") or []]
    for url in urls:
        # boinccmd reads the client's GUI RPC password from its working folder.
        engine_of(project).exec(SERVICE, ["boinccmd", "--host", f"127.0.0.1:{_env_value(env, 'BOINC_GUI_RPC_PORT')}",
                                          "--project", url, "update"], workdir=_env_value(env, "BOINC_DATA_DIR"))
    return urls


def logs(project: Project, follow: bool = False, tail: str | None = None) -> int:
    """The client's log (its event log) to this terminal; the exit code of `docker compose logs`."""
    _started_folder(project)
    return engine_of(project).compose_logs([SERVICE], follow, tail)


@dataclass
class DownResult:
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)
    stopped: bool = False


def attached_project_folders(project: Project) -> set[str]:
    """The folder names (escaped URLs) of the projects the client was attached to: from its
    account files, and the .env's URL (the client may have stopped before writing its file)."""
    where = folder(project)
    names = {p.name[len("account_"):-len(".xml")] for p in (where / DATA).glob("account_*.xml")}
    env = where / ".env"
    url = _env_value(env.read_text(), "BOINC_PROJECT_URL") if env.is_file() else None
    if url:
        names.add(client.escape_project_url(url))
    return names


def down(project: Project, reporter: Reporter, delete_data: bool = False) -> DownResult:
    """Stop the client, then remove what docker_wrapper left on the engine for its projects
    (containers it paused when the client stopped, their images); the data folder and the key
    are kept unless delete_data."""
    check_docker(project.engine)
    result = DownResult()
    where = folder(project)
    if (where / "compose.yaml").is_file():
        engine = engine_of(project)
        engine.compose_down(False, reporter.line)
        engine.remove_default_network()
        result.stopped = True
    # Another client on this engine attached to the same project would lose its containers too:
    # their names say the project, not the client.
    for name in sorted(attached_project_folders(project)):
        prefix = leftover_prefix(name)
        containers = project.engine.containers_named(prefix)
        project.engine.remove_containers(containers)
        images_left = project.engine.images_named(prefix)
        project.engine.remove_images(images_left)
        result.containers += containers
        result.images += images_left
    if delete_data and where.exists():
        data_dir = where / DATA
        if data_dir.is_dir():
            # The client wrote them as root: deleted by root, in a container of its image.
            project.engine.run(["find", data_dir, "-mindepth", "1", "-delete"], image=pins.volunteer_image(),
                               network="none", volumes=[(str(data_dir), str(data_dir), "rw")])
        shutil.rmtree(where)
        result.deleted.append(where)
    return result


# -- manifests ---------------------------------------------------------------------------------------
def manifests(project: Project, directory: Path) -> list[render.Written]:
    """The volunteer for other machines, in `directory`: compose.yaml (the one `up` runs), its
    .env, a Kubernetes DaemonSet and a README saying how to load the image and make the Secret."""
    url = project.settings.master_url
    name = kubernetes_name(project)
    data_dir = OTHER_MACHINES_DATA.format(name=name)
    values = dict(project=project.settings.project, name=name, image=pins.volunteer_image(), data_dir=data_dir,
                  gui_rpc_port=client.DEFAULT_GUI_RPC_PORT, project_url=url, secret=f"{name}-account-key")
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    directory = directory.absolute()
    return [
        _write(directory / "compose.yaml", compose_file(project)),
        _write(directory / ".env", env_file(data_dir, client.DEFAULT_GUI_RPC_PORT, url)),
        _write(directory / "daemonset.yaml", _render("daemonset", **values)),
        _write(directory / "README.md", _render("readme", loopback=host.startswith("127.") or host == "[::1]",
                                                **values)),
    ]
