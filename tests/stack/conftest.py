"""The real stack, built and started once per test session.

These tests need a Docker engine with the Compose plugin and the pinned BOINC source (in
boincserver's cache, or named by BOINCSERVER_BOINC_SRC); without them they skip, saying why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from boincserver import boinc_source, images, paths, pins

CLI = [sys.executable, "-m", "boincserver"]


def _skip_reason() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on this machine"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine reachable"
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        return "no Docker Compose v2 plugin"
    if boinc_source.cached() is None and not os.environ.get(boinc_source.ENV_SOURCE):
        return (f"BOINC source not available: put boinc-{pins.BOINC_COMMIT}.tar.gz into "
                f"{paths.boinc_tarball_cache().parent} or set {boinc_source.ENV_SOURCE}")
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    for item in items:
        if "tests/stack/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.stack)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def run_cli(*args, cwd: Path | None = None, env: dict | None = None, check: bool = True,
            timeout: float = 3000) -> subprocess.CompletedProcess:
    done = subprocess.run(CLI + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"boincserver {' '.join(map(str, args))} failed ({done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def compose(project_dir: Path, *args, env: dict | None = None, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", "compose", *args], cwd=project_dir, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=input)
    if check and done.returncode != 0:
        raise AssertionError(f"docker compose {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def apache_sh(project_dir: Path, script: str, user: str | None = None) -> str:
    """A shell script in apache: as its own user (the BOINC user), or as `user`."""
    return compose(project_dir, "exec", "-T", *(["--user", user] if user else []), "apache", "sh", "-c",
                   script).stdout


def sql(project_dir: Path, project: str, statement: str) -> str:
    """A statement run by MariaDB's root through its socket, inside the mysql service."""
    return compose(project_dir, "exec", "-T", "mysql", "mariadb", "-N", "-B", project, "-e", statement).stdout


class Stack:
    def __init__(self, root: Path, project: str, port: int):
        self.dir = root / project
        self.project = project
        self.port = port

    @property
    def local(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def running_project(root: Path, prefix: str, init_args: tuple[str, ...] = ()):
    """A project made with `boincserver init` (and `init_args`) and started with `up`, deleted
    afterwards.

    A name of its own (the pid), so that two sessions on one engine never share containers
    or volumes; its own free port, with the master URL on 127.0.0.1."""
    port = free_port()
    s = Stack(root, f"{prefix}_{os.getpid()}", port)
    run_cli("init", s.dir, "--url-base", f"http://127.0.0.1:{port}", "--http-port", port, *init_args)
    # Volumes an interrupted earlier session left under the same Compose name go first.
    run_cli("down", "--volumes", "--yes", cwd=s.dir, check=False)
    try:
        run_cli("up", cwd=s.dir)
        yield s
    finally:
        run_cli("down", "--volumes", "--yes", cwd=s.dir, check=False)
        # The project's own three images (its name is this session's): shared layers stay.
        tags = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
                               f"boincserver-{s.project}/*"], capture_output=True, text=True).stdout.split()
        if tags:
            subprocess.run(["docker", "image", "rm", *tags], capture_output=True)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The session's shared project."""
    with running_project(tmp_path_factory.mktemp("stack"), "st") as s:
        yield s


# -- apps and jobs: a project of their own, reachable by a client on the host's network ------
CLIENT_DIR = Path(__file__).parent / "client"


@pytest.fixture(scope="session")
def jobs_stack(tmp_path_factory):
    """A project for apps, jobs and the real client: its own name and port, and a master URL
    on 127.0.0.1 (boinc-client refuses a URL whose host has no dot; a client on the host's
    network reaches this one)."""
    with running_project(tmp_path_factory.mktemp("jobs"), "aj") as s:
        yield s


def installed_apps(s: Stack) -> set[str]:
    import json
    return {a["name"] for a in json.loads(run_cli("app", "list", "--json", cwd=s.dir).stdout)}


def ensure_example_app(s: Stack, name: str) -> None:
    """Install an example app once per session (tests in either file may need it first)."""
    if name not in installed_apps(s):
        run_cli("app", "add", name, "--example", name, cwd=s.dir)


def image_of_folder(folder: Path, name: str) -> str:
    """A test image built from `folder` on the pinned base OS image with the classic builder;
    its tag `name-DIGEST` carries the digest of the folder's files, so it is built once."""
    import hashlib
    h = hashlib.sha256(pins.BASE_OS_IMAGE.encode())
    for f in sorted(folder.iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    tag = f"{name}-{h.hexdigest()[:12]}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode != 0:
        from boincserver.engine import Engine
        images.ensure_os_image(Engine(), pins.BASE_OS_IMAGE)
        done = subprocess.run(["docker", "build", "--build-arg", f"BASE_IMAGE={pins.BASE_OS_IMAGE}", "-t", tag,
                               str(folder)], capture_output=True, text=True,
                              env={**os.environ, "DOCKER_BUILDKIT": "0"})
        if done.returncode != 0:
            raise AssertionError(f"building {tag} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return tag


def client_image() -> str:
    """Debian's boinc-client (7.20.5 on bookworm) on the pinned base OS image."""
    return image_of_folder(CLIENT_DIR, "boincserver-test/boinc-client:7.20.5")


class Client:
    """A BOINC client container on the host's network, driven with boinccmd inside it."""

    def __init__(self, name: str, rpc_port: int):
        self.name = name
        self.rpc_port = rpc_port

    def cmd(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["docker", "exec", self.name, "boinccmd", "--host", f"127.0.0.1:{self.rpc_port}",
                               *args], capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"boinccmd {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def log(self) -> str:
        return subprocess.run(["docker", "logs", self.name], capture_output=True, text=True).stdout


@contextlib.contextmanager
def debian_client(stack: Stack, label: str, url: str | None = None, docker_args: tuple[str, ...] = ()):
    """Debian's boinc-client 7.20 attached to `stack` (at `url`, its local URL by default), with
    an account made by boinccmd; `docker_args` go to its `docker run` (hosts, trusted roots).

    This client reports no Docker (7.20 predates Docker apps), so it is also the volunteer
    without Docker of the Docker-app tests."""
    import time
    image = client_image()
    rpc_port = free_port()
    name = f"boincserver-test-client-{label}-{os.getpid()}"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", *docker_args, image,
                    "--gui_rpc_port", str(rpc_port)], check=True, capture_output=True)
    client = Client(name, rpc_port)
    try:
        url = url or f"{stack.local}/{stack.project}/"
        deadline = time.monotonic() + 60
        while "Initialization completed" not in client.log():
            assert time.monotonic() < deadline, client.log()
            time.sleep(1)
        client.cmd("--create_account", url, "volunteer@example.org", "a-password", "volunteer")
        out = client.cmd("--lookup_account", url, "volunteer@example.org", "a-password")
        key = out.split("account key:", 1)[1].split()[0]
        client.cmd("--project_attach", url, key)
        client.url = url
        yield client
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@pytest.fixture(scope="session")
def boinc_client(jobs_stack):
    """A volunteer: account created and attached to the jobs_stack project."""
    with debian_client(jobs_stack, "jobs") as client:
        yield client
