"""The real stack, built and started once per test session.

These tests need a Docker engine with the Compose plugin and the pinned BOINC source (in
boincserver's cache, or named by BOINCSERVER_BOINC_SRC); without them they skip, saying why.
"""

from __future__ import annotations

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


def apache_sh(project_dir: Path, script: str) -> str:
    return compose(project_dir, "exec", "-T", "apache", "sh", "-c", script).stdout


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


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """A project created and started with `boincserver init` and `boincserver up`."""
    port = free_port()
    # A name of its own, so that two sessions on one engine never share containers or volumes.
    s = Stack(tmp_path_factory.mktemp("stack"), f"st_{os.getpid()}", port)
    run_cli("init", s.dir, "--url-base", f"http://127.0.0.1:{port}", "--http-port", port)
    # Volumes an interrupted earlier session left under the same Compose name go first.
    run_cli("down", "--volumes", "--yes", cwd=s.dir, check=False)
    try:
        run_cli("up", cwd=s.dir)
        yield s
    finally:
        run_cli("down", "--volumes", "--yes", cwd=s.dir, check=False)
