"""The home page at every start (makeproject job): the long name in project.inc and config.xml,
html/project/project_description.php and html/user/about.php from boincserver.toml (unless
the project made its own), and the forums; a welcome news item when the project is made.
What each holds is boinc/home_page.py's."""

from __future__ import annotations

import os
from pathlib import Path

from boincserver.boinc import configxml, home_page, makeproject
from boincserver.container import common
from boincserver.container.common import Refused


def settings(environ: dict[str, str], project: str) -> tuple[str, str]:
    """PROJECT_LONG_NAME and PROJECT_DESCRIPTION from Compose (the short name and the default
    sentence when unset), checked before anything is changed."""
    try:
        long_name = home_page.check_long_name(home_page.from_env(environ.get("PROJECT_LONG_NAME", ""))) or project
        description = home_page.check_description(home_page.from_env(environ.get("PROJECT_DESCRIPTION", "")))
    except home_page.HomePageError as exc:
        raise Refused(f"{exc} (set long_name and description in boincserver.toml, then `boincserver up`; "
                      "or fix .env)") from None
    return long_name, description or home_page.default_description(long_name)


def welcome(project: Path, created: int) -> None:
    """A new project's first news item (motd.php is the project's from then on)."""
    motd = project / home_page.MOTD_PHP  # make_project's copy of sample_motd.php (owner kept)
    if motd.is_file():
        common.replace_file(motd, home_page.welcome_motd(created))


def _write_ours(path: Path, text: str, like: Path) -> bool:
    """Write a file boincserver owns (absent, or starting with its marker), owned as `like`;
    whether it changed. A file without the marker is the project's own: left alone."""
    if path.is_file():
        return home_page.is_ours(path.read_text()) and common.replace_file(path, text)
    if not path.parent.is_dir():
        return False
    path.write_text(text)
    stat = like.stat()
    os.chown(path, stat.st_uid, stat.st_gid)
    path.chmod(0o644)
    return True


def prepare_project(project: Path, long_name: str, description: str, values: dict[str, str]) -> list[str]:
    """What changed, for the job's log."""
    changed = []
    inc = project / makeproject.PROJECT_INC
    if inc.is_file() and common.replace_file(inc, home_page.project_inc_with_long_name(inc.read_text(), long_name)):
        changed.append(f"{makeproject.PROJECT_INC} (PROJECT {long_name!r})")
    config = project / "config.xml"
    if common.replace_file(config, configxml.set_element(config.read_text(), "long_name", long_name)):
        changed.append(f"config.xml (long_name {long_name!r})")
    for relpath, text in ((home_page.DESCRIPTION_PHP, home_page.description_php(description)),
                          (home_page.ABOUT_PHP, home_page.about_php())):
        if _write_ours(project / relpath, text, like=config):
            changed.append(relpath)
    conn = common.connect(values)
    try:
        added = sum(common.execute_all(conn.cursor(), home_page.forum_statements()))
    finally:
        conn.close()
    if added:
        changed.append(f"forums: {added} categories and forums added (BOINC's create_forums.php set)")
    return changed
