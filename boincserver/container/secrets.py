"""`boincserver-project-setup secrets|sign-md5|db-user`: what the host runs, in a one-shot
makeproject container, on the secrets volume (which only that service mounts whole).

Secret values come in on stdin and go out on stdout, never on a command line.
"""

from __future__ import annotations

from typing import IO, Callable

from boincserver.boinc import configxml, keys, naming
from boincserver.container import common
from boincserver.container.common import Mounts, Owner, Refused
from boincserver.container.vault import Vault

Effect = Callable[[str, dict], None]
RECAPTCHA_FORMAT = "reCAPTCHA needs two lines: the public key, then the private key"
OFFLINE_KEY_CHANGE = ("the code-signing private key is offline, and the key change must be signed "
                      "with it: rotating an offline key is not supported yet")


def recaptcha_pair(text: str | None) -> tuple[str, str] | None:
    """The secret's value: the public key's line, then the private key's."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return (lines[0], lines[1]) if len(lines) >= 2 else None


def edit_config(mounts: Mounts, edit: Callable[[str], str]) -> None:
    """config.xml on the project volume, changed in place (nothing before the project exists)."""
    path = mounts.project / "config.xml"
    if path.is_file():
        common.replace_file(path, edit(path.read_text()))


def apply_secrets_to_config(mounts: Mounts, vault: Vault) -> None:
    """config.xml carries the current database password and reCAPTCHA keys at every start."""
    def edit(text: str) -> str:
        text = configxml.set_element(text, "db_passwd", vault.value("db"))
        pair = recaptcha_pair(vault.read("recaptcha_keys"))
        return configxml.with_recaptcha_keys(text, *pair) if pair else text
    edit_config(mounts, edit)


def write_key_change(mounts: Mounts, vault: Vault, values: dict[str, str]) -> None:
    """BOINC's code-signing key change (see keys.key_change_files) into the key folder."""
    old_private_text = (vault.read("keys/code_sign_private") or "").strip()
    old_public_text = vault.read("keys/code_sign_public") or ""
    new_public = keys.parse_public_key(values["keys/code_sign_public"])
    if not old_private_text:
        raise Refused(OFFLINE_KEY_CHANGE)
    existing = {p.name: p.read_text() for p in mounts.keys.glob("old_key_*")}
    slot = keys.key_change_slot(existing, old_public_text)
    for name, text in keys.key_change_files(slot, old_public_text, keys.parse_private_key(old_private_text),
                                            new_public).items():
        (mounts.keys / name).write_text(text)
        (mounts.keys / name).chmod(0o644)


def effects(mounts: Mounts, project: str, owner: Owner, vault: Vault) -> dict[str, Effect]:
    """What makes a new value take effect, by the catalogue's `rotate` field."""
    def database(_name: str, values: dict) -> None:
        password = values["db_password"].strip()
        common.ensure_db_user(common.connect_as_root(mounts.mysql_socket), project, owner.name, password)
        edit_config(mounts, lambda text: configxml.set_element(text, "db_passwd", password))

    def recaptcha(_name: str, values: dict) -> None:
        pair = recaptcha_pair(values["recaptcha_keys"])
        if not pair:
            raise Refused(RECAPTCHA_FORMAT)
        edit_config(mounts, lambda text: configxml.with_recaptcha_keys(text, *pair))

    return {"database": database, "recaptcha": recaptcha,
            "code-sign": lambda _name, values: write_key_change(mounts, vault, values)}


def _rotate(vault: Vault, fx: dict[str, Effect], rest: list[str], stdin: IO[bytes]) -> list[str]:
    # `all`: every generated secret; not the code-signing key (its change is published to
    # clients: `secrets keys rotate`) and not the tokens outside services issue.
    names = [n for n, sec in vault.catalogue.items() if sec.kind != "token" and sec.rotate != "code-sign"] \
        if rest == ["all"] else rest
    unknown = [n for n in names if n not in vault.catalogue]
    if unknown or not names:
        raise Refused(f"unknown secret(s) {unknown}: choose from {', '.join(vault.catalogue)} or all")
    supplied = stdin.read().decode() if any(vault.catalogue[n].kind == "token" for n in names) else None
    # Checked before the journal is written: a journal must always be completable.
    if "recaptcha" in names and not recaptcha_pair(supplied):
        raise Refused(RECAPTCHA_FORMAT)
    if any(vault.catalogue[n].rotate == "code-sign" and vault.offline(n) for n in names):
        raise Refused(OFFLINE_KEY_CHANGE)
    vault.begin({n: vault.new_values(n, supplied) for n in names}, "rotate")
    return vault.complete(fx)


