"""Who may submit jobs: BOINC's submit rights, as SQL and checks.

Facts from the pinned server source (db/schema.sql user_submit, user_submit_app;
html/inc/submit_util.inc has_file_access, has_submit_access, check_remote_submit_permissions;
html/user/submit_rpc_handler.php check_max_jobs_in_progress):

- An account may submit once it has a user_submit row: that alone lets it upload input files
  (job_file.php) and query its batches; submit_all=1 lets it submit to every app, otherwise one
  user_submit_app row per app it may submit to. manage_all and user_submit_app.manage are
  the rights of a project's managers (web pages); we grant neither.
- max_jobs_in_progress = 0 means no limit; quota and logical_start_time feed BOINC's
  scheduling of several submitters (adjust_user_priority) and start at 0.
- Remote calls carry the account's authenticator; BOINC answers an unknown one with "bad
  authenticator" and an account without the right with "no submit access" / "no file access".
"""

from __future__ import annotations

import re

Statement = tuple[str, tuple]


class SubmitterError(ValueError):
    """An e-mail address or a name BOINC would store but nobody could use."""


# A plain address: one @, a dotted domain, no spaces or quotes. BOINC's make_user checks again
# (html/inc/email.inc is_valid_email_syntax: PHP's FILTER_VALIDATE_EMAIL); this one runs first
# so that a typo is named before anything is made.
_EMAIL = re.compile(r"[^@\s\"'<>,;]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
MAX_EMAIL = 254  # user.email_addr is varchar(254)
MAX_NAME = 254  # user.name is varchar(254)


def check_email(address: str) -> str:
    address = address.strip()
    if len(address) > MAX_EMAIL or not _EMAIL.fullmatch(address):
        raise SubmitterError(f"{address!r} is not an e-mail address (name@example.org)")
    return address.lower()


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise SubmitterError(f"{name!r} is not a usable name: give 1 to {MAX_NAME} printable characters")
    return name


BATCHES_OF = "SELECT COUNT(*) FROM batch WHERE user_id=%s"
RIGHTS_OF = "SELECT submit_all FROM user_submit WHERE user_id=%s"
APP_IDS_OF = "SELECT app_id FROM user_submit_app WHERE user_id=%s"
APPS_OF = ("SELECT a.name FROM user_submit_app s JOIN app a ON a.id=s.app_id "
           "WHERE s.user_id=%s ORDER BY a.name")
# One row per submitter: what submitter_report reads (apps as a list of names, comma-joined).
SUBMITTERS = ("SELECT u.id, u.email_addr, u.name, s.submit_all, "
              "(SELECT COUNT(*) FROM batch b WHERE b.user_id=u.id) "
              "FROM user_submit s JOIN user u ON u.id=s.user_id ORDER BY u.id")
APPS_OF_SUBMITTERS = ("SELECT s.user_id, a.name FROM user_submit_app s JOIN app a ON a.id=s.app_id "
                      "ORDER BY s.user_id, a.name")


def grant(user_id: int, app_ids: list[int], submit_all: bool, has_row: bool, granted: set[int]) -> list[Statement]:
    """The statements that give user_id the right to submit to app_ids (or all apps), given
    whether it has a user_submit row and the apps it has already (`granted`).

    Rights only grow here: submit_all stays on once given, apps are added, none removed."""
    statements: list[Statement] = []
    if not has_row:
        statements.append(("INSERT INTO user_submit (user_id, quota, logical_start_time, submit_all, manage_all, "
                           "max_jobs_in_progress) VALUES (%s, 0, 0, %s, 0, 0)", (user_id, int(submit_all))))
    elif submit_all:
        statements.append(("UPDATE user_submit SET submit_all=1 WHERE user_id=%s", (user_id,)))
    for app_id in dict.fromkeys(app_ids):
        if app_id not in granted:  # (user_id, app_id) is user_submit_app's primary key
            statements.append(("INSERT INTO user_submit_app (user_id, app_id, manage) VALUES (%s, %s, 0)",
                               (user_id, app_id)))
    return statements


def revoke(user_id: int, app_ids: list[int] | None) -> list[Statement]:
    """Take away the right to submit to app_ids, or (None) every right, uploads included.

    With apps named, submit_all is cleared too: "not to this app" must hold whatever was
    granted before."""
    if app_ids is None:
        return [("DELETE FROM user_submit_app WHERE user_id=%s", (user_id,)),
                ("DELETE FROM user_submit WHERE user_id=%s", (user_id,))]
    return [("UPDATE user_submit SET submit_all=0 WHERE user_id=%s", (user_id,))] + [
        ("DELETE FROM user_submit_app WHERE user_id=%s AND app_id=%s", (user_id, app_id)) for app_id in app_ids]


def submitter_report(user_id: int, email: str, name: str, submit_all: int, batches: int, apps: list[str]) -> dict:
    """One submitter as `user list` shows it."""
    return {"user_id": int(user_id), "email": email, "name": name, "submit_all": bool(submit_all),
            "apps": sorted(apps), "batches": int(batches or 0)}
