"""A project's settings: defaults, the values the user chose, and those locked at creation.

The settings file (boincserver.toml) holds only values, never secrets. PROJECT, BOINC_USER
and PROJECT_ROOT are build-time values: once the project exists they may not change.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

import tomlkit

from boincserver import __version__, paths, pins
from boincserver.boinc import daemon_instances, home_page, mail, naming, tuning
from boincserver.errors import InvalidInput, ProjectError

LOCKED = ("project", "boinc_user", "project_root")

DEFAULT_URL_BASE = "http://127.0.0.1:8080"
DEFAULT_HTTP_PORT = 8080
DEFAULT_BOINC_USER = "boincadm"


DEPLOYS = ("compose", "swarm")


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
    # HTTPS, for an https:// URL base: acme (a certificate from an ACME CA, obtained and renewed
    # by Apache's mod_md), files (your own: `boincserver tls set`), or proxy (something in front
    # terminates TLS; the server speaks plain HTTP). An http:// URL base serves plain HTTP.
    tls: str = "acme"
    # The host port published for HTTPS (0: the URL base's port, or 443).
    https_port: int = 0
    # The ACME CA: letsencrypt, letsencrypt-staging or a directory URL; the account's contact;
    # a private CA's own TLS root (PEM), which Apache must trust to talk to it.
    acme_directory: str = "letsencrypt"
    acme_email: str = ""
    acme_ca_bundle: str = ""
    # Parallel instances of BOINC's daemons by type, e.g. {"transitioner": 2}: each runs with
    # --mod N i (boinc/daemon_instances.py); {} for one each. Its own table in the file.
    daemon_instances: dict = field(default_factory=dict)
    # How `up` runs the project: compose (this machine) or swarm (`up --swarm` sets it; then
    # `down` and `status` act on the stack and commands that need Compose refuse).
    deploy: str = "compose"
    # Docker Swarm (`up --swarm`): the manager's engine (a DOCKER_HOST value: ssh://USER@HOST,
    # tcp://HOST:PORT or unix:///PATH; "" for the engine this machine's docker uses); the
    # folder every server node has (an NFS mount, say) where the project's volumes live, so
    # that apache may move between server nodes ("" for node-local volumes); and the nodes'
    # own engines by node name, where `down --swarm --volumes` removes the project's volumes.
    swarm_manager: str = ""
    swarm_storage: str = ""
    swarm_nodes: dict = field(default_factory=dict)
    # The BOINC server release the project runs, by version (1.4.7): one of the supported ones
    # (`boincserver versions`); "" for the one this boincserver pins. `init --boinc-release`
    # sets it; `upgrade` moves it to the pinned one.
    boinc_release: str = ""
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
            object.__setattr__(self, "daemon_instances", daemon_instances.check_counts(self.daemon_instances))
        except daemon_instances.DaemonInstancesError as exc:
            raise InvalidInput(str(exc), advice="fix [daemon_instances] in boincserver.toml; "
                               "nothing was changed") from None
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
        if isinstance(self.https_port, bool) or not isinstance(self.https_port, int) \
                or not 0 <= self.https_port <= 65535:
            raise InvalidInput(f"HTTPS port {self.https_port!r} is not valid: use a number from 1 to 65535")
        from boincserver import tls
        tls.check_mode(self.tls)
        tls.check_directory(self.acme_directory)
        tls.check_email(self.acme_email)
        if self.acme_ca_bundle:
            tls.check_ca_bundle(self.acme_ca_bundle)
        if self.serves_https and self.published_https_port == self.http_port:
            raise InvalidInput(f"HTTP and HTTPS cannot share port {self.http_port}",
                               advice="choose another one with --https-port or --http-port")
        if self.registry:
            from boincserver.registry import check_registry
            object.__setattr__(self, "registry", check_registry(self.registry))
        if self.deploy not in DEPLOYS:
            raise InvalidInput(f"deploy {self.deploy!r} is not known: use {' or '.join(DEPLOYS)}")
        check_swarm_settings(self.swarm_manager, self.swarm_storage, self.swarm_nodes)
        if self.boinc_release:
            object.__setattr__(self, "boinc_release", check_boinc_release(self.boinc_release).version)
        if not self.compose_name:
            object.__setattr__(self, "compose_name", f"boincserver-{self.project}")

    @property
    def release(self) -> pins.ServerRelease:
        """The BOINC server release the project runs."""
        return check_boinc_release(self.boinc_release)

    @property
    def master_url(self) -> str:
        return f"{self.url_base}/{self.project}/"

    def check_https(self) -> None:
        """What serving HTTPS by ACME needs, checked by init and up before anything changes
        (not on load: an older project with an https:// URL must still open)."""
        if self.serves_https and self.tls == "acme":
            if not (self.acme_email or self.mail_from):
                raise InvalidInput("a certificate by ACME needs a contact address for the CA account",
                                   advice="give one with --acme-email ADDR; if a proxy in front already "
                                          "terminates TLS, say so with --tls proxy")
            if not any(c.isalpha() for c in self.host.rsplit(".", 1)[-1]) or ":" in self.host:
                raise InvalidInput(f"an ACME CA certifies DNS names, not the address {self.host}",
                                   advice="use a DNS name in --url-base, your own certificate (--tls files) "
                                          "or --tls proxy")

    @property
    def serves_https(self) -> bool:
        """Apache itself speaks TLS (not plain HTTP behind a proxy)."""
        return self.url_base.startswith("https://") and self.tls != "proxy"

    @property
    def host(self) -> str:
        return urlsplit(self.url_base).hostname or ""

    @property
    def published_https_port(self) -> int:
        return self.https_port or urlsplit(self.url_base).port or 443

    def tls_env(self) -> dict[str, str]:
        """What the apache service needs to serve HTTPS for this URL base (tls-config)."""
        from boincserver import tls
        if not self.serves_https:
            return {}
        env = {"HTTPS_PUBLISH": f"{self.published_https_port}:443", "TLS": self.tls, "TLS_URL_BASE": self.url_base}
        if self.tls == "acme":
            env["ACME_DIRECTORY"] = tls.directory_for_apache(self.acme_directory)
            env["ACME_EMAIL"] = self.acme_email or self.mail_from
            env["ACME_CA_PEM_B64"] = tls.ca_bundle_b64(self.acme_ca_bundle) if self.acme_ca_bundle else ""
        return env

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
            **self.tls_env(),  # only for https: a plain-HTTP project keeps its .env
            # only when set, in single quotes (Compose passes them on literally)
            **({"DAEMON_INSTANCES": f"'{daemon_instances.to_env(self.daemon_instances)}'"}
               if self.daemon_instances else {}),
        }


