"""Image names in a registry, OCI labels, and the git facts they carry. Pure functions.

A project image is known locally as COMPOSE_NAME/SERVICE:VERSION (what compose.yaml names).
In a registry it is REGISTRY/COMPOSE_NAME/SERVICE:TAG, where REGISTRY is a host[:port] with
an optional path (e.g. ghcr.io/acme, 127.0.0.1:5000/ci). Every push also writes a content
tag, VERSION-in-DIGEST: the digest of the image's inputs, so that `up` on another machine
pulls exactly the image its own project folder would build, and builds only if none exists.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from boincserver.errors import InvalidInput

OCI = "org.opencontainers.image"
BOINC_COMMIT_LABEL = "org.boincserver.boinc-commit"
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# host[:port] then path components, lowercase as the distribution spec asks.
REGISTRY_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
FORBIDDEN_TAG = "latest"


def check_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise InvalidInput(f"image tag {tag!r} is not valid: letters, digits, '_', '.', '-' "
                           "(128 at most, not starting with '.' or '-')")
    if tag == FORBIDDEN_TAG:
        raise InvalidInput(f"the tag {FORBIDDEN_TAG!r} is refused: it names no version, so nobody can "
                           "tell what it runs; use a version, a branch name or a commit")
    return tag


def check_registry(registry: str) -> str:
    registry = registry.strip().rstrip("/")
    if "://" in registry:
        raise InvalidInput(f"registry {registry!r}: give host[:port][/path], without a scheme "
                           "(e.g. ghcr.io/acme or 127.0.0.1:5000)")
    if not REGISTRY_RE.match(registry) or "/" not in registry and "." not in registry \
            and ":" not in registry and registry != "localhost":
        raise InvalidInput(f"registry {registry!r} is not valid: host[:port][/path] in lowercase, "
                           "e.g. ghcr.io/acme or 127.0.0.1:5000/ci (a bare word would mean Docker Hub)")
    return registry


def content_tag(version: str, digest: str) -> str:
    """The tag that names an image by its inputs: same inputs, same tag, on any machine."""
    return f"{version}-in{digest[:20]}"


def repository(registry: str, compose_name: str, service: str) -> str:
    prefix = f"{check_registry(registry)}/" if registry else ""
    return f"{prefix}{compose_name}/{service}"


def reference(registry: str, compose_name: str, service: str, tag: str) -> str:
    return f"{repository(registry, compose_name, service)}:{check_tag(tag)}"


# -- git -----------------------------------------------------------------------------------
def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def git_top_level(directory: Path) -> str | None:
    """The top folder of the git checkout holding `directory`; None outside one."""
    return _git(directory, "rev-parse", "--show-toplevel")


def public_url(remote: str) -> str | None:
    """A remote's URL as a label may show it: https, and never with credentials in it.

    git@github.com:acme/proj.git -> https://github.com/acme/proj;
    https://user:token@host/acme/proj.git -> https://host/acme/proj.
    """
    m = re.match(r"^(?:ssh://)?[^@/\s]+@([^:/\s]+)[:/](.+)$", remote)
    if m:
        host, path = m.group(1), m.group(2)
        url = f"https://{host}/{path.lstrip('/')}"
    elif remote.startswith(("https://", "http://")):
        parts = urlsplit(remote)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        url = urlunsplit((parts.scheme, host, parts.path, "", ""))
    else:
        return None  # a local path or a scheme we do not show
    return re.sub(r"\.git$", "", url.rstrip("/"))


def git_facts(directory: Path) -> dict[str, str]:
    """revision (HEAD), created (HEAD's commit time) and source (origin, made public) if known."""
    facts: dict[str, str] = {}
    if not git_top_level(directory):
        return facts
    revision = _git(directory, "rev-parse", "HEAD")
    if revision:
        facts["revision"] = revision
        when = _git(directory, "log", "-1", "--format=%cI", "HEAD")
        if when:
            facts["created"] = when
    remote = _git(directory, "remote", "get-url", "origin")
    if remote:
        url = public_url(remote)
        if url:
            facts["source"] = url
    return facts


def oci_labels(version: str, boinc_commit: str, facts: dict[str, str], source_default: str = "",
               title: str = "") -> dict[str, str]:
    """The OCI labels of an image. `created` is the commit's time, never the build's: a label
    that changed at every build would give a new image id to identical inputs."""
    labels = {f"{OCI}.version": version, BOINC_COMMIT_LABEL: boinc_commit}
    if title:
        labels[f"{OCI}.title"] = title
    source = facts.get("source") or source_default
    if source:
        labels[f"{OCI}.source"] = source
    for key in ("revision", "created"):
        if facts.get(key):
            labels[f"{OCI}.{key}"] = facts[key]
    return labels