def _forget_private(vault: Vault, name: str, expected: str) -> bool:
    """Remove a private key the operator has exported, once it is sure to be the server's."""
    public = keys.parse_public_key(vault.read(f"keys/{name}_public") or "")
    private_text = (vault.read(f"keys/{name}_private") or "").strip()
    if not private_text:
        return False
    if keys.fingerprint(public) != expected or keys.public_from_private(keys.parse_private_key(private_text)) != public:
        raise Refused("the exported key does not match the server's; nothing was removed")
    vault.write(f"keys/{name}_private", "")
    return True


def secrets_command(args: list[str], mounts: Mounts, environ: dict[str, str], stdin: IO[bytes]) -> dict | bytes:
    """`boincserver-project-setup secrets CMD ...`: what `boincserver secrets` runs in here.
    A dict is printed as JSON; bytes go to stdout as they are."""
    project = naming.check_project_name(common.required_env(environ, "PROJECT"))
    owner = Owner.named(naming.check_boinc_user(common.required_env(environ, "BOINC_USER")))
    vault = Vault(mounts, owner)
    vault.prepare()
    fx = effects(mounts, project, owner, vault)
    out: dict = {"recovered": vault.complete(fx)}
    cmd, rest = (args[0], args[1:]) if args else ("show", [])
    if cmd == "recover":
        pass
    elif cmd == "show":
        out["secrets"] = vault.show(reveal="--reveal" in rest)
    elif cmd == "rotate":
        out["rotated"] = _rotate(vault, fx, rest, stdin)
    elif cmd == "backup":
        return vault.backup_tar()
    elif cmd == "restore":
        vault.begin(vault.changes_from_tar(stdin.read()), "restore")
        out["restored"] = vault.complete(fx)
    elif cmd == "export-private":
        return (vault.read(f"keys/{rest[0]}_private") or "").encode()
    elif cmd == "forget-private":
        name, expected = rest
        out["forgotten"] = _forget_private(vault, name, expected)
    elif cmd == "set-public":
        name = rest[0]
        public = keys.parse_public_key(stdin.read().decode())
        if (vault.read(f"keys/{name}_private") or "").strip():
            raise Refused(f"{name}: the server already has a private key; export it instead")
        vault.write(f"keys/{name}_public", keys.public_key_to_text(public))
        vault.write(f"keys/{name}_private", "")
        out["fingerprint"] = keys.fingerprint(public)
    else:
        raise Refused(f"unknown secrets command {cmd!r}")
    return out


def sign_md5(args: list[str], mounts: Mounts) -> dict | None:
    """`sign-md5 MD5...`: each MD5 signed with the project's code-signing key (the key_dir
    config.xml names); None (printed as null) if the private key is kept offline."""
    folder = configxml.key_dir((mounts.project / "config.xml").read_text())
    if folder is None:
        raise Refused("config.xml names no <key_dir>: it is not a BOINC project's config.xml")
    try:
        text = open(f"{folder}/code_sign_private").read().strip()
    except OSError:
        text = ""
    return keys.sign_md5s(args, keys.parse_private_key(text)) if text else None


def db_user(mounts: Mounts, environ: dict[str, str]) -> dict:
    """`db-user`: the project's MariaDB user, with the password the secrets volume holds (after
    a restore: the database is back, its user is not), or on Swarm the Swarm secret (the job
    runs on the database's node, which has no secrets volume)."""
    project = naming.check_project_name(common.required_env(environ, "PROJECT"))
    user = naming.check_boinc_user(common.required_env(environ, "BOINC_USER"))
    password = common.swarm_db_password(environ) or Vault(mounts).value("db")
    if not password:
        raise Refused("the secrets volume holds no database password: restore the secrets first")
    common.ensure_db_user(common.connect_as_root(mounts.mysql_socket), project, user, password)
    return {"db_user": user, "database": project}
