"""What BOINC and this tool accept as project names, users, roots and URLs."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

PROJECT_NAME = re.compile(r"[a-z0-9_]{1,32}")
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
PROJECT_ROOT = re.compile(r"(/[A-Za-z0-9._-]+)+")
# The project name is its database's name: MariaDB's own databases are out.
RESERVED_PROJECTS = {"mysql", "sys", "information_schema", "performance_schema", "test"}
# Users Debian's base image and Apache already have (useradd would fail at build time).
SYSTEM_USERS = {"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
                "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt", "mysql",
                "systemd-network", "systemd-timesync", "messagebus"}


class NameError_(ValueError):
    """A value BOINC or the stack cannot use; the message says which and why."""


def check_project_name(name: str) -> str:
    if not isinstance(name, str) or not PROJECT_NAME.fullmatch(name) or name in RESERVED_PROJECTS:
        raise NameError_(
            f"project name {name!r} is not valid: use 1 to 32 lowercase letters, digits or "
            "underscores (it names the database, the web paths and the files), not one of "
            f"MariaDB's own databases ({', '.join(sorted(RESERVED_PROJECTS))}), e.g. 'myproject'"
        )
    return name


def check_boinc_user(user: str) -> str:
    if not isinstance(user, str) or not USER_NAME.fullmatch(user) or user in SYSTEM_USERS:
        raise NameError_(
            f"BOINC user {user!r} is not valid: use a new Unix user name, not a system user such as "
            "root or www-data (lowercase letters, digits, '_' or '-', starting with a letter or "
            "'_'), e.g. 'boincadm'"
        )
    return user


def check_project_root(path: str) -> str:
    if (not isinstance(path, str) or not PROJECT_ROOT.fullmatch(path) or path.count("/") < 2
            or any(part in (".", "..") for part in path.split("/"))):
        raise NameError_(
            f"project root {path!r} is not valid: use an absolute path of two or more plain "
            "components (letters, digits, '.', '_', '-'; not '.' or '..'), e.g. '/home/boincadm/project'"
        )
    return path


def _host_is_usable(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return len(labels) >= 2 and all(re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", lab) for lab in labels)


def normalise_url_base(url: str) -> str:
    """Check URL_BASE and return it as scheme://host[:port], with no trailing '/'.

    The host must contain a dot or be an IP address: Debian's boinc-client 7.20.5 refuses
    to attach to a master URL such as http://boincsrv/x/ ("Invalid URL").
    """
    if not isinstance(url, str):
        raise NameError_(f"URL {url!r} is not valid: give a text such as http://boinc.example.org")
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise NameError_(f"URL {url!r} is not valid ({exc}): use e.g. http://boinc.example.org") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise NameError_(
            f"URL {url!r} is not valid: it must start with http:// or https://, "
            "e.g. http://boinc.example.org"
        )
    host = (parts.hostname or "").lower()
    if not host or not _host_is_usable(host):
        raise NameError_(
            f"URL {url!r} is not valid: its host must be a name with a dot or an IP address "
            "(BOINC clients refuse bare host names), e.g. http://127.0.0.1:8080 or "
            "http://boinc.example.org"
        )
    if parts.path.strip("/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise NameError_(
            f"URL {url!r} is not valid: give only scheme://host[:port]; the project is "
            "served at URL_BASE/<project>/"
        )
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port is None else f"{shown_host}:{port}"
    return f"{parts.scheme.lower()}://{netloc}"


def master_url(url_base: str, project: str) -> str:
    return f"{normalise_url_base(url_base)}/{project}/"
