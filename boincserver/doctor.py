"""`boincserver doctor`: what `up` needs, each with the one command that fixes it.

The advice strings are the ones the other commands print when they hit the same problem
(engine.ADVICE_*, images.ADVICE_OS_IMAGE, boinc_source), so both always agree.
"""

from __future__ import annotations

import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from boincserver import boinc_source, images, paths, pins
from boincserver import engine as engine_mod
from boincserver.context import open_project
from boincserver.project import ADVICE_PORT, port_is_free, port_is_ours
from boincserver.errors import BoincServerError
from boincserver.settings import load

MIN_FREE_DISK = 10 << 30  # the build needs ~2 GB; a project's data grows from there


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


def _github_reachable() -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request("https://github.com", method="HEAD"), timeout=5)
        return True
    except Exception:
        return False


def _project_release(project_dir: Path) -> pins.ServerRelease:
    """The release of the project in `project_dir`, or the pinned one where there is none to read."""
    try:
        return load(project_dir).release
    except BoincServerError:
        return pins.server_release()


def run_all(project_dir: Path) -> list[Check]:
    checks: list[Check] = []
    if shutil.which("docker") is None:
        return [Check("docker client", False, "`docker` is not installed", engine_mod.ADVICE_CLI)]
    eng = engine_mod.Engine()
    try:
        version = eng.check_engine()
        checks.append(Check("docker engine", True, f"reachable, version {version}"))
    except BoincServerError as exc:
        checks.append(Check("docker engine", False, str(exc), exc.advice))
        return checks
    try:
        checks.append(Check("compose plugin", True, eng.check_compose()))
    except BoincServerError as exc:
        checks.append(Check("compose plugin", False, str(exc), exc.advice))
    release = _project_release(project_dir)
    base_state = images.base_images_state(eng, release=release)
    if all(s == "current" for s in base_state.values()):
        checks.append(Check("base images", True, "boincserver's base images are built and current"))
    else:
        todo = ", ".join(f"{n} ({s})" for n, s in base_state.items() if s != "current")
        checks.append(Check("base images", True, f"to build at the next `up`: {todo}"))
        if eng.image_labels(pins.BASE_OS_IMAGE) is not None:
            checks.append(Check("base OS image", True, f"{pins.BASE_OS_IMAGE} is present"))
        else:
            checks.append(Check("base OS image", False, f"{pins.BASE_OS_IMAGE} is missing (pulled or made at build)",
                                images.ADVICE_OS_IMAGE))
        if base_state["makeproject"] != "current":
            source = boinc_source.server_source(release)
            cached = boinc_source.cached(source)
            if cached:
                checks.append(Check("BOINC source", True, f"cached at {cached}"))
            elif _github_reachable():
                checks.append(Check("BOINC source", True, f"{source.expected()} will be downloaded"))
            else:
                checks.append(Check("BOINC source", False,
                                    f"{source.expected()} is not cached and GitHub cannot be reached",
                                    f"`boincserver build --boinc-src DIR|TARBALL`, or put the tarball at "
                                    f"{source.cache()}"))
    free = eng.free_disk_bytes()
    if free is not None:
        checks.append(Check("free disk", free >= MIN_FREE_DISK, f"{free / (1 << 30):.1f} GiB free for Docker",
                            None if free >= MIN_FREE_DISK else "free at least 10 GiB: `docker system prune`"))
    port, ours = 8080, False
    if (project_dir / paths.SETTINGS_FILE).is_file():
        p = open_project(project_dir, lambda d, name: engine_mod.Engine(d, name))
        port, ours = p.settings.http_port, port_is_ours(p, p.settings.http_port)
    if ours:
        checks.append(Check("http port", True, f"port {port} is this project's"))
    elif port_is_free(port):
        checks.append(Check("http port", True, f"port {port} is free"))
    else:
        checks.append(Check("http port", False, f"port {port} is taken", ADVICE_PORT))
    return checks
