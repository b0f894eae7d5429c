"""`boincserver secrets`: the project's secrets, driven by the catalogue in secrets/.

The values live in the secrets volume and are handled by the vault in the makeproject image,
run as a one-shot container (inproject.vault); they reach this process only through its
stdin and stdout (for --reveal, backup, and key export), never a command line.
"""

from __future__ import annotations

import os
from pathlib import Path

from boincserver import apps, paths, pins
from boincserver import scan as scanner
from boincserver.boinc import keys
from boincserver.catalogue import load as load_catalogue
from boincserver.context import Project, Reporter, read_volume_file, require_compose, restart_apache
from boincserver.errors import InvalidInput, ProjectError
from boincserver.inproject import vault, vault_json
from boincserver.sealed import open_blob, seal_blob

# Secrets whose new value the running daemons or Apache's mounts only see after a restart.
RESTART_AFTER = {"db", "upload", "code_sign", "ops", "recaptcha", "mail"}


def catalogue():
    return load_catalogue(paths.data_dir("secrets") / "catalogue.toml")


def _restart_apache(project: Project, reporter: Reporter) -> None:
    restart_apache(project, reporter, "so that the daemons and Apache's mounts see the new values")


def pending_rotation(project: Project) -> bool:
    return read_volume_file(project, "secrets", "pending/rotation.json") is not None


def recover(project: Project, reporter: Reporter) -> list[str]:
    """Finish a rotation a killed process left; the project works again afterwards."""
    if not pending_rotation(project):
        return []
    reporter.step("an interrupted secrets rotation was found: completing it")
    done = vault_json(project, ["recover"])["recovered"]
    _restart_apache(project, reporter)
    return done


def show(project: Project, reveal: bool = False, reporter: Reporter | None = None) -> list[dict]:
    """Each secret's name, kind and fingerprint (and value with `reveal`). With a reporter, a
    rotation a killed process left is completed first, so the values shown are those in use."""
    if reporter is not None:
        recover(project, reporter)
    return vault_json(project, ["show"] + (["--reveal"] if reveal else []))["secrets"]


def rotate(project: Project, reporter: Reporter, names: list[str], value: str | None = None) -> list[str]:
    known = set(catalogue())
    if not names or any(n not in known and n != "all" for n in names) or ("all" in names and len(names) > 1):
        raise InvalidInput(f"unknown secret(s) {' '.join(names)}: choose from {', '.join(sorted(known))}, or all")
    # On Swarm the database password is a Swarm secret and apache restarts through the stack:
    # a rotation would stop halfway, so none starts.
    require_compose(project)
    if "code_sign" in names:
        raise InvalidInput("the code-signing key changes with `boincserver secrets keys rotate`, "
                           "which also publishes the key change to attached clients")
    tokens = [n for n in names if n != "all" and catalogue()[n].kind == "token"]
    if tokens and not value:
        raise InvalidInput(f"{', '.join(tokens)} comes from an outside service: pass the new value on "
                           "standard input (`... | boincserver secrets rotate NAME --stdin`)")
    recover(project, reporter)
    done = vault_json(project, ["rotate", *names], (value or "").encode() if tokens else None)["rotated"]
    if set(done) & RESTART_AFTER:
        _restart_apache(project, reporter)
    return done


def rotate_code_sign(project: Project, reporter: Reporter) -> tuple[str, list[dict]]:
    """New code-signing key pair; attached clients receive it signed with the old key, and
    every app's newest version is released again signed with the new key."""
    require_compose(project)
    recover(project, reporter)
    vault_json(project, ["rotate", "code_sign"])
    _restart_apache(project, reporter)
    reporter.step("releasing every app's newest version again, signed with the new key")
    released = apps.rerelease_all(project)
    return next(r["fingerprint"] for r in show(project) if r["name"] == "code_sign"), released


