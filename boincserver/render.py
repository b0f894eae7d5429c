"""The project folder, rendered from the packaged templates in compose/.

Templates render with StrictUndefined: a missing value is an error naming it, never an
empty string. Each written file is reported as created, changed or identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from boincserver import paths, pins
from boincserver.settings import Settings

# Template (relative to compose/) -> file in the project folder.
PROJECT_FILES = {
    "compose.yaml.j2": paths.COMPOSE_FILE,
    # The same template as compose.yaml, for Docker Swarm: one description of the services.
    "compose.yaml.j2 swarm": paths.STACK_FILE,
    "env.j2": paths.ENV_FILE,
    "project/README.md.j2": "README.md",
    "project/gitignore.j2": ".gitignore",
    "project/apps-README.md.j2": "apps/README.md",
    "project/images/mysql/Dockerfile.j2": "images/mysql/Dockerfile",
    "project/images/apache/Dockerfile.j2": "images/apache/Dockerfile",
    "project/images/makeproject/Dockerfile.j2": "images/makeproject/Dockerfile",
}
# On Swarm, the volumes bound into swarm_storage (the folder every server node shares); the
# database's stays on its node.
SWARM_STORAGE_VOLUMES = ("project", "secrets", "results", "tls")
# Files the user is expected to edit: written at init, never overwritten afterwards.
USER_OWNED = {"README.md", ".gitignore", "apps/README.md", "images/mysql/Dockerfile",
              "images/apache/Dockerfile", "images/makeproject/Dockerfile"}


@dataclass(frozen=True)
class Written:
    path: Path
    state: str  # created | changed | identical | kept


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.data_dir("compose"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def context(settings: Settings, env: dict[str, str] | None = None, swarm: bool = False) -> dict:
    from boincserver import __version__

    from boincserver import catalogue
    secrets = catalogue.load(paths.data_dir("secrets") / "catalogue.toml")
    return {
        "hidden_from_apache": catalogue.hidden_from(secrets, "apache"),
        "s": settings,
        "version": __version__,
        "pins": pins,
        "base_image": lambda name: pins.base_image(name, settings.release.version),
        "env": settings.env() if env is None else env,
        "swarm": swarm,
        "swarm_storage_volumes": SWARM_STORAGE_VOLUMES,
    }


def render_all(settings: Settings, env: dict[str, str] | None = None) -> dict[str, str]:
    contexts = {False: context(settings, env), True: context(settings, env, swarm=True)}
    env = environment()
    try:
        # "TEMPLATE swarm" renders TEMPLATE with swarm set.
        return {dest: env.get_template(src.split()[0]).render(contexts[src.endswith(" swarm")])
                for src, dest in PROJECT_FILES.items()}
    except jinja2.UndefinedError as exc:  # a template bug, not a user's: say which value
        raise RuntimeError(f"template value missing: {exc}") from exc


def write_project(project_dir: Path, settings: Settings, *, initial: bool,
                  env: dict[str, str] | None = None) -> list[Written]:
    """Write the rendered files; user-owned files only when `initial`. `env`, when given, is
    what .env holds instead of the settings' own values (a switch to https in two steps)."""
    report = []
    for rel, text in render_all(settings, env).items():
        path = project_dir / rel
        if path.exists():
            if rel in USER_OWNED and not initial:
                report.append(Written(path, "kept"))
                continue
            old = path.read_text()
            if old == text:
                report.append(Written(path, "identical"))
                continue
            state = "changed"
        else:
            state = "created"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        report.append(Written(path, state))
    return report
