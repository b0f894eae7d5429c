"""The first page a volunteer sees: the project's long name and description, an About page,
the forums and a first news item, instead of BOINC's notes to the operator.

Facts from the pinned server source (server_release 1.6.2):
- The long name is the PROJECT constant of html/project/project.inc
  (`define("PROJECT", ...)`, html/project.sample/project.inc:15), shown unescaped in <title>
  (html/inc/util.inc:318), the navbar brand (html/inc/bootstrap.inc:154) and "What is %1?",
  "Join %1" (html/user/sample_index.php:64,135); the footer shows COPYRIGHT_HOLDER
  (project.inc:16, 136-139). It is also config.xml's <long_name>, which the scheduler sends to
  clients as <project_name> (sched/sched_types.cpp:856-858) and get_project_config.php:55 as
  <name>; make_project sets both from its second argument (tools/make_project:136-138).
- The home page (html/user/index.php, a copy of sample_index.php) includes
  html/project/project_description.php inside a <p> when it exists, and otherwise prints
  "No project description yet. Create a file html/project/project_description.php ..."
  (sample_index.php:114-123).
- The navbar's "About PROJECT" links to about.php (bootstrap.inc:163), which BOINC does not
  ship (no html/user/about.php): a 404.
- The news panel includes motd.php, then the News forum's threads (sample_index.php:158-165);
  without a News forum in a non-helpdesk category it prints "No news forum. Run
  html/ops/create_forums.php." (html/inc/news.inc:53-84). motd.php is copied from
  sample_motd.php only when absent (py/Boinc/setup_project.py:341-342), so it is the project's;
  news_item(time, title, text) takes a string body (news.inc:19-48), the title unescaped.
- html/ops/create_forums.php, which makes the forums, stops at an unconditional die() (:24).
  Its categories and forums are FORUMS below (:60-73); a repeat insert fails on the unique keys
  category cat1(name, is_helpdesk) and forum pct(parent_type, category, title)
  (db/constraints.sql:103-107), so INSERT IGNORE makes them once.
- project.inc calls display_errors() ("Comment this out when your project is public",
  project.inc:38-40), which shows PHP's warnings, with server paths, to every visitor.
"""

from __future__ import annotations

import html
import json
import re

from boincserver.boinc.makeproject import php_string

# Relative to PROJECT_ROOT.
DESCRIPTION_PHP = "html/project/project_description.php"
ABOUT_PHP = "html/user/about.php"
MOTD_PHP = "html/user/motd.php"

MAX_LONG_NAME = 100
MAX_DESCRIPTION = 4000
# BOINC's PHP prints the long name into pages unescaped and reads config.xml without unescaping.
LONG_NAME_FORBIDDEN = '<>&"'

# The first line of the files boincserver writes at every start; without it a file is the
# project's own and is left alone.
MARKER = "<?php // Written by boincserver at every start; delete this line to keep your own version. ?>"


class HomePageError(ValueError):
    """A long name or description boincserver cannot put on the pages."""


def check_long_name(value: object) -> str:
    """The long name as the pages show it; "" means the short name."""
    if not isinstance(value, str):
        raise HomePageError(f"the long name must be text, not {type(value).__name__} ({value!r})")
    name = value.strip()
    if len(name) > MAX_LONG_NAME:
        raise HomePageError(f"the long name is {len(name)} characters long; at most {MAX_LONG_NAME}")
    bad = sorted({c for c in name if c in LONG_NAME_FORBIDDEN or not c.isprintable()})
    if bad:
        raise HomePageError(f"the long name {name!r} holds {', '.join(map(repr, bad))}: BOINC's pages show it "
                            f"unescaped, so it may hold neither {' '.join(LONG_NAME_FORBIDDEN)} nor control "
                            "characters (write 'and' for &)")
    return name


def check_description(value: object) -> str:
    """The description as plain text (paragraphs separated by blank lines); "" means the default."""
    if not isinstance(value, str):
        raise HomePageError(f"the description must be text, not {type(value).__name__} ({value!r})")
    text = value.strip().replace("\r\n", "\n")
    if len(text) > MAX_DESCRIPTION:
        raise HomePageError(f"the description is {len(text)} characters long; at most {MAX_DESCRIPTION}")
    bad = sorted({c for c in text if not c.isprintable() and c not in "\n\t"})
    if bad:
        raise HomePageError(f"the description holds control characters ({', '.join(map(repr, bad))}): "
                            "use plain text, paragraphs separated by a blank line")
    return text


def default_description(long_name: str) -> str:
    return (f"{long_name} is a volunteer computing project: people lend the spare time of their "
            "computers to its research through BOINC. Join, install BOINC, and your computer works "
            "on the project's tasks while you are not using it.")


# -- through Compose's .env ----------------------------------------------------------------
def env_value(text: str) -> str:
    """`text` as one line of .env that Compose passes on unchanged: a JSON string (one line,
    ASCII) in single quotes, where Compose reads everything literally (no $ interpolation, no
    escapes); a ' inside is JSON's \\u0027."""
    return "'" + json.dumps(text, ensure_ascii=True).replace("'", "\\u0027") + "'"


def from_env(raw: str) -> str:
    """The text env_value() wrote, as the container receives it (without the quotes); "" stays ""."""
    if not raw:
        return ""
    try:
        text = json.loads(raw)
    except ValueError:
        text = None
    if not isinstance(text, str):
        raise HomePageError(f"{raw[:40]!r} is not a JSON string as boincserver writes it into .env")
    return text