# -- offline code signing ------------------------------------------------------------------
def export_private_key(project: Project, reporter: Reporter, keys_dir: Path) -> str:
    """Move the code-signing private key from the server into keys_dir; return its fingerprint."""
    require_compose(project)
    keys_dir = keys_dir.expanduser().absolute()
    target = keys_dir / "code_sign_private"
    if target.exists():
        raise InvalidInput(f"{target} exists already; nothing was changed. Choose an empty folder")
    text = vault(project, ["export-private", "code_sign"]).decode()
    if not text.strip():
        raise ProjectError("the server holds no code-signing private key (already exported?)")
    private = keys.parse_private_key(text)
    public = keys.public_from_private(private)
    keys_dir.mkdir(parents=True, exist_ok=True)
    _write_private(target, text)
    (keys_dir / "code_sign_public").write_text(keys.public_key_to_text(public))
    # Only now that the copy is safe on this machine is the server's removed.
    if keys.parse_private_key(target.read_text()) != private:
        raise ProjectError(f"{target} does not read back as written; the server keeps its key")
    vault_json(project, ["forget-private", "code_sign", keys.fingerprint(public)])
    _restart_apache(project, reporter)
    return keys.fingerprint(public)


def make_offline_keys(keys_dir: Path) -> keys.KeyPair:
    """At init with --offline-signing: a new pair whose private half never reaches the server."""
    keys_dir = keys_dir.expanduser().absolute()
    if (keys_dir / "code_sign_private").exists():
        private = keys.parse_private_key((keys_dir / "code_sign_private").read_text())
        return keys.KeyPair(private, keys.public_from_private(private))
    pair = keys.generate_keypair()
    keys_dir.mkdir(parents=True, exist_ok=True)
    _write_private(keys_dir / "code_sign_private", keys.private_key_to_text(pair.private))
    (keys_dir / "code_sign_public").write_text(keys.public_key_to_text(pair.public))
    return pair


def send_public_key(project: Project, public_text: str) -> str:
    return vault_json(project, ["set-public", "code_sign"], public_text.encode())["fingerprint"]


def sign_files(files: list[Path], keys_dir: Path) -> list[Path]:
    """Write FILE.sig beside each file, signed on this machine (update_versions uses them)."""
    private = keys.parse_private_key((keys_dir.expanduser() / "code_sign_private").read_text())
    written = []
    for f in files:
        sig = f.with_name(f.name + ".sig")
        sig.write_text(keys.sign_file(f, private))
        written.append(sig)
    return written


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# -- backup --------------------------------------------------------------------------------
def backup(project: Project, file: Path, passphrase: str) -> int:
    if file.exists():
        raise InvalidInput(f"{file} exists already; nothing was written. Choose a new file name")
    if len(passphrase) < 8:
        raise InvalidInput("the passphrase is too short: use 8 characters or more")
    blob = seal_blob(vault(project, ["backup"]), passphrase)
    tmp = file.with_name(file.name + ".part")
    _write_private(tmp, "")
    tmp.write_bytes(blob)
    tmp.replace(file)
    return len(blob)


def restore(project: Project, reporter: Reporter, file: Path, passphrase: str) -> list[str]:
    if not file.is_file():
        raise InvalidInput(f"{file} does not exist")
    require_compose(project)
    plain = open_blob(file.read_bytes(), passphrase)
    recover(project, reporter)
    done = vault_json(project, ["restore"], plain)["restored"]
    _restart_apache(project, reporter)
    return done


# -- scan ----------------------------------------------------------------------------------
def scan(project: Project, extra_images: list[str] | None = None) -> dict:
    """Every secret value searched in the project's images and its folder: {where: [secrets]}."""
    needles = scanner.needles(show(project, reveal=True))
    images = [project.image(s) for s in ("mysql", "makeproject", "apache")]
    images += [pins.base_image(n, project.settings.release.version) for n in pins.BASE_IMAGE_NAMES]
    images += list(extra_images or [])
    findings: dict[str, list[str]] = {}
    for image in images:
        stream = project.engine.save_image(image)
        try:
            for layer, labels in scanner.scan_image_archive(stream, needles).items():
                findings[f"{image}:{layer}"] = sorted(labels)
        finally:
            stream.close()
    for path, labels in scanner.scan_folder(project.dir, needles).items():
        findings[f"project folder: {path}"] = sorted(labels)
    return {"images": images, "secrets_searched": sorted(set(needles.values())), "findings": findings}
