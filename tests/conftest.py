"""Shared fixtures: every test runs with its own cache, no network and no Docker."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated(request, tmp_path_factory, monkeypatch):
    """A private BOINC cache, no BOINC source from the environment, no network, no Docker.

    Not for tests/stack/, which use the real cache, network on loopback and Docker.
    """
    if "stack" in request.node.path.parts:
        return None
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("BOINCSERVER_CACHE", str(cache))
    monkeypatch.delenv("BOINCSERVER_BOINC_SRC", raising=False)
    monkeypatch.delenv("BOINCSERVER_CLIENT_SRC", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("a unit test tried to use the network")

    import urllib.request

    from boincserver import boinc_source, engine

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(boinc_source.urllib.request, "urlopen", no_network)

    def no_docker(*args, **kwargs):
        raise AssertionError("a unit test tried to talk to Docker")

    monkeypatch.setattr(engine.Engine, "__init__", no_docker)
    return cache


def write_tarball(path: Path, commit: str | None = None, *, top: str = "boinc-src",
                  files: dict[str, bytes] | None = None, compress: bool = True,
                  dir_entry: bool = True, fmt: int = tarfile.PAX_FORMAT,
                  member_pax: dict[str, str] | None = None) -> Path:
    """A small tarball shaped like `git archive` output, with `commit` in its pax global header."""
    files = {"README": b"BOINC\n", "sched/main.cpp": b"int main() {}\n"} if files is None else files
    kwargs = {"format": fmt}
    if commit is not None:
        kwargs["pax_headers"] = {"comment": commit}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if compress else "w", **kwargs) as tar:
        if dir_entry and top:
            info = tarfile.TarInfo(top + "/")
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            info.mode = 0o644
            if member_pax:
                info.pax_headers = dict(member_pax)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def make_tarball():
    return write_tarball


GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@localhost",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@localhost",
}


@pytest.fixture
def git_repo(tmp_path):
    """A fresh git checkout with one commit; returns (folder, commit id)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    folder = tmp_path / "checkout"
    folder.mkdir()
    env = dict(os.environ, **GIT_ENV)

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True,
                              text=True, env=env).stdout.strip()

    git("init", "-q")
    (folder / "README").write_text("not BOINC\n")
    git("add", "README")
    git("-c", "commit.gpgsign=false", "commit", "-q", "-m", "one commit")
    return folder, git("rev-parse", "HEAD")


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under `folder` (relative path -> bytes, None for folders), hidden ones too."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = None if p.is_dir() else p.read_bytes()
    return out


@pytest.fixture
def take_snapshot():
    return snapshot
