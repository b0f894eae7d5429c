"""Commands about what boincserver pins and builds: doctor, versions, base-image, ci."""

from __future__ import annotations

from typing import Optional

import typer

from boincserver import __version__
from boincserver.commands.context import console, state

commands = typer.Typer()
base_image_app = typer.Typer(no_args_is_help=True, help="The pinned base OS image under boincserver's images.")
ci_app = typer.Typer(no_args_is_help=True, help="Continuous integration: build and push the project's images.")


@commands.command()
def doctor(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Check what `up` needs; for each missing thing, the one command that fixes it."""
    from boincserver import doctor as checks
    results = checks.run_all(state["project_dir"])
    if json_out:
        console.json([r.__dict__ for r in results])
    else:
        for r in results:
            console.result(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.detail}")
            if not r.ok and r.fix:
                console.result(f"     fix: {r.fix}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@commands.command()
def versions(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """What this boincserver pins (BOINC's release and commit, the base images), the BOINC
    releases a project can run, and in a project folder the release the project runs."""
    from boincserver import pins
    data = {"boincserver": __version__, "boinc_release": pins.BOINC_RELEASE, "boinc_commit": pins.BOINC_COMMIT,
            "base_os_image": pins.BASE_OS_IMAGE,
            "base_images": {n: pins.base_image(n) for n in pins.BASE_IMAGE_NAMES},
            "supported_releases": {r.version: f"{r.tag} {r.commit}" for r in pins.server_releases().values()}}
    project = _project_release()
    if project:
        data["project"] = project
    if json_out:
        console.json(data)
    else:
        for k, v in data.items():
            if isinstance(v, dict):
                for n, t in v.items():
                    console.result(f"{k}.{n:12} {t}")
            else:
                console.result(f"{k:24} {v}")


def _project_release() -> dict | None:
    """The release of the project in this folder: as boincserver.toml says, and as its volume
    runs (where Docker answers and the project exists)."""
    from boincserver.errors import BoincServerError
    from boincserver.settings import load
    try:
        settings = load(state["project_dir"])
    except BoincServerError:
        return None
    out = {"boinc_release": settings.release.version}
    try:
        from boincserver import upgrade
        from boincserver.commands.context import open_project
        running = upgrade.recorded_pins(open_project()).get("boinc_commit", "")
        out["running"] = upgrade.release_name(running) if running else "not created yet"
    except BoincServerError as exc:
        out["running"] = f"unknown ({exc})"
    return out


@base_image_app.command("ensure")
def base_image_ensure():
    """Have the pinned base OS image: present, pulled, or made with debootstrap (offline)."""
    from boincserver import images, pins
    from boincserver.engine import Engine
    engine = Engine()
    engine.check_engine()
    how = images.ensure_os_image(engine, pins.BASE_OS_IMAGE, console.step)
    console.result(f"{pins.BASE_OS_IMAGE}: {how}")


@ci_app.command("github")
def ci_github(branch: str = typer.Option("main", help="The branch whose pushes push the images."),
              install: Optional[str] = typer.Option(None, help="How CI installs boincserver: a pip requirement (default: this version).")):
    """Write a GitHub Actions workflow that builds the images, and on BRANCH pushes them."""
    from boincserver import ci
    from boincserver.settings import load
    written = ci.write_github(state["project_dir"], load(state["project_dir"]), branch=branch, install=install)
    console.result(f"{written.state:9} {written.path}")
