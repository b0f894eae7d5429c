"""html/project/remote_apps.inc and submitters.inc: what BOINC's own submission pages read about
the project's apps and submitters, as PHP text. Pure: the apache and makeproject services write
the files (container/remote_apps.py), from the app rows and config.xml's daemons.

Facts from the pinned server source:

- html/user/submit.php (67-68) and show_apps.php (6-7) require ../project/remote_apps.inc;
  show_apps.php also ../project/submitters.inc. make_project's html/project.sample has neither
  (only cache_parameters.inc, project.inc and project_specific_prefs.inc), so both pages stop
  on PHP's fatal error until the project provides them.
- `$remote_apps` maps a category (the title of a panel) to a list of objects, one per app:
  app_name (the app row's name), long_name (shown as HTML, not escaped), form (a link to the
  app's web submission form; empty: none, and submit.php show_submit_links 371-391 skips the
  app), logo (optional), and is_assim_move (submit.php is_assim_move 806-816): true when the
  app's assimilator moves the outputs to results/<batch>/, as sample_assimilator does, so that
  submit.php links the outputs to get_output3.php (702, 873, 878) rather than to get_output2.php,
  which reads the upload hierarchy. An app not listed counts as not moving its outputs.
  show_apps.php (58-70) shows each app's long_name, description, sci_kw (keyword ids, read by
  kw_array_to_str) and a link to url; a category whose name holds "Docker" lists BUDA's apps in
  place of its own (59), so no category here is named so.
- `$submitters` (show_apps.php show_submitters 9-29): objects with name, interests, loc_kw and
  picture, shown under "Researchers"; an empty list leaves that part out. Who the researchers
  are is the project's to say: the file is written only where there is none.
- The app named `buda` runs every BUDA (Docker) science app (html/user/buda_submit.php:417,
  buda.php:763). Its web form is buda_submit.php, which, with no action, lists the BUDA apps the
  user may submit to (buda_submit.php:395-431); its jobs' outputs are moved to results/<batch>/
  by sample_assimilator, so submit.php links them to get_output3.php only if is_assim_move is
  true (806-816). It is listed in a category of its own, named with "Docker", so that
  show_apps.php lists the BUDA science apps (show_buda_apps, 59-60) in its place.
"""

from __future__ import annotations

import html
import shlex
from dataclasses import dataclass
from typing import Iterable

from boincserver.boinc import apps as boinc_apps
from boincserver.boinc.makeproject import php_string

REMOTE_APPS_INC = "html/project/remote_apps.inc"
SUBMITTERS_INC = "html/project/submitters.inc"
# The app rows remote_apps reads.
APP_ROWS = "SELECT name, user_friendly_name, deprecated FROM app"
CATEGORY = "Applications"
BUDA_APP = "buda"
BUDA_CATEGORY = "Docker apps (BUDA)"
BUDA_FORM = "buda_submit.php"
# The page that lists the apps and their versions (html/user/apps.php): show_apps.php's link.
APPS_PAGE = "apps.php"
HEADER = ("<?php\n"
          "// Written by boincserver at every start of the project and at every `app add`: edits here\n"
          "// are lost. BOINC's submit.php and show_apps.php read it (boincserver/boinc/remote_apps.py).\n")
SUBMITTERS_TEXT = ("<?php\n"
                   "// The researchers show_apps.php lists (objects with name, interests, loc_kw and\n"
                   "// picture); boincserver wrote it empty once and leaves it to the project.\n"
                   "$submitters = [];\n")


@dataclass(frozen=True)
class RemoteApp:
    name: str
    long_name: str
    is_assim_move: bool


def moves_outputs(daemon_commands: Iterable[str], app: str) -> bool:
    """Whether one of the app's daemons is sample_assimilator writing to its default results/
    (a daemon of another app, or with --outdir elsewhere, does not count)."""
    for command in boinc_apps.app_daemon_commands(list(daemon_commands), app):
        try:
            words = shlex.split(command)
        except ValueError:
            continue
        if words and words[0].rsplit("/", 1)[-1] == boinc_apps.ASSIMILATOR and "--outdir" not in words:
            return True
    return False


def remote_apps(rows: Iterable[tuple], daemon_commands: Iterable[str]) -> list[RemoteApp]:
    """The apps BOINC's pages list: every app row (name, user_friendly_name, deprecated) not
    deprecated, by name."""
    commands = list(daemon_commands)
    out = []
    for name, friendly, deprecated in sorted(rows, key=lambda r: r[0]):
        if deprecated:
            continue
        out.append(RemoteApp(name, friendly or name, moves_outputs(commands, name)))
    return out


def _app_object(app: RemoteApp) -> str:
    fields = [("app_name", php_string(app.name)),
              ("long_name", php_string(html.escape(app.long_name))),  # the pages print it as HTML
              ("form", php_string(BUDA_FORM) if app.name == BUDA_APP else "''"), ("logo", "''"),
              ("is_assim_move", "true" if app.is_assim_move else "false"),
              ("description", "''"), ("sci_kw", "[]"), ("url", php_string(APPS_PAGE))]
    return "(object)[" + ", ".join(f"'{k}' => {v}" for k, v in fields) + "]"


def remote_apps_inc(apps: Iterable[RemoteApp]) -> str:
    """remote_apps.inc's text: $remote_apps with one category holding these apps, and the
    `buda` app, if listed, in a category of its own."""
    apps = list(apps)
    if not apps:
        return HEADER + "$remote_apps = [];\n"
    groups = [(CATEGORY, [a for a in apps if a.name != BUDA_APP]),
              (BUDA_CATEGORY, [a for a in apps if a.name == BUDA_APP])]
    body = "".join(f"    {php_string(category)} => [\n" + "".join(f"        {_app_object(a)},\n" for a in members)
                   + "    ],\n" for category, members in groups if members)
    return f"{HEADER}$remote_apps = [\n{body}];\n"
