"""The `app` group: install an app or its next version, list the apps."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from boincserver.commands.context import console, open_project

apps_app = typer.Typer(no_args_is_help=True, help="The project's BOINC applications: add, list.")


@apps_app.command("add")
def app_add(
    name: str = typer.Argument(..., help="The app's short name (lowercase letters, digits, '_')."),
    exe: Optional[Path] = typer.Option(None, help="The executable (for --wrapper: the program the wrapper runs)."),
    platform: str = typer.Option("x86_64-pc-linux-gnu", help="BOINC platform of the executable[__plan_class]."),
    wrapper: bool = typer.Option(False, "--wrapper", help="Run --exe under BOINC's wrapper (job.xml generated)."),
    example: Optional[str] = typer.Option(None, help="Install a ready app of examples/ (uppercase, wordcount)."),
    docker: Optional[Path] = typer.Option(None, help="A Docker app: this folder's Dockerfile (WORKDIR /app), "
                                                     "optional job.toml and the files the image needs."),
    inputs: List[str] = typer.Option([], "--input", help="An input file's name as the app opens it (repeatable; default: in)."),
    outputs: List[str] = typer.Option([], "--output", help="An output file's name (repeatable; default: out)."),
    friendly_name: Optional[str] = typer.Option(None, help="The name volunteers see."),
    wrapper_args: Optional[str] = typer.Option(None, help="--wrapper: the program's command line."),
    keys_dir: Optional[Path] = typer.Option(None, help="Sign with the offline code_sign_private in this folder."),
    validator: str = typer.Option("sample_trivial_validator", help="The validator daemon ('' for none)."),
    assimilator: str = typer.Option("sample_assimilator", help="The assimilator daemon ('' for none)."),
    buda: bool = typer.Option(False, "--buda", help="With --docker: a BUDA app, submitted from the project's "
                                                    "web pages (buda_submit.php) and run by the app `buda`."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Install an app (or its next version): files signed, registered, validator and assimilator set."""
    from boincserver import apps
    from boincserver.boinc.apps import AppSpec
    from boincserver.errors import InvalidInput
    if sum(bool(x) for x in (example, exe, docker)) > 1 or (docker and wrapper):
        raise InvalidInput("give one of --example, --exe (with or without --wrapper) and --docker")
    if buda:
        if not docker or example or exe or wrapper:
            raise InvalidInput("--buda describes a Docker app", advice="give it with --docker DIR")
        result = apps.add_buda(open_project(), name, docker, list(inputs), list(outputs),
                               keys_dir / "code_sign_private" if keys_dir else None)
        if json_out:
            console.json(result)
            return
        console.result(f"BUDA app {result['app']} ({result['variant']}: {', '.join(result['files'])}) "
                       f"{'replaced' if result['replaced'] else 'installed'} in {result['seconds']:.1f}s; "
                       f"inputs {', '.join(result['inputs'])}, outputs {', '.join(result['outputs'])}")
        if result["buda_app_installed"]:
            console.result("  BOINC app `buda` installed (docker_wrapper, plan class docker)")
        console.result("  submit from the web: `boincserver user add EMAIL --submit "
                       f"{result['app']}`, then the project's buda_submit.php")
        return
    if example:
        spec = apps.load_example(example, name)
        spec.platform = platform
    elif docker:
        spec = apps.docker_spec(name, docker, platform)
    else:
        spec = AppSpec(name=name, exe=str(exe) if exe else "", wrapper=wrapper, platform=platform)
    spec.inputs = list(inputs) or spec.inputs
    spec.outputs = list(outputs) or spec.outputs
    spec.friendly_name = friendly_name or spec.friendly_name
    spec.wrapper_command_line = wrapper_args or spec.wrapper_command_line
    spec.validator, spec.assimilator = validator, assimilator
    result = apps.add(open_project(), spec, keys_dir / "code_sign_private" if keys_dir else None)
    if json_out:
        console.json(result.__dict__)
        return
    console.result(f"app {result.app} version {result.version} ({result.platform}) installed in "
                   f"{result.seconds:.1f}s, signed with {result.signed_with}")
    for daemon in result.daemons_added:
        console.result(f"  daemon added: {daemon}")
    if result.plan_classes_added:
        console.result(f"  plan_class_spec.xml: added {', '.join(result.plan_classes_added)}")


@apps_app.command("list")
def app_list(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """The project's apps, their versions and daemons."""
    from boincserver import apps
    project = open_project()
    data = apps.list_apps(project)
    buda = apps.list_buda_apps(project) if any(a["name"] == "buda" for a in data) else []
    if json_out:
        console.json(data + [{"buda": True, **b} for b in buda])
        return
    for a in data:
        versions = ", ".join(f"{v['version'] // 100}.{v['version'] % 100:02d} {v['platform']}"
                             + (f"__{v['plan_class']}" if v["plan_class"] else "") for v in a["versions"])
        console.result(f"{a['name']:16} {versions or 'no version'}")
        for d in a["daemons"]:
            console.result(f"{'':16} daemon: {d}")
    for b in buda:
        shown = b.get("error") or (f"inputs {', '.join(b['inputs'])}, outputs {', '.join(b['outputs'])}, "
                                   f"variants {', '.join(b['variants']) or 'none'}")
        console.result(f"{b['name']:16} BUDA app (run by `buda`): {shown}")
    if not data:
        console.result("no apps yet: `boincserver app add uppercase --example uppercase`")
