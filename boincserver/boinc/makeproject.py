"""BOINC's tools/make_project (server_release 1.6.2): its command line, and what boincserver
changes in the files it writes.

make_project creates PROJECT_ROOT itself and refuses an existing one; it writes the keys into
--key_dir when that folder has none, and the database settings into config.xml.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath


def make_project_command(src: str, project: str, url_base: str, project_root: str, project_host: str,
                         key_dir: str, user: str, db_host: str, db_password: str) -> list[str]:
    """make_project without questions; the project's name is also its database's and its
    long name. url_base is without a trailing '/'."""
    return [str(PurePosixPath(src) / "tools" / "make_project"), "--no_query", "--srcdir", src,
            "--url_base", url_base + "/", "--project_root", project_root, "--project_host", project_host,
            "--key_dir", key_dir.rstrip("/") + "/", "--user_name", user,
            "--db_host", db_host, "--db_user", user, "--db_passwd", db_password, "--db_name", project,
            project, project]


# Relative to PROJECT_ROOT.
PROJECT_INC = "html/project/project.inc"
OPS_HTACCESS = "html/ops/.htaccess"
SCHEDULERS_TXT = "html/user/schedulers.txt"


def php_string(value: str) -> str:
    """A PHP single-quoted string literal holding `value` (only \\ and ' are special there), for
    the PHP boincserver writes into html/project/ (project.inc, remote_apps.inc)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def project_inc_defaults(text: str, project: str) -> str:
    """The sample project.inc make_project copies, made fit to serve as it is."""
    # The sample sends every new account's address to an outside service: off by default.
    text = text.replace('define("USE_STOPFORUMSPAM", true);', 'define("USE_STOPFORUMSPAM", false);')
    # The sample's names are placeholders the pages would show as they are.
    text = text.replace('"REPLACE WITH PROJECT NAME"', f'"{project}"')
    return text.replace('"REPLACE WITH COPYRIGHT HOLDER"', f'"{project}"')


REMOTE_JOB_SUBMISSION = 'define("REMOTE_JOB_SUBMISSION", true);'


def project_inc_with_job_submission(text: str) -> str:
    """project.inc defining REMOTE_JOB_SUBMISSION, which shows the "Job submission" menu (file
    sandbox, submit, job status) to users with a user_submit row (html/inc/bootstrap.inc:187-219);
    the sample does not define it. Defined right after `<?php`, before project.inc requires
    util.inc, because bootstrap.inc reads it when it is included (23-25: submit_db.inc, which the
    menu needs). A project.inc that names it already (true or false) is left as it is."""
    if "REMOTE_JOB_SUBMISSION" in text or not text.startswith("<?php"):
        return text
    first, _, rest = text.partition("\n")
    return f"{first}\n{REMOTE_JOB_SUBMISSION}\n{rest}"


def ops_htaccess_with_password_file(text: str, password_file: str) -> str:
    """html/ops/.htaccess reading the ops area's passwords from `password_file`."""
    lines = [f"AuthUserFile {password_file}" if line.startswith("AuthUserFile") else line
             for line in text.splitlines()]
    return "\n".join(lines) + "\n"


def schedulers_txt_repaired(text: str) -> str:
    """schedulers.txt as make_project 1.6.2 writes it, where 1.4.7's wrote it broken: its
    setup_project.py put the word `url` into the link (href="url"") and a stray quote after
    the comment, so a client read "url" as a second scheduler. The URL comes from the comment,
    which 1.4.7 wrote right. Any other text is returned as it is."""
    found = re.search(r"<scheduler>([^<]+)</scheduler>", text)
    if 'href="url"' not in text or not found:
        return text
    url = found.group(1).strip()
    return f'\n<!-- <scheduler>{url}</scheduler> -->\n<link rel="boinc_scheduler" href="{url}">\n        '
