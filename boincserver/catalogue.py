"""The catalogue of secrets (top-level secrets/catalogue.toml), read into plain objects.

Standard library only: the apache and makeproject images ship this module next to boincserver.boinc.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

KINDS = ("password", "keypair", "token")
SERVICES = ("makeproject", "apache")


@dataclass(frozen=True)
class SecretFile:
    path: str
    readers: tuple[str, ...]


@dataclass(frozen=True)
class Secret:
    name: str
    kind: str
    description: str
    files: tuple[SecretFile, ...]
    rotate: str
    boinc: str
    length: int = 32
    user: str = ""

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]


def parse(text: str) -> dict[str, Secret]:
    data = tomllib.loads(text)
    secrets = {}
    for name, entry in data.items():
        if entry.get("kind") not in KINDS:
            raise ValueError(f"secret {name!r}: kind must be one of {', '.join(KINDS)}")
        files = []
        for f in entry.get("files", []):
            unknown = set(f.get("readers", [])) - set(SERVICES)
            if unknown:
                raise ValueError(f"secret {name!r}: unknown reader(s) {sorted(unknown)}; mysql reads no secret")
            files.append(SecretFile(f["path"], tuple(f.get("readers", []))))
        if not files:
            raise ValueError(f"secret {name!r} lists no files")
        secrets[name] = Secret(name=name, kind=entry["kind"], description=entry.get("description", ""),
                               files=tuple(files), rotate=entry["rotate"], boinc=entry.get("boinc", ""),
                               length=int(entry.get("length", 32)), user=entry.get("user", ""))
    return secrets


def load(path: Path) -> dict[str, Secret]:
    return parse(path.read_text())


def hidden_from(secrets: dict[str, Secret], service: str) -> list[str]:
    """Files of the secrets volume that `service` must see as empty."""
    return [f.path for s in secrets.values() for f in s.files if service not in f.readers]
