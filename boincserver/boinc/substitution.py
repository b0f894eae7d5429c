"""Runtime values written into a project's files at every start.

The files and file-name patterns are those boinc-server-docker substitutes, so its
cookbook's overlays keep working: `${url_base}`-style placeholders, matched without regard
to case, and `${project}` in file names. A URL_BASE already written by an earlier start is
replaced by the new one, so a changed URL reaches every file that stores it.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Iterable, Mapping

# Relative to PROJECT_ROOT; the patterns match files in the project's top folder.
SUBSTITUTED_FILES = (
    "config.xml",
    "html/user/schedulers.txt",
    "html/project/project.inc",
    "html/ops/.htaccess",
)
SUBSTITUTED_PATTERNS = ("*.httpd.conf",)

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def is_substituted(relpath: str) -> bool:
    if relpath in SUBSTITUTED_FILES:
        return True
    return "/" not in relpath and any(fnmatch.fnmatch(relpath, p) for p in SUBSTITUTED_PATTERNS)


def substituted_files(top_level_names: Iterable[str]) -> list[str]:
    """The files that get the runtime values, relative to PROJECT_ROOT: the fixed ones, then
    those of `top_level_names` (the project folder's own entries) a pattern matches."""
    return list(SUBSTITUTED_FILES) + sorted(n for n in top_level_names
                                            if n not in SUBSTITUTED_FILES and is_substituted(n))


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace `${name}` (any case) by values[name.lower()]; unknown names stay as they are."""
    lowered = {k.lower(): v for k, v in values.items()}

    def one(match: re.Match) -> str:
        return lowered.get(match.group(1).lower(), match.group(0))

    return PLACEHOLDER.sub(one, text)


def replace_url_base(text: str, old: str | None, new: str) -> str:
    """Swap an earlier URL_BASE for the new one wherever it starts a project URL."""
    if not old or old == new:
        return text
    # URL_BASE is stored without a trailing '/', and every URL built on it goes on with '/'.
    return text.replace(old.rstrip("/") + "/", new.rstrip("/") + "/")


def substitute(text: str, values: Mapping[str, str], previous_url_base: str | None) -> str:
    return replace_url_base(fill_placeholders(text, values), previous_url_base, values["url_base"])


def substituted_name(name: str, values: Mapping[str, str]) -> str:
    """A file name with its `${project}`-style placeholders filled."""
    return fill_placeholders(name, values)


def sql_url_updates(old: str | None, new: str) -> list[tuple[str, tuple[str, str]]]:
    """Statements (with parameters) that move stored download URLs to a new URL_BASE.

    app_version.xml_doc and workunit.xml_doc keep the URL from when they were made.
    """
    if not old or old == new:
        return []
    pair = (old.rstrip("/") + "/", new.rstrip("/") + "/")
    return [
        ("UPDATE app_version SET xml_doc = REPLACE(xml_doc, %s, %s)", pair),
        ("UPDATE workunit SET xml_doc = REPLACE(xml_doc, %s, %s)", pair),
    ]
