"""The `secrets` group and its `secrets keys` subgroup (the code-signing key)."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from boincserver.commands.context import console, open_project, passphrase

secrets_app = typer.Typer(no_args_is_help=True, help="The project's secrets: show, rotate, back up, restore.")
keys_app = typer.Typer(no_args_is_help=True, help="The code-signing key: keep it offline, rotate it, sign files.")
secrets_app.add_typer(keys_app, name="keys")


@secrets_app.command("show")
def secrets_show(reveal: bool = typer.Option(False, "--reveal", help="Also print the values."),
                 json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Each secret's name, kind and fingerprint (values only with --reveal)."""
    from boincserver import secrets
    rows = secrets.show(open_project(), reveal=reveal, reporter=console)
    if json_out:
        console.json(rows)
        return
    for r in rows:
        state = r["fingerprint"] or "not set"
        extra = f"  private key: {r['private_key']}" if "private_key" in r else ""
        console.result(f"{r['name']:10} {r['kind']:8} {state}{extra}")
        if reveal and r.get("value") is not None:
            console.result(f"           {r['value']}")


@secrets_app.command("rotate")
def secrets_rotate(names: List[str] = typer.Argument(..., help="db, ops, mail, recaptcha, upload, or all."),
                   stdin: bool = typer.Option(False, "--stdin", help="Read the new value (mail, recaptcha) from standard input.")):
    """Give secrets new values that really take effect (MariaDB, Apache, the daemons)."""
    import sys
    from boincserver import secrets
    value = sys.stdin.read() if stdin else None
    done = secrets.rotate(open_project(), console, names, value)
    console.result("rotated: " + ", ".join(done))


@secrets_app.command("backup")
def secrets_backup(file: Path = typer.Argument(..., help="The new, encrypted backup file.")):
    """Write every secret into FILE, encrypted and authenticated with a passphrase."""
    from boincserver import secrets
    size = secrets.backup(open_project(), file, passphrase(confirm=True))
    console.result(f"wrote {file} ({size} bytes, AES-256-GCM, scrypt key); keep the passphrase apart")


@secrets_app.command("restore")
def secrets_restore(file: Path = typer.Argument(..., help="A file written by `secrets backup`.")):
    """Put the secrets of a backup back into effect (a wrong passphrase changes nothing)."""
    from boincserver import secrets
    done = secrets.restore(open_project(), console, file, passphrase(confirm=False))
    console.result("restored: " + ", ".join(done))


@secrets_app.command("scan")
def secrets_scan(image: List[str] = typer.Option([], "--image", help="Also scan this image (repeatable)."),
                 json_out: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Search every image layer and the project folder for every secret value."""
    from boincserver import secrets
    report = secrets.scan(open_project(), image)
    if json_out:
        console.json(report)
    else:
        console.result(f"searched {len(report['images'])} images and the project folder for: "
                       + ", ".join(report["secrets_searched"]))
        for where, found in report["findings"].items():
            console.result(f"FOUND {', '.join(found)} in {where}")
        if not report["findings"]:
            console.result("no secret found")
    if report["findings"]:
        raise typer.Exit(1)


@keys_app.command("export")
def keys_export(keys_dir: Path = typer.Argument(..., help="A folder outside every container.")):
    """Move the code-signing private key off the server into KEYS_DIR (offline signing)."""
    from boincserver import secrets
    fp = secrets.export_private_key(open_project(), console, keys_dir)
    console.result(f"code-signing key {fp} is now only in {keys_dir}; sign apps with "
                   f"`boincserver secrets keys sign --keys-dir {keys_dir} FILE...`")


@keys_app.command("rotate")
def keys_rotate():
    """A new code-signing key; attached clients accept it through BOINC's key-change files."""
    from boincserver import secrets
    fp, released = secrets.rotate_code_sign(open_project(), console)
    console.result(f"new code-signing key {fp}")
    for r in released:
        console.result(f"re-released {r['app']} {r['platform']}: {r['from']} -> {r['to']}")


@keys_app.command("sign")
def keys_sign(files: List[Path] = typer.Argument(..., help="Application files to sign."),
              keys_dir: Path = typer.Option(..., help="The folder holding code_sign_private.")):
    """Write FILE.sig beside each file, signed here; update_versions then uses the .sig."""
    from boincserver import secrets
    for sig in secrets.sign_files(files, keys_dir):
        console.result(f"created   {sig}")
