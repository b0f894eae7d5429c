"""The project's accounts, in the apache service: the volunteer account of `boincserver volunteer up`.

BOINC makes the user: its own make_user (html/inc/user_util.inc), run with the project's PHP,
fills the row as the web site's sign-up does (authenticator, cross-project id, hashed password,
defaults). This module only looks the user up and answers its weak account key
(boinc.client.weak_account_key), which attaches computers to the account but cannot log in or
change it. The authenticator never leaves the service.
"""

from __future__ import annotations

from boincserver.boinc import client
from boincserver.container import common
from boincserver.container.common import ProjectFolder, Refused

# One volunteer account per project; .invalid is a reserved domain, so no mail ever goes out.
VOLUNTEER_EMAIL = "volunteer@boincserver.invalid"
VOLUNTEER_NAME = "boincserver volunteer"
USER_BY_EMAIL = "SELECT id, authenticator, passwd_hash FROM user WHERE email_addr = %s"

# Run in html/ops, where BOINC's own scripts run: their includes are relative to it. The
# password is random and never known (md5 of it and the e-mail address is what BOINC stores,
# hashed again): the account is used through its weak key only.
MAKE_USER_PHP = """
$cli_only = true;
require_once("../inc/util_ops.inc");
require_once("../inc/user_util.inc");
$user = make_user($argv[1], $argv[2], md5(random_string() . $argv[1]));
if (!$user) { fwrite(STDERR, "make_user refused the account\\n"); exit(1); }
"""


def _user_row(project: ProjectFolder) -> tuple | None:
    cursor = project.cursor()
    cursor.execute(USER_BY_EMAIL, (VOLUNTEER_EMAIL,))
    return cursor.fetchone()


def volunteer_account(project: ProjectFolder, args: list[str]) -> dict:
    """The volunteer user, made the first time: {"user_id", "weak_key", "created"}."""
    if args:
        raise Refused(f"volunteer-account takes no arguments, got {args!r}")
    row = _user_row(project)
    created = row is None
    if created:
        cmd = ["php", "-r", MAKE_USER_PHP, "--", VOLUNTEER_EMAIL, VOLUNTEER_NAME]
        common.run(cmd, what="BOINC's make_user", cwd=project.root / "html" / "ops")
        row = _user_row(project)
        if row is None:
            raise Refused(f"BOINC's make_user reported success but no user {VOLUNTEER_EMAIL} exists")
    user_id, authenticator, passwd_hash = row
    return {"user_id": int(user_id), "email": VOLUNTEER_EMAIL, "created": created,
            "weak_key": client.weak_account_key(int(user_id), authenticator, passwd_hash)}


COMMANDS = {"volunteer-account": volunteer_account}
