"""The secrets volume, driven by the catalogue: generate, show, rotate, back up, restore.

Runs in the makeproject job's container (the only one that mounts the whole volume). A
rotation is crash-safe: the new values are first written to a journal (pending/, which no
other service can see); then the change is made where it takes effect (MariaDB, config.xml,
key files), then the files are promoted, then the journal is removed. Each step can be
redone, so a run that finds a journal finishes it (roll forward) before anything else.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets as rand
import string
import tarfile
import time
import warnings
from pathlib import Path

from boincserver import catalogue
from boincserver.boinc import keys
from boincserver.container.common import Mounts, Owner, Refused

with warnings.catch_warnings():
    # Deprecated, but the standard library's only crypt(3); Apache checks $6$ lines with it.
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

PENDING = "pending"
JOURNAL = "pending/rotation.json"
# Letters and digits only: BOINC's PHP reads config.xml without XML unescaping.
ALPHABET = string.ascii_letters + string.digits
# Test hook: exit hard right after the named step of a rotation (journal, effect, promote).
FAULT_ENV = "BOINCSERVER_FAULT_AFTER"


def _fault(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        print(f"[vault] fault injected after step {step!r}", flush=True)
        os._exit(99)


def fingerprint_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Vault:
    """The secrets volume at mounts.secrets; files apache may read go to the BOINC user's
    group (`owner`), the others stay root's alone."""

    def __init__(self, mounts: Mounts = Mounts(), owner: Owner | None = None):
        self.root = mounts.secrets
        self.catalogue = catalogue.load(mounts.catalogue)
        self.owner = owner

    # -- files ---------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str | None:
        p = self.path(rel)
        return p.read_text() if p.is_file() else None

    def write(self, rel: str, text: str) -> None:
        """Atomic; readable by root and, where apache may read it, by the BOINC user."""
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        readers = self._readers(rel)
        mode = 0o640 if "apache" in readers else 0o600
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if self.owner and "apache" in readers:
            os.chown(tmp, -1, self.owner.gid)
        os.replace(tmp, p)

    def _readers(self, rel: str) -> tuple[str, ...]:
        for s in self.catalogue.values():
            for f in s.files:
                if f.path == rel:
                    return f.readers
        return ("makeproject",)

    def prepare(self) -> None:
        """Folders and permissions; the files hidden from apache exist (mounts need them)."""
        self.root.chmod(0o755)
        (self.root / PENDING).mkdir(exist_ok=True)
        (self.root / PENDING).chmod(0o700)
        keydir = self.root / "keys"
        keydir.mkdir(exist_ok=True)
        keydir.chmod(0o750)
        if self.owner:
            os.chown(keydir, -1, self.owner.gid)
        for s in self.catalogue.values():
            for f in s.files:
                if not self.path(f.path).exists():
                    self.write(f.path, "")

    # -- values --------------------------------------------------------------------------
    def value(self, name: str) -> str:
        return (self.read(self.catalogue[name].files[0].path) or "").strip()

    def new_values(self, name: str, supplied: str | None = None, old: dict | None = None) -> dict[str, str]:
        """Fresh file contents for one secret."""
        s = self.catalogue[name]
        if s.kind == "password":
            pw = "".join(rand.choice(ALPHABET) for _ in range(s.length))
            values = {s.files[0].path: pw}
            if name == "ops":
                values[s.files[1].path] = htpasswd_line(s.user or "admin", pw)
            return values
        if s.kind == "keypair":
            pair = keys.generate_keypair()
            return {s.files[0].path: keys.private_key_to_text(pair.private),
                    s.files[1].path: keys.public_key_to_text(pair.public)}
        if supplied is None:
            raise Refused(f"{name} is issued by an outside service: give its new value on standard input")
        return {s.files[0].path: supplied.strip() + "\n"}

    def ensure(self) -> list[str]:
        """Generate every password and key pair that has no value yet; tokens stay empty."""
        made = []
        for name, s in self.catalogue.items():
            if s.kind == "token":
                continue
            if all((self.read(p) or "").strip() for p in s.paths) or self.offline(name):
                continue
            for rel, text in self.new_values(name).items():
                self.write(rel, text)
            made.append(name)
        return made

    def offline(self, name: str) -> bool:
        """A key pair whose private half the operator keeps off the server."""
        s = self.catalogue[name]
        return (s.kind == "keypair" and (self.read(s.paths[1]) or "").strip() != ""
                and (self.read(s.paths[0]) or "").strip() == "")

    def show(self, reveal: bool = False) -> list[dict]:
        rows = []
        for name, s in self.catalogue.items():
            row = {"name": name, "kind": s.kind, "description": s.description, "boinc": s.boinc}
            if s.kind == "keypair":
                public = (self.read(s.paths[1]) or "").strip()
                row["set"] = bool(public)
                row["fingerprint"] = keys.fingerprint(keys.parse_public_key(public)) if public else None
                row["private_key"] = "offline" if self.offline(name) else ("on server" if public else "none")
                if reveal:
                    row["value"] = {p: self.read(p) for p in s.paths}
            else:
                v = self.value(name)
                row["set"] = bool(v)
                row["fingerprint"] = fingerprint_of(v) if v else None
                if reveal:
                    row["value"] = v
            rows.append(row)
        return rows

    # -- rotation --------------------------------------------------------------------------
    def pending(self) -> dict | None:
        text = self.read(JOURNAL)
        return json.loads(text) if text else None

    def begin(self, changes: dict[str, dict[str, str]], reason: str) -> dict:
        """Step 1: the journal holds every new value before anything else changes."""
        if self.pending():
            raise Refused("an earlier rotation is unfinished; it is completed first")
        journal = {"reason": reason, "started": time.time(), "changes": changes}
        self.write(JOURNAL, json.dumps(journal))
        _fault("journal")
        return journal

    def complete(self, effects) -> list[str]:
        """Steps 2-4 from the journal: effects, promote, clear. Every step may be redone."""
        journal = self.pending()
        if not journal:
            return []
        changes = journal["changes"]
        for name, values in changes.items():
            handler = self.catalogue[name].rotate
            # A restore puts a key pair back as it was: that is no key change to publish.
            if journal.get("reason") == "restore" and handler == "code-sign":
                continue
            effect = effects.get(handler)
            if effect:
                effect(name, values)
        _fault("effect")
        for values in changes.values():
            for rel, text in values.items():
                self.write(rel, text)
        _fault("promote")
        self.path(JOURNAL).unlink()
        return list(changes)

    # -- backup ------------------------------------------------------------------------------
    def backup_tar(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            manifest = json.dumps({"format": 1, "secrets": sorted(self.catalogue)}).encode()
            _add(tar, "MANIFEST.json", manifest)
            for s in self.catalogue.values():
                for rel in s.paths:
                    _add(tar, rel, (self.read(rel) or "").encode())
        return buf.getvalue()

    def changes_from_tar(self, data: bytes) -> dict[str, dict[str, str]]:
        """What a backup holds, checked against the catalogue, as a rotation's changes."""
        files = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    raise Refused(f"backup member {member.name!r} is not a file")
                files[member.name] = tar.extractfile(member).read().decode()
        if "MANIFEST.json" not in files:
            raise Refused("not a boincserver secrets backup (no MANIFEST.json)")
        changes = {}
        for name, s in self.catalogue.items():
            values = {rel: files[rel] for rel in s.paths if rel in files}
            # A secret the backup holds no value of (a token never set) keeps its current one.
            if any(v.strip() for v in values.values()):
                changes[name] = values
        return changes


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def htpasswd_line(user: str, password: str) -> str:
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))}\n"
