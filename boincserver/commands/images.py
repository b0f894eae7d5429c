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
    """What this boincserver pins: BOINC's release and commit, the base images."""
    from boincserver import pins
    data = {"boincserver": __version__, "boinc_release": pins.BOINC_RELEASE, "boinc_commit": pins.BOINC_COMMIT,
            "base_os_image": pins.BASE_OS_IMAGE,
            "base_images": {n: pins.base_image(n) for n in pins.BASE_IMAGE_NAMES}}
    if json_out:
        console.json(data)
    else:
        for k, v in data.items():
            if isinstance(v, dict):
                for n, t in v.items():
                    console.result(f"{k}.{n:12} {t}")
            else:
                console.result(f"{k:24} {v}")


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
