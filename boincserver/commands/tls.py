"""The `tls` group: the certificate Apache serves for an https:// URL base."""

from __future__ import annotations

from pathlib import Path

import typer

from boincserver.commands.context import console, open_project

tls_app = typer.Typer(no_args_is_help=True,
                      help="HTTPS: the certificate served (by ACME, or your own files): show, set.")


@tls_app.command("show")
def tls_show(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """How the project serves HTTPS and the certificate Apache shows right now (never a key)."""
    from boincserver import certificates
    data = certificates.show(open_project())
    if json_out:
        console.json(data)
        return
    if not data["https"]:
        console.result(f"{data['url_base']}: plain HTTP (TLS {data['mode']})")
        return
    served = data["served"]
    console.result(f"{data['url_base']}: HTTPS on port {data['port']} ({data['mode']})")
    console.result(f"  certificate: serial {served['serial']}, until {served['not_after']}, by {served['issuer']}"
                   if served else "  certificate: none served yet")
    acme = data.get("acme")
    if acme and acme["problem"]:
        console.result(f"  ACME ({acme['directory']}): {acme['problem']}\n  fix: {acme['advice']}")


@tls_app.command("set")
def tls_set(
    cert: Path = typer.Option(..., "--cert", help="PEM file: the certificate, then its intermediates (fullchain)."),
    key: Path = typer.Option(..., "--key", help="PEM file: its private key, unencrypted."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Serve your own certificate for the project's https:// URL instead of one from ACME.

    Checked first (key, dates, host name); a running project switches with a graceful reload."""
    from boincserver import certificates
    from boincserver import project as core
    p = open_project()
    data = certificates.set_files(p, console, cert, key)
    if data["switch"]:
        console.step("serving HTTPS from these files from now on")
        core.up(p, console, changes={"tls": "files"})
    if json_out:
        console.json(data)
        return
    console.result(f"serving the certificate for {', '.join(data['names'])} until {data['not_after']} "
                   f"({data['days_left']} days)")
