"""`build --tag --push` to a real registry, then a fresh `up` that pulls the images back.

The registry is Debian's `docker-registry` package (distribution 2.8), started here on the
loopback (Docker pushes to 127.0.0.0/8 over plain HTTP without configuration) with its
storage in the test's temporary folder, and stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from boincserver import __version__, pins
from boincserver.project import SERVICES

from .conftest import free_port, run_cli

REGISTRY_BIN = "/usr/bin/docker-registry"


def _ensure_registry_installed() -> None:
    if Path(REGISTRY_BIN).exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("Debian's docker-registry is not installed (as root: apt-get install -y docker-registry)")
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "docker-registry"], capture_output=True, text=True,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if done.returncode != 0 or not Path(REGISTRY_BIN).exists():
        pytest.skip(f"apt-get install docker-registry failed: {done.stderr.strip()[-300:]}")


@contextlib.contextmanager
def serve_registry(folder: Path, listen_ip: str, port: int) -> Iterator[str]:
    """Debian's docker-registry on listen_ip:port, its storage in `folder`, until the block
    ends; yields "listen_ip:port" once it answers."""
    _ensure_registry_installed()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "registry.yml"
    config.write_text(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {folder / 'storage'}
  delete:
    enabled: true
http:
  addr: {listen_ip}:{port}
""")
    log_path = folder / "registry.log"
    address = f"{listen_ip}:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                assert proc.poll() is None, f"the registry exited:\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"the registry did not answer in 30 s:\n{log_path.read_text()}"
                time.sleep(0.3)
            yield address, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def registry(tmp_path):
    """host:port of a registry of our own on the loopback."""
    with serve_registry(tmp_path / "registry", "127.0.0.1", free_port()) as (address, _):
        yield address


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _labels(tag: str) -> dict:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_push_delete_and_pull_back_on_up(tmp_path, registry):
    port = free_port()
    name = f"rg_{os.getpid()}"
    pdir = tmp_path / name
    where = f"{registry}/ci"
    run_cli("init", pdir, "--url-base", f"http://127.0.0.1:{port}", "--http-port", port, "--registry", where)
    _git(pdir, "init", "-q", "-b", "main")
    # A remote with credentials in it: the label must show the URL without them.
    _git(pdir, "remote", "add", "origin", "https://bot:s3cr3t-token@example.org/acme/boinc-project.git")
    _git(pdir, "add", "-A")
    _git(pdir, "commit", "-q", "-m", "project")
    head = _git(pdir, "rev-parse", "HEAD")
    compose_name = f"boincserver-{name}"
    local = {s: f"{compose_name}/{s}:{__version__}" for s in SERVICES}
    made: list[str] = list(local.values())
    run_cli("down", "--volumes", "--yes", cwd=pdir, check=False)
    try:
        first = json.loads(run_cli("build", "--json", cwd=pdir).stdout)
        # A change, then its revert: built again from the same inputs, the same image ids (the
        # build cache holds every step; see the README for when it does not).
        readme = pdir / "apps" / "README.md"
        text = readme.read_text()
        readme.write_text(text + "a change\n")
        changed = json.loads(run_cli("build", "--json", cwd=pdir).stdout)
        assert changed["project_built"] == list(SERVICES) and changed["base_built"] == []
        readme.write_text(text)
        again = json.loads(run_cli("build", "--json", cwd=pdir).stdout)
        assert again["project_built"] == list(SERVICES)
        assert {s: again["images"][s]["id"] for s in SERVICES} == {s: first["images"][s]["id"] for s in SERVICES}

        for service in SERVICES:
            labels = _labels(local[service])
            assert labels["org.opencontainers.image.revision"] == head
            assert labels["org.opencontainers.image.source"] == "https://example.org/acme/boinc-project"
            assert labels["org.opencontainers.image.version"] == __version__
            assert labels["org.boincserver.boinc-commit"] == pins.BOINC_COMMIT
            assert "s3cr3t" not in json.dumps(labels)

        pushed = json.loads(run_cli("build", "--tag", "ci-1", "--tag", "main", "--push", "--json", cwd=pdir).stdout)
        made += [ref for s in SERVICES for ref in pushed["images"][s]["tags"]]
        assert pushed["project_built"] == []  # nothing changed: pushing rebuilds nothing
        catalog = _get_json(f"http://{registry}/v2/_catalog")["repositories"]
        for service in SERVICES:
            repo = f"ci/{compose_name}/{service}"
            assert repo in catalog
            tags = set(_get_json(f"http://{registry}/v2/{repo}/tags/list")["tags"])
            assert {"ci-1", "main"} <= tags
            assert any(t.startswith(f"{__version__}-in") for t in tags)
            assert "latest" not in tags

        ids = {s: pushed["images"][s]["id"] for s in SERVICES}
        # This machine forgets the project's images; `up` must get them from the registry.
        for service in SERVICES:
            for ref in [local[service]] + pushed["images"][service]["tags"]:
                subprocess.run(["docker", "image", "rm", ref], capture_output=True)
            assert subprocess.run(["docker", "image", "inspect", local[service]],
                                  capture_output=True).returncode != 0
        up = run_cli("up", "--json", cwd=pdir)
        assert "looking for" in up.stderr and "building " not in up.stderr, up.stderr
        for service in SERVICES:
            got = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", local[service]],
                                 capture_output=True, text=True, check=True).stdout.strip()
            assert got == ids[service]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}/", timeout=10) as resp:
            assert resp.status == 200

        refused = run_cli("build", "--tag", "latest", cwd=pdir, check=False)
        assert refused.returncode == 1 and "latest" in refused.stderr
    finally:
        run_cli("down", "--volumes", "--yes", cwd=pdir, check=False)
        for ref in made:
            subprocess.run(["docker", "image", "rm", ref], capture_output=True)
