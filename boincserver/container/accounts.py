"""The project's accounts, in the apache service: the volunteer account of `boincserver volunteer up`
and the submitters of `boincserver user` (boinc/submitters.py has BOINC's rules for them).

BOINC makes the user: its own make_user (html/inc/user_util.inc), run with the project's PHP,
fills the row as the web site's sign-up does (authenticator, cross-project id, hashed password,
defaults). This module only looks the user up and answers its weak account key
(boinc.client.weak_account_key), which attaches computers to the account but cannot log in or
change it. The volunteer's authenticator never leaves the service; a submitter's is answered once,
when the account is made, because remote submission is signed with it (boincserver writes it
nowhere; the person it belongs to keeps it).
"""

from __future__ import annotations

from pathlib import Path

from boincserver.boinc import buda as bb
from boincserver.boinc import client
from boincserver.boinc import database
from boincserver.boinc import submitters as bs
from boincserver.container import common
from boincserver.container.common import ProjectFolder, Refused

# One volunteer account per project; .invalid is a reserved domain, so no mail ever goes out.
VOLUNTEER_EMAIL = "volunteer@boincserver.invalid"
VOLUNTEER_NAME = "boincserver volunteer"
USER_BY_EMAIL = "SELECT id, name, authenticator, passwd_hash FROM user WHERE email_addr = %s"

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


def _user_row(project: ProjectFolder, email: str = VOLUNTEER_EMAIL) -> tuple | None:
    cursor = project.cursor()
    cursor.execute(USER_BY_EMAIL, (email,))
    return cursor.fetchone()


def _make_user(project: ProjectFolder, email: str, name: str) -> tuple:
    """BOINC's make_user, then the row it made."""
    cmd = ["php", "-r", MAKE_USER_PHP, "--", email, name]
    common.run(cmd, what="BOINC's make_user", cwd=project.root / "html" / "ops")
    row = _user_row(project, email)
    if row is None:
        raise Refused(f"BOINC's make_user reported success but no user {email} exists")
    return row


def volunteer_account(project: ProjectFolder, args: list[str]) -> dict:
    """The volunteer user, made the first time: {"user_id", "weak_key", "created"}."""
    if args:
        raise Refused(f"volunteer-account takes no arguments, got {args!r}")
    row = _user_row(project)
    created = row is None
    if created:
        row = _make_user(project, VOLUNTEER_EMAIL, VOLUNTEER_NAME)
    user_id, _, authenticator, passwd_hash = row
    return {"user_id": int(user_id), "email": VOLUNTEER_EMAIL, "created": created,
            "weak_key": client.weak_account_key(int(user_id), authenticator, passwd_hash)}


# -- submitters --------------------------------------------------------------------------------
def _options(args: list[str], flags: set[str], repeated: set[str]) -> tuple[list[str], set[str], dict[str, list]]:
    """(positional words, flags given, {option: values}) of a helper's argument list."""
    words: list[str] = []
    given: set[str] = set()
    values: dict[str, list] = {name: [] for name in repeated}
    it = iter(args)
    for arg in it:
        if arg in flags:
            given.add(arg)
        elif arg in repeated:
            value = next(it, None)
            if value is None:
                raise Refused(f"{arg} needs a value")
            values[arg].append(value)
        elif arg.startswith("--"):
            raise Refused(f"unknown option {arg}")
        else:
            words.append(arg)
    return words, given, values


def _buda_desc(project: ProjectFolder, name: str) -> Path | None:
    """buda_apps/NAME/desc.json if NAME is a BUDA science app (boinc/buda.py)."""
    if not bb.NAME.fullmatch(name) or name.startswith("."):
        return None
    path = project.root / bb.app_dir(name) / bb.DESC_JSON
    return path if path.is_file() else None


def _app_ids(project: ProjectFolder, names: list[str]) -> tuple[list[int], list[Path]]:
    """The app rows' ids of the names, and the desc.json files of those that are BUDA science
    apps (submitted through the BOINC app `buda`, whose id is then among the ids). A BOINC app
    of that name comes first."""
    cursor = project.cursor()
    ids, descs = [], []
    for name in dict.fromkeys(names):
        cursor.execute(database.APP_BY_NAME, (name,))
        row = cursor.fetchone()
        desc = _buda_desc(project, name) if row is None else None
        if desc is not None:
            descs.append(desc)
            cursor.execute(database.APP_BY_NAME, (bb.BOINC_APP,))
            row = cursor.fetchone()
            if row is None:
                raise Refused(f"{name!r} is a BUDA app but the project has no app {bb.BOINC_APP!r} to run it: "
                              f"`boincserver app add {name} --docker DIR --buda` installs it; nothing was changed")
        if row is None:
            raise Refused(f"no app {name!r} in this project (see `boincserver app list`); nothing was changed")
        if int(row[0]) not in ids:
            ids.append(int(row[0]))
    return ids, descs


def _change_submitters(descs: list[Path], change, strict: bool = True) -> None:
    """desc.json of each BUDA app with its submitters changed (boinc/buda.py), in one step
    each; one that cannot be read is Refused, or (not strict) left as it is."""
    for path in descs:
        try:
            text = change(path.read_text())
        except bb.BudaError as exc:
            if not strict:
                continue
            raise Refused(f"{path.parent.name}'s {bb.DESC_JSON}: {exc}") from None
        common.replace_file(path, text)


