"""Finding the pinned BOINC source: a given folder or tarball, the cache, or a download.

Whatever the way, the result is a tarball in the cache whose pax header names the pinned
commit, so every build compiles exactly that release.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from boincserver import paths, pins
from boincserver.boinc.source import tarball_commit
from boincserver.errors import SourceError

ENV_SOURCE = "BOINCSERVER_BOINC_SRC"


def expected() -> str:
    return f"BOINC {pins.BOINC_RELEASE} (commit {pins.BOINC_COMMIT})"


def _verify_tarball(path: Path) -> None:
    try:
        commit = tarball_commit(path)
    except (OSError, EOFError, Exception) as exc:  # tarfile raises several types
        raise SourceError(f"{path} is not a readable tarball ({exc}); expected {expected()}") from None
    if commit is None:
        raise SourceError(
            f"{path} carries no commit id (no pax header): cannot check it is {expected()}; use a "
            f"tarball made by GitHub's archive download or `git archive {pins.BOINC_COMMIT}`")
    if commit != pins.BOINC_COMMIT:
        raise SourceError(f"{path} is BOINC commit {commit}, not the pinned {expected()}")


def _install(tarball: Path, cache: Path) -> Path:
    """Copy a verified tarball into the cache atomically."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    if tarball.resolve() == cache.resolve():
        return cache
    tmp = cache.with_name(cache.name + ".part")
    shutil.copyfile(tarball, tmp)
    tmp.replace(cache)
    return cache


def _from_git_checkout(folder: Path, cache: Path) -> Path:
    if not (folder / ".git").exists() and not (folder / "HEAD").is_file():
        raise SourceError(
            f"{folder} is not a git checkout of BOINC, so it cannot be checked to be {expected()}; "
            f"pass a git checkout, or the release tarball (boinc-{pins.BOINC_COMMIT}.tar.gz)")
    has = subprocess.run(["git", "-C", str(folder), "cat-file", "-e", f"{pins.BOINC_COMMIT}^{{commit}}"],
                         capture_output=True)
    if has.returncode != 0:
        raise SourceError(f"{folder} does not contain {expected()}; `git fetch --tags` there, or pass the tarball")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".part")
    made = subprocess.run(["git", "-C", str(folder), "archive", "--format=tar.gz",
                           f"--prefix=boinc-{pins.BOINC_COMMIT}/", "-o", str(tmp), pins.BOINC_COMMIT],
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise SourceError(f"`git archive` in {folder} failed: {made.stderr.strip()}")
    tmp.replace(cache)
    return cache


def _download(cache: Path, on_progress: Callable[[int, int | None], None]) -> Path:
    url = pins.BOINC_ARCHIVE_URL.format(commit=pins.BOINC_COMMIT)
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
            f"cannot download {expected()} from {url} ({exc})",
            advice=(f"offline, pass the source with --boinc-src DIR|TARBALL (or set {ENV_SOURCE}), "
                    f"or put boinc-{pins.BOINC_COMMIT}.tar.gz into {cache.parent}")) from None
    part = Path(out.name)
    try:
        _verify_tarball(part)
    except SourceError:
        part.unlink(missing_ok=True)
        raise
    part.replace(cache)
    return cache


def cached() -> Path | None:
    """The cached tarball if it is there (verified on use, not here)."""
    cache = paths.boinc_tarball_cache()
    return cache if cache.is_file() else None


def resolve(boinc_src: str | os.PathLike | None = None, *, download: bool = True,
            on_progress: Callable[[int, int | None], None] = lambda d, t: None) -> Path:
    """The verified tarball of the pinned BOINC commit, from the first place that has it."""
    cache = paths.boinc_tarball_cache()
    given = boinc_src or os.environ.get(ENV_SOURCE)
    if given:
        path = Path(given).expanduser()
        if path.is_dir():
            return _from_git_checkout(path, cache)
        if path.is_file():
            _verify_tarball(path)
            return _install(path, cache)
        raise SourceError(f"BOINC source {path} does not exist; expected a folder or a tarball of {expected()}")
    if cache.is_file():
        _verify_tarball(cache)
        return cache
    if not download:
        raise SourceError(f"{expected()} is not in the cache ({cache})",
                          advice="pass --boinc-src DIR|TARBALL, or let `boincserver build` download it")
    return _download(cache, on_progress)