# -- the files -----------------------------------------------------------------------------
_PHP_LITERAL = r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""


def _define_re(name: str) -> re.Pattern:
    return re.compile(rf"""^(define\(\s*["']{name}["']\s*,\s*)({_PHP_LITERAL})(\s*\)\s*;)""", re.M)


def _literal_value(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def project_inc_with_long_name(text: str, long_name: str) -> str:
    """project.inc defining PROJECT as `long_name`; COPYRIGHT_HOLDER follows it while it is the
    same as PROJECT (as make_project and boincserver leave it). A PROJECT that is not a plain
    string literal (the operator's own code) is left as it is."""
    project_re, holder_re = _define_re("PROJECT"), _define_re("COPYRIGHT_HOLDER")
    current = project_re.search(text)
    if current is None or _literal_value(current.group(2)) == long_name:
        return text
    holder = holder_re.search(text)
    literal = php_string(long_name)
    if holder is not None and _literal_value(holder.group(2)) == _literal_value(current.group(2)):
        text = holder_re.sub(lambda m: m.group(1) + literal + m.group(3), text, count=1)
    return project_re.sub(lambda m: m.group(1) + literal + m.group(3), text, count=1)


def project_inc_without_display_errors(text: str) -> str:
    """The sample project.inc with display_errors() commented out, as the sample asks of a
    public project (PHP's own setting, off for Apache on Debian, applies)."""
    return re.sub(r"^display_errors\(\);", "//display_errors();  // boincserver: a public project's pages show "
                  "no PHP warnings", text, count=1, flags=re.M)


def is_ours(text: str) -> bool:
    return text.startswith(MARKER)


def description_html(description: str) -> str:
    """Plain text as HTML, to stand inside index.php's <p>: escaped, blank lines start a new
    paragraph."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", description) if p.strip()]
    return "\n<p>\n".join(html.escape(p, quote=False) for p in paragraphs)


def description_php(description: str) -> str:
    """html/project/project_description.php: static HTML (escaped, so no PHP can start in it)."""
    return (f"{MARKER}\n<?php // From boincserver.toml's description (plain text; blank lines separate "
            f"paragraphs). ?>\n{description_html(description)}\n")


def about_php() -> str:
    """html/user/about.php, the navbar's "About PROJECT": the description on a page of its own."""
    return f"""{MARKER}
<?php
// The navbar's "About PROJECT" page: the project's description (html/project/project_description.php).
require_once("../inc/util.inc");

page_head(tra("About %1", PROJECT));
echo "<p>";
include("../project/project_description.php");
echo "</p>\\n";
if (!NO_COMPUTING) {{
    echo '<p><a href="signup.php" class="btn btn-success">'.tra('Join %1', PROJECT).'</a></p>';
}}
page_tail();
?>
"""


def welcome_motd(created: int) -> str:
    """html/user/motd.php for a new project: one news item, the project's from then on. Its title
    names PROJECT when the page is drawn, so it follows a long name set later."""
    text = ("The project's server is running and ready for volunteers. "
            "News about the project will appear here.")
    return f"""<?php
// Messages shown at the top of the home page's News panel, above the News forum's threads.
// boincserver wrote this welcome when the project was made; the file is yours to edit.
require_once("../inc/news.inc");

news_item({int(created)}, PROJECT.' is open', {php_string(text)});
?>
"""


# -- the forums ----------------------------------------------------------------------------
# create_forums.php:60-73: (category name, is_helpdesk, orderID, [(title, description, is_dev_blog)]),
# each forum's orderID as the script gives it.
FORUMS = (
    ("", 0, 0, ((0, "News", "News from this project", 1),
                (1, "Science", "Discussion of this project's science", 0),
                (2, "Number crunching", "Credit, leaderboards, CPU performance", 0),
                (3, "Cafe", "Meet and greet other participants", 0))),
    ("Platform-specific problems", 1, 0, ((0, "Windows", "Installing and running BOINC on Windows", 0),
                                          (1, "Unix/Linux", "Installing and running BOINC on Unix and Linux", 0),
                                          (2, "Macintosh", "Installing and running BOINC on Mac OS/X", 0))),
    ("General issues", 1, 1, ((3, "Getting started", "Creating your account", 0),
                              (4, "Preferences", "Using preferences", 0),
                              (6, "Web site", "Issues involving this web site", 0))),
)


def forum_statements() -> list[tuple[str, tuple]]:
    """The categories and forums create_forums.php makes, as statements that add the missing
    ones and change nothing else (the unique keys turn a repeat into a no-op)."""
    statements = []
    for name, helpdesk, order, forums in FORUMS:
        statements.append(("INSERT IGNORE INTO category (orderID, lang, name, is_helpdesk) VALUES (%s, 1, %s, %s)",
                           (order, name, helpdesk)))
        for forum_order, title, description, dev_blog in forums:
            statements.append((
                "INSERT IGNORE INTO forum (category, orderID, title, description, is_dev_blog) "
                "SELECT id, %s, %s, %s, %s FROM category WHERE name = %s AND is_helpdesk = %s",
                (forum_order, title, description, dev_blog, name, helpdesk)))
    return statements
