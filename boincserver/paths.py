"""Every location boincserver reads or writes, computed in one place."""

from __future__ import annotations

import os
from pathlib import Path

from boincserver import pins

PACKAGE_DIR = Path(__file__).resolve().parent

SETTINGS_FILE = "boincserver.toml"
COMPOSE_FILE = "compose.yaml"
STACK_FILE = "stack.yaml"  # the same services as a Docker Swarm stack (`up --swarm`)
ENV_FILE = ".env"


def data_dir(name: str) -> Path:
    """A top-level data folder (images, compose, secrets): in the wheel or in the checkout."""
    shipped = PACKAGE_DIR / "_data" / name
    if shipped.is_dir():
        return shipped
    return PACKAGE_DIR.parent / name


def cache_dir() -> Path:
    """Downloads worth keeping between runs: BOINC source tarballs."""
    if os.environ.get("BOINCSERVER_CACHE"):
        return Path(os.environ["BOINCSERVER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "boincserver"


def boinc_tarball_cache(commit: str = pins.BOINC_COMMIT) -> Path:
    """Where the BOINC source of `commit` is kept once downloaded or handed over."""
    return cache_dir() / "boinc" / f"boinc-{commit}.tar.gz"


def log_dir() -> Path:
    """Where the full logs of builds go (the screen shows one line per step)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "boincserver" / "logs"
