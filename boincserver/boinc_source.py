"""Finding a pinned BOINC source: a given folder or tarball, the cache, or a download.

Two commits are pinned: the server's (resolve) and the volunteer client's (resolve_client). Whatever
the way, the result is a tarball in the cache whose pax header names the pinned commit, so every
build compiles exactly that release.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from boincserver import paths, pins
from boincserver.boinc.source import tarball_commit
from boincserver.errors import SourceError

ENV_SOURCE = "BOINCSERVER_BOINC_SRC"
ENV_CLIENT_SOURCE = "BOINCSERVER_CLIENT_SRC"


@dataclass(frozen=True)
class PinnedSource:
    """One pinned BOINC commit and how a user hands its source over."""

    release: str
    commit: str
    env_var: str
    option: str  # the command-line option that takes a folder or tarball
    fetcher: str  # the command that downloads it when it may

    def expected(self) -> str:
        return f"BOINC {self.release} (commit {self.commit})"

    def cache(self) -> Path:
        return paths.boinc_tarball_cache(self.commit)


# Functions, not constants: the pins are read when used (tests change them).
def server_source(release: pins.ServerRelease | None = None) -> PinnedSource:
    """The server's source at `release` (the pinned one unless told)."""
    release = release or pins.server_release()
    return PinnedSource(release.tag, release.commit, ENV_SOURCE, "--boinc-src", "`boincserver build`")


def client_source() -> PinnedSource:
    return PinnedSource(pins.CLIENT_RELEASE, pins.CLIENT_COMMIT, ENV_CLIENT_SOURCE, "--client-src",
                        "`boincserver volunteer up`")


def expected() -> str:
    return server_source().expected()


def _verify_tarball(path: Path, pin: PinnedSource) -> None:
    try:
        commit = tarball_commit(path)
    except (OSError, EOFError, Exception) as exc:  # tarfile raises several types
        raise SourceError(f"{path} is not a readable tarball ({exc}); expected {pin.expected()}") from None
    if commit is None:
        raise SourceError(
            f"{path} carries no commit id (no pax header): cannot check it is {pin.expected()}; use a "
            f"tarball made by GitHub's archive download or `git archive {pin.commit}`")
    if commit != pin.commit:
        raise SourceError(f"{path} is BOINC commit {commit}, not the pinned {pin.expected()}")


def _install(tarball: Path, cache: Path) -> Path:
    """Copy a verified tarball into the cache atomically."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    if tarball.resolve() == cache.resolve():
        return cache
    tmp = cache.with_name(cache.name + ".part")
    shutil.copyfile(tarball, tmp)
    tmp.replace(cache)
    return cache


def _from_git_checkout(folder: Path, cache: Path, pin: PinnedSource) -> Path:
    if not (folder / ".git").exists() and not (folder / "HEAD").is_file():
        raise SourceError(
            f"{folder} is not a git checkout of BOINC, so it cannot be checked to be {pin.expected()}; "
            f"pass a git checkout, or the release tarball (boinc-{pin.commit}.tar.gz)")
    has = subprocess.run(["git", "-C", str(folder), "cat-file", "-e", f"{pin.commit}^{{commit}}"],
                         capture_output=True)
    if has.returncode != 0:
        raise SourceError(f"{folder} does not contain {pin.expected()}; `git fetch --tags` there, or pass the tarball")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".part")
    made = subprocess.run(["git", "-C", str(folder), "archive", "--format=tar.gz",
                           f"--prefix=boinc-{pin.commit}/", "-o", str(tmp), pin.commit],
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise SourceError(f"`git archive` in {folder} failed: {made.stderr.strip()}")
    tmp.replace(cache)
    return cache


def _download(cache: Path, on_progress: Callable[[int, int | None], None], pin: PinnedSource) -> Path:
    url = pins.BOINC_ARCHIVE_URL.format(commit=pin.commit)
    cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, \
                tempfile.NamedTemporaryFile(dir=cache.parent, delete=False, suffix=".part") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            done = 0
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                on_progress(done, total)
    except (urllib.error.URLError, OSError) as exc:
        raise SourceError(
            f"cannot download {pin.expected()} from {url} ({exc})",
            advice=(f"offline, pass the source with {pin.option} DIR|TARBALL (or set {pin.env_var}), "
                    f"or put boinc-{pin.commit}.tar.gz into {cache.parent}")) from None
    part = Path(out.name)
    try:
        _verify_tarball(part, pin)
    except SourceError:
        part.unlink(missing_ok=True)
        raise
    part.replace(cache)
    return cache


def cached(pin: PinnedSource | None = None) -> Path | None:
    """The cached tarball (of the server's pin unless told) if it is there (verified on use, not here)."""
    cache = (pin or server_source()).cache()
    return cache if cache.is_file() else None


def resolve_pinned(pin: PinnedSource, given: str | os.PathLike | None = None, *, download: bool = True,
                   on_progress: Callable[[int, int | None], None] = lambda d, t: None) -> Path:
    """The verified tarball of `pin`'s commit, from the first place that has it: the folder or
    tarball given (else the one its environment variable names), the cache, a download."""
    cache = pin.cache()
    given = given or os.environ.get(pin.env_var)
    if given:
        path = Path(given).expanduser()
        if path.is_dir():
            return _from_git_checkout(path, cache, pin)
        if path.is_file():
            _verify_tarball(path, pin)
            return _install(path, cache)
        raise SourceError(f"BOINC source {path} does not exist; expected a folder or a tarball of {pin.expected()}")
    if cache.is_file():
        _verify_tarball(cache, pin)
        return cache
    if not download:
        raise SourceError(f"{pin.expected()} is not in the cache ({cache})",
                          advice=f"pass {pin.option} DIR|TARBALL, or let {pin.fetcher} download it")
    return _download(cache, on_progress, pin)


def resolve(boinc_src: str | os.PathLike | None = None, *, download: bool = True,
            on_progress: Callable[[int, int | None], None] = lambda d, t: None,
            release: pins.ServerRelease | None = None) -> Path:
    """The verified tarball of the BOINC server commit of `release` (the pinned one unless told)."""
    return resolve_pinned(server_source(release), boinc_src, download=download, on_progress=on_progress)


def resolve_client(client_src: str | os.PathLike | None = None, *, download: bool = True,
                   on_progress: Callable[[int, int | None], None] = lambda d, t: None) -> Path:
    """The verified tarball of the pinned BOINC client commit (the volunteer image's source)."""
    return resolve_pinned(client_source(), client_src, download=download, on_progress=on_progress)
