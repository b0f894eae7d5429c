"""`boincserver ci github`: a GitHub Actions workflow that builds (and pushes) the project's images."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jinja2

from boincserver import images, pins, registry, render
from boincserver.errors import InvalidInput
from boincserver.settings import Settings

TEMPLATE = "ci/github-workflow.yml.j2"
WORKFLOW = Path(".github/workflows/boincserver.yml")


def _top_level(project_dir: Path) -> Path | None:
    top = registry.git_top_level(project_dir)
    return Path(top) if top else None


def render_github(settings: Settings, workdir: str = ".", branch: str = "main",
                  install: str | None = None) -> str:
    from boincserver import __version__
    if not registry.TAG_RE.match(branch):
        raise InvalidInput(f"branch {branch!r}: use a plain branch name (letters, digits, '_', '.', '-')")
    release = settings.release
    base_inputs = hashlib.sha256("".join(images.inputs_digest(n, release=release)
                                         for n in pins.BASE_IMAGE_NAMES).encode())
    host = settings.registry.split("/", 1)[0] if settings.registry else ""
    try:
        return render.environment().get_template(TEMPLATE).render(
            version=__version__, branch=branch, workdir=workdir, install=install or f"boincserver=={__version__}",
            registry=settings.registry, registry_host=host, ghcr=host == "ghcr.io",
            boinc_commit=release.commit, base_inputs=base_inputs.hexdigest()[:24],
            base_images=[pins.base_image(n, release.version) for n in pins.BASE_IMAGE_NAMES])
    except jinja2.UndefinedError as exc:
        raise RuntimeError(f"template value missing: {exc}") from exc


def write_github(project_dir: Path, settings: Settings, branch: str = "main",
                 install: str | None = None) -> render.Written:
    """Write the workflow where GitHub reads it: the repository's top level when the project
    folder is inside a git repository (its path becomes the working directory), else the folder."""
    project_dir = project_dir.absolute()
    top = _top_level(project_dir)
    root = top if top else project_dir
    workdir = os.path.relpath(project_dir.resolve(), root.resolve()) if top else "."
    text = render_github(settings, workdir=workdir, branch=branch, install=install)
    path = root / WORKFLOW
    state = "created"
    if path.exists():
        if path.read_text() == text:
            return render.Written(path, "identical")
        state = "changed"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return render.Written(path, state)
