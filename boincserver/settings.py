"""A project's settings: defaults, the values the user chose, and those locked at creation.

The settings file (boincserver.toml) holds only values, never secrets. PROJECT, BOINC_USER
and PROJECT_ROOT are build-time values: once the project exists they may not change.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import tomlkit

from boincserver import __version__, paths
from boincserver.boinc import home_page, mail, naming, tuning
from boincserver.errors import InvalidInput, ProjectError

LOCKED = ("project", "boinc_user", "project_root")

DEFAULT_URL_BASE = "http://127.0.0.1:8080"
DEFAULT_HTTP_PORT = 8080
DEFAULT_BOINC_USER = "boincadm"


def default_project_root(boinc_user: str) -> str:
    return f"/home/{boinc_user}/project"


@dataclass(frozen=True)
class Settings:
    project: str
    url_base: str = DEFAULT_URL_BASE
    boinc_user: str = DEFAULT_BOINC_USER
    project_root: str = ""
    http_port: int = DEFAULT_HTTP_PORT
    # The Compose project name, fixed at init so that volumes never follow a renamed folder.
    compose_name: str = ""
    # Offline code signing: the folder on the operator's machine holding code_sign_private.
    # Only its public key ever reaches the server.
    offline_signing_keys: str = ""
    # Where `build --push` sends the project's images and `up` looks for them before building:
    # host[:port][/path], e.g. ghcr.io/acme ("" for none).
    registry: str = ""
    # Slots of the scheduler's job array (shared memory, about 66 KB each once filled): the
    # feeder hands out at most this many jobs a second. Large projects raise it.
    work_slots: int = tuning.DEFAULT_WORK_SLOTS
    # What the home page shows: the long name (in titles, the navbar, the footer; "" for the
    # short name) and the description (plain text, a blank line between paragraphs; "" for
    # a default sentence). Applied at every `up`.
    long_name: str = ""
    description: str = ""
    # The project's mail (password resets): SMTP server, port (0: the TLS mode's usual one),
    # TLS (none, starttls or tls), user and sender. No host: no mail, as BOINC's sample.
    # The password is the secret `mail` (`boincserver secrets rotate mail --stdin`).
    mail_host: str = ""
    mail_port: int = 0
    mail_tls: str = "starttls"
    mail_user: str = ""
    mail_from: str = ""
    # The boincserver version that rendered the folder, to detect an older project.
    boincserver_version: str = __version__

    def __post_init__(self):
        try:
            naming.check_project_name(self.project)
            user = naming.check_boinc_user(self.boinc_user)
            object.__setattr__(self, "project_root",
                               naming.check_project_root(self.project_root or default_project_root(user)))
            object.__setattr__(self, "url_base", naming.normalise_url_base(self.url_base))
        except naming.NameError_ as exc:
            raise InvalidInput(str(exc)) from None
        if isinstance(self.http_port, bool) or not isinstance(self.http_port, int) \
                or not 1 <= self.http_port <= 65535:
            raise InvalidInput(f"HTTP port {self.http_port!r} is not valid: use a number from 1 to 65535")
        try:
            tuning.check_work_slots(self.work_slots)
        except tuning.TuningError as exc:
            raise InvalidInput(str(exc)) from None
        try:
            object.__setattr__(self, "long_name", home_page.check_long_name(self.long_name))
            object.__setattr__(self, "description", home_page.check_description(self.description))
        except home_page.HomePageError as exc:
            raise InvalidInput(str(exc), advice="fix long_name or description in boincserver.toml "
                               "(or init's --long-name, --description); nothing was changed") from None
        try:
            mail.check_mail(self.mail_host, self.mail_port or mail.DEFAULT_PORTS.get(self.mail_tls, 587),
                            self.mail_tls, self.mail_user, self.mail_from)
        except mail.MailError as exc:
            raise InvalidInput(str(exc), advice="fix it with `boincserver mail set` (or in boincserver.toml)") from None
        if self.registry:
            from boincserver.registry import check_registry
            object.__setattr__(self, "registry", check_registry(self.registry))
        if not self.compose_name:
            object.__setattr__(self, "compose_name", f"boincserver-{self.project}")

    @property
    def master_url(self) -> str:
        return f"{self.url_base}/{self.project}/"

    def home_page_env(self) -> dict[str, str]:
        """The long name and description for the makeproject job, as .env can hold any text."""
        values = {"PROJECT_LONG_NAME": self.long_name, "PROJECT_DESCRIPTION": self.description}
        return {k: home_page.env_value(v) for k, v in values.items() if v}

    def locked_values(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in LOCKED}

    def with_changes(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def env(self) -> dict[str, str]:
        """What Compose reads from .env: the build arguments and the runtime values."""
        mail_env = {} if not self.mail_host else {
            "MAIL_HOST": self.mail_host, "MAIL_PORT": str(self.mail_port or ""), "MAIL_TLS": self.mail_tls,
            "MAIL_USER": self.mail_user, "MAIL_FROM": self.mail_from}
        return {
            "PROJECT": self.project,
            "BOINC_USER": self.boinc_user,
            "PROJECT_ROOT": self.project_root,
            "URL_BASE": self.url_base,
            "HTTP_PORT": str(self.http_port),
            "WORK_SLOTS": str(self.work_slots),
            **mail_env,  # only with a mail host: a project without mail keeps its .env
            **self.home_page_env(),  # only when set: a project with the defaults keeps its .env
        }


HEADER = ("boincserver project settings: values only, never secrets.",
          "PROJECT, BOINC_USER and PROJECT_ROOT are locked once the project exists.")


def to_toml(settings: Settings, existing: str | None = None) -> str:
    """The settings file's text: a new one, or `existing` with only the changed values changed.

    The user's comments, blank lines, order and quoting survive (tomlkit edits the parsed
    file in place); a value it lacks is added only when it differs from the default.
    """
    if existing is None:
        doc = tomlkit.document()
        for line in HEADER:
            doc.add(tomlkit.comment(line))
        table = tomlkit.table()
        for f in fields(Settings):
            table.add(f.name, getattr(settings, f.name))
        doc.add("project", table)
        return tomlkit.dumps(doc)
    doc = tomlkit.parse(existing)
    if "project" not in doc:
        doc.add("project", tomlkit.table())
    table = doc["project"]
    defaults = Settings(project=settings.project)
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if f.name in table:
            old = table[f.name]
            if (old.unwrap() if hasattr(old, "unwrap") else old) != value:
                table[f.name] = value
        elif value != getattr(defaults, f.name) or f.name == "project":
            table[f.name] = value
    return tomlkit.dumps(doc)


def save(project_dir: Path, settings: Settings) -> None:
    """Write `settings` into the project's settings file, keeping the user's layout and comments."""
    path = project_dir / paths.SETTINGS_FILE
    existing = path.read_text() if path.is_file() else None
    text = to_toml(settings, existing)
    if text != existing:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def load(project_dir: Path) -> Settings:
    path = project_dir / paths.SETTINGS_FILE
    if not path.is_file():
        raise ProjectError(
            f"{project_dir} is not a boincserver project (no {paths.SETTINGS_FILE})",
            advice=f"create one with `boincserver init {project_dir}`, or pass --project-dir",
        )
    try:
        data = tomllib.loads(path.read_text())["project"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise ProjectError(f"{path} cannot be read ({exc}): fix the file or run `boincserver init` anew") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProjectError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return Settings(**data)
    except TypeError as exc:
        raise ProjectError(f"{path}: {exc}") from None


def locked_changes(recorded: dict[str, str], settings: Settings) -> dict[str, tuple[str, str]]:
    """Locked values that differ from the ones the project was created with."""
    return {k: (recorded[k], getattr(settings, k)) for k in LOCKED
            if k in recorded and recorded[k] != getattr(settings, k)}


def as_dict(settings: Settings) -> dict:
    return asdict(settings)