# Settings kept in a table of their own ([daemon_instances], [swarm_nodes]), not in [project].
TABLES = ("daemon_instances", "swarm_nodes")

_ENGINE_ADDRESS = re.compile(r"^(unix:///[A-Za-z0-9._/-]+|ssh://([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+(:[0-9]{1,5})?"
                             r"|tcp://[A-Za-z0-9.-]+:[0-9]{1,5})$")
_STORAGE = re.compile(r"^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$")
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def check_engine_address(what: str, address: str) -> str:
    if not _ENGINE_ADDRESS.match(address):
        raise InvalidInput(f"{what} {address!r} is not a Docker engine address",
                           advice="use ssh://USER@HOST, tcp://HOST:PORT or unix:///PATH (as DOCKER_HOST takes)")
    return address


def check_boinc_release(name: str) -> pins.ServerRelease:
    """A supported BOINC server release, by version or tag ("" for the pinned one)."""
    try:
        return pins.server_release(name)
    except KeyError:
        known = ", ".join(f"{r.version} ({r.tag})" for r in pins.server_releases().values())
        raise InvalidInput(f"BOINC server release {name!r} is not one boincserver supports",
                           advice=f"use one of {known}; `boincserver versions` lists them") from None


def check_swarm_settings(manager: str, storage: str, nodes: dict) -> None:
    """The swarm_* settings (boincserver.toml), checked when the settings load."""
    if manager:
        check_engine_address("swarm_manager", manager)
    if storage and (not _STORAGE.match(storage) or "/../" in storage + "/"):
        raise InvalidInput(f"swarm_storage {storage!r} is not an absolute folder path",
                           advice="give the folder every server node has, e.g. /srv/boincserver "
                                  "(letters, digits, . _ - and /)")
    if not isinstance(nodes, dict):
        raise InvalidInput("swarm_nodes must be a table of node name = engine address",
                           advice='e.g. [swarm_nodes] db1 = "ssh://admin@db1"')
    for name, address in nodes.items():
        if not _NODE.match(str(name)):
            raise InvalidInput(f"swarm_nodes: {name!r} is not a node name")
        check_engine_address(f"swarm_nodes.{name}", str(address))


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
            if f.name not in TABLES:
                table.add(f.name, _toml_value(getattr(settings, f.name)))
        doc.add("project", table)
        _set_tables(doc, settings)
        return tomlkit.dumps(doc)
    doc = tomlkit.parse(existing)
    if "project" not in doc:
        doc.add("project", tomlkit.table())
    table = doc["project"]
    defaults = Settings(project=settings.project)
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if f.name in TABLES:
            continue
        if f.name in table:
            old = table[f.name]
            if (old.unwrap() if hasattr(old, "unwrap") else old) != value:
                table[f.name] = _toml_value(value)
        elif value != getattr(defaults, f.name) or f.name == "project":
            table[f.name] = _toml_value(value)
    _set_tables(doc, settings)
    return tomlkit.dumps(doc)


def _set_tables(doc, settings: Settings) -> None:
    """The tables of TABLES: changed keys only (the user's comments stay); none while empty."""
    for name in TABLES:
        value = getattr(settings, name)
        if name not in doc:
            if value:
                doc.add(name, tomlkit.table())
            else:
                continue
        table = doc[name]
        for key in [k for k in table if k not in value]:
            del table[key]
        for key, item in value.items():
            if table.get(key) != item:
                table[key] = item


def _toml_value(value):
    """Multi-line text (a CA's PEM) as a TOML multi-line string, readable in the file."""
    if isinstance(value, str) and "\n" in value:
        return tomlkit.string(value, multiline=True)
    return value


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
        doc = tomllib.loads(path.read_text())
        data = doc["project"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise ProjectError(f"{path} cannot be read ({exc}): fix the file or run `boincserver init` anew") from None
    known = {f.name for f in fields(Settings)} - set(TABLES)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProjectError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    data = {**data, **{name: doc[name] for name in TABLES if name in doc}}
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
