"""Which BOINC commit a source tarball holds.

Tarballs made by `git archive` and GitHub's archive downloads both start with a pax global
header whose `comment` is the commit id; that is what we check against the pin.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def tarball_commit(path: Path) -> str | None:
    """The commit id recorded in the tarball's pax global header, or None if there is none."""
    with tarfile.open(path, "r:*") as tar:
        comment = (tar.pax_headers or {}).get("comment", "").strip()
    return comment if COMMIT.match(comment) else None


def tarball_top_folder(path: Path) -> str | None:
    """The one top-level folder of the tarball (BOINC's archives have boinc-<commit>/)."""
    with tarfile.open(path, "r:*") as tar:
        first = tar.next()
    if first is None:
        return None
    return first.name.split("/", 1)[0]
