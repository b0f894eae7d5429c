"""The project's submitters: accounts with the right to submit jobs, made and changed in the
apache service by boincserver-jobs (container/accounts.py; BOINC's rules in boinc/submitters.py)."""

from __future__ import annotations

from boincserver.boinc import submitters
from boincserver.context import Project
from boincserver.errors import InvalidInput
from boincserver.inproject import jobs_helper


def _checked_email(email: str) -> str:
    try:
        return submitters.check_email(email)
    except submitters.SubmitterError as exc:
        raise InvalidInput(str(exc), advice="give the submitter's e-mail address") from None


def add(project: Project, email: str, name: str | None, apps: list[str], submit_all: bool) -> dict:
    """The account EMAIL (made when new, named NAME) may submit to APPS or, with submit_all, to
    every app. Its answer has "authenticator" only when the account was made just now."""
    email = _checked_email(email)
    if not apps and not submit_all:
        raise InvalidInput("say what the account may submit to",
                           advice="add --submit APP (repeatable) or --submit-all")
    try:
        name = submitters.check_name(name if name is not None else email.split("@", 1)[0])
    except submitters.SubmitterError as exc:
        raise InvalidInput(str(exc), advice="give --name the person's name") from None
    args = ["user-add", email, name] + [a for app in apps for a in ("--app", app)]
    return jobs_helper(project, args + (["--all"] if submit_all else []))


def list_submitters(project: Project) -> list[dict]:
    return jobs_helper(project, ["user-list"])


def revoke(project: Project, email: str, apps: list[str]) -> dict:
    """Take away the right to submit to APPS, or every right (the account stays)."""
    email = _checked_email(email)
    return jobs_helper(project, ["user-revoke", email] + [a for app in apps for a in ("--app", app)])
