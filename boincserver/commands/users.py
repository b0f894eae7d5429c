"""The `user` group: accounts that may submit jobs (remotely, with their authenticator)."""

from __future__ import annotations

from typing import List, Optional

import typer

from boincserver.commands.context import console, open_project

users_app = typer.Typer(no_args_is_help=True,
                        help="Submitters: BOINC accounts with the right to submit jobs: add, list, revoke.")


def _rights(user: dict) -> str:
    if user["submit_all"]:
        return "every app"
    buda = user.get("buda_apps") or []
    return ", ".join(user["apps"] + [f"{name} (BUDA)" for name in buda]) or "nothing"


@users_app.command("add")
def user_add(
    email: str = typer.Argument(..., help="The submitter's e-mail address (the account's key in BOINC)."),
    name: Optional[str] = typer.Option(None, help="The name shown on the project's pages (default: the "
                                                  "address's part before @)."),
    submit: List[str] = typer.Option([], "--submit", metavar="APP", help="An app the account may submit to "
                                                                        "(repeatable)."),
    submit_all: bool = typer.Option(False, "--submit-all", help="The account may submit to every app."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Make a BOINC account that may submit jobs, or grant an existing one more apps.

    A new account's authenticator is printed once and kept nowhere: hand it to its owner, who
    submits with `submit --remote URL --authenticator-file FILE` (or logs in to the project's web
    pages with the address and the authenticator as password)."""
    from boincserver import users
    result = users.add(open_project(), email, name, list(submit), submit_all)
    if json_out:
        console.json(result)
        return
    console.result(f"{'made' if result['created'] else 'granted'} account {result['user_id']} "
                   f"<{result['email']}>: may submit to {_rights(result)}")
    if "authenticator" in result:
        console.result(f"authenticator (shown once; store it in a file only its owner can read): "
                       f"{result['authenticator']}")


@users_app.command("list")
def user_list(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Accounts that may submit, what to, and how many batches each has."""
    from boincserver import users
    data = users.list_submitters(open_project())
    if json_out:
        console.json(data)
        return
    for user in data:
        console.result(f"{user['user_id']:>6}  {user['email']:32} {user['batches']:>5} batch(es)  "
                       f"{_rights(user)}")
    if not data:
        console.result("no submitters yet: `boincserver user add EMAIL --submit APP`")


@users_app.command("revoke")
def user_revoke(
    email: str = typer.Argument(..., help="The submitter's e-mail address."),
    submit: List[str] = typer.Option([], "--submit", metavar="APP",
                                     help="Revoke only this app (repeatable; default: every right)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Take away an account's right to submit (to some apps, or all of it).

    The account, its batches and its outputs stay."""
    from boincserver import users
    result = users.revoke(open_project(), email, list(submit))
    if json_out:
        console.json(result)
        return
    console.result(f"account {result['user_id']} <{result['email']}> may now submit to "
                   f"{_rights(result) if result['may_submit'] else 'nothing (no rights left)'}")
