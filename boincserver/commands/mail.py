"""The `mail` group: the project's SMTP settings and a real test message."""

from __future__ import annotations

from typing import Optional

import typer

from boincserver.commands.context import console, open_project

mail_app = typer.Typer(no_args_is_help=True,
                       help="The project's mail (password resets, account e-mails): set, show, test.")


def _print(data: dict) -> None:
    if not data["configured"]:
        console.result("no mail: BOINC's pages cannot send any (set it with `boincserver mail set`)")
        return
    user = f" as {data['user']}" if data["user"] else ""
    console.result(f"SMTP {data['host']}:{data['port']} ({data['tls']}){user}, from {data['from']}")


@mail_app.command("set")
def mail_set(
    host: Optional[str] = typer.Option(None, help="The SMTP server's host name or address."),
    port: Optional[int] = typer.Option(None, help="Its port (default: 25 for none, 587 for starttls, 465 for tls)."),
    tls: Optional[str] = typer.Option(None, help="none, starttls or tls (SMTPS)."),
    user: Optional[str] = typer.Option(None, help="The SMTP user (\"\": no authentication). The password is the "
                                                  "secret `mail`: `boincserver secrets rotate mail --stdin`."),
    sender: Optional[str] = typer.Option(None, "--from", help="The sender address of the project's mail."),
    clear: bool = typer.Option(False, "--clear", help="No mail (as BOINC's sample project)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Save the project's SMTP settings in boincserver.toml; `boincserver up` applies them."""
    from boincserver import mail
    data = mail.set_mail(open_project(), host=host, port=port, tls=tls, user=user, sender=sender, clear=clear)
    if json_out:
        console.json(data)
        return
    _print(data)
    if data["changed"]:
        console.result("saved; `boincserver up` applies it, then `boincserver mail test ADDRESS`")


@mail_app.command("show")
def mail_show(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """The project's SMTP settings (the password is never shown)."""
    from boincserver import mail
    data = mail.show(open_project())
    console.json(data) if json_out else _print(data)


@mail_app.command("test")
def mail_test(
    address: str = typer.Argument(..., help="Where to send the test message."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Send a real message through the project's own mail path (BOINC's send_email() in the
    apache service), as its password-reset page would."""
    from boincserver import mail
    data = mail.send_test(open_project(), address)
    if json_out:
        console.json(data)
        return
    server = data["server"]
    console.result(f"sent to {data['address']} through {server['host']}:{server['port']} ({server['tls']})"
                   + (f"; the server said: {data['smtp_answer']}" if data["smtp_answer"] else ""))