def _buda_apps_of(project: ProjectFolder, user_id: int) -> list[str]:
    """The BUDA science apps whose desc.json lists user_id among its submitters."""
    out = []
    for path in sorted((project.root / bb.APPS_DIR).glob(f"*/{bb.DESC_JSON}")):
        try:
            if user_id in bb.parse_desc_json(path.read_text()).submitters:
                out.append(path.parent.name)
        except bb.BudaError:
            continue
    return out


def app_row_id(project: ProjectFolder, name: str) -> int | None:
    cursor = project.cursor()
    cursor.execute(database.APP_BY_NAME, (name,))
    row = cursor.fetchone()
    return int(row[0]) if row else None


def _submitter(project: ProjectFolder, user_id: int, email: str, name: str) -> dict:
    cursor = project.cursor()
    cursor.execute(bs.RIGHTS_OF, (user_id,))
    rights = cursor.fetchone()
    cursor.execute(bs.APPS_OF, (user_id,))
    apps = [row[0] for row in cursor.fetchall()]
    cursor.execute(bs.BATCHES_OF, (user_id,))
    (batches,) = cursor.fetchone()
    return bs.submitter_report(user_id, email, name, rights[0] if rights else 0, batches, apps) | {
        "may_submit": rights is not None, "buda_apps": _buda_apps_of(project, user_id)}


def _known_email(args: list[str], what: str) -> str:
    try:
        return bs.check_email(args[0])
    except bs.SubmitterError as exc:
        raise Refused(f"{exc}; nothing was changed") from None
    except IndexError:
        raise Refused(f"{what} needs the account's e-mail address") from None


def user_add(project: ProjectFolder, args: list[str]) -> dict:
    """`user-add EMAIL NAME [--app APP]... [--all]`: the account (made by BOINC's make_user when
    new) with the right to submit to those apps; its authenticator only when it is new."""
    words, flags, values = _options(args, {"--all"}, {"--app"})
    if len(words) != 2:
        raise Refused("user-add takes EMAIL NAME [--app APP]... [--all]")
    email = _known_email(words, "user-add")
    try:
        name = bs.check_name(words[1])
    except bs.SubmitterError as exc:
        raise Refused(f"{exc}; nothing was changed") from None
    submit_all = "--all" in flags
    if not submit_all and not values["--app"]:
        raise Refused("say what the account may submit to: --submit APP (repeatable) or --submit-all")
    app_ids, descs = _app_ids(project, values["--app"])  # every app checked before anything is made
    row = _user_row(project, email)
    created = row is None
    if created:
        row = _make_user(project, email, name)
    user_id, stored_name, authenticator, _ = row
    user_id = int(user_id)
    cursor = project.cursor()
    cursor.execute(bs.RIGHTS_OF, (user_id,))
    has_row = cursor.fetchone() is not None
    cursor.execute(bs.APP_IDS_OF, (user_id,))
    granted = {int(row[0]) for row in cursor.fetchall()}
    common.execute_all(cursor, bs.grant(user_id, app_ids, submit_all, has_row, granted))
    # BUDA's pages also ask the science app (html/inc/buda.inc:55-65): the owner or a submitter.
    _change_submitters(descs, lambda text: bb.desc_with_submitter(text, user_id))
    answer = _submitter(project, user_id, email, stored_name) | {"created": created}
    if created:
        answer["authenticator"] = authenticator
    return answer


def user_list(project: ProjectFolder, args: list[str]) -> list[dict]:
    """Every account with a right to submit."""
    if args:
        raise Refused(f"user-list takes no arguments, got {args!r}")
    cursor = project.cursor()
    cursor.execute(bs.APPS_OF_SUBMITTERS)
    apps: dict[int, list[str]] = {}
    for user_id, app in cursor.fetchall():
        apps.setdefault(int(user_id), []).append(app)
    cursor.execute(bs.SUBMITTERS)
    return [bs.submitter_report(uid, email, name, submit_all, batches, apps.get(int(uid), []))
            for uid, email, name, submit_all, batches in cursor.fetchall()]


def user_revoke(project: ProjectFolder, args: list[str]) -> dict:
    """`user-revoke EMAIL [--app APP]...`: the right to submit to those apps, or every right.
    The account itself stays (its batches and credit are its own)."""
    words, _, values = _options(args, set(), {"--app"})
    if len(words) != 1:
        raise Refused("user-revoke takes EMAIL [--app APP]...")
    email = _known_email(words, "user-revoke")
    row = _user_row(project, email)
    if row is None:
        raise Refused(f"no account {email} in this project (see `boincserver user list`)")
    user_id = int(row[0])
    app_ids, descs = _app_ids(project, values["--app"]) if values["--app"] else (None, [])
    if app_ids is None:
        descs = sorted((project.root / bb.APPS_DIR).glob(f"*/{bb.DESC_JSON}"))
    else:
        # The right to submit to `buda` stays while another BUDA app lists the account.
        others = set(_buda_apps_of(project, user_id)) - {d.parent.name for d in descs}
        buda_row = app_row_id(project, bb.BOINC_APP) if descs and others else None
        app_ids = [i for i in app_ids if i != buda_row]
    _change_submitters(descs, lambda text: bb.desc_without_submitter(text, user_id), strict=app_ids is not None)
    common.execute_all(project.cursor(), bs.revoke(user_id, app_ids))
    return _submitter(project, user_id, email, row[1])


COMMANDS = {"volunteer-account": volunteer_account, "user-add": user_add, "user-list": user_list,
            "user-revoke": user_revoke}
