"""Looking for secret values where they must never be: image layers and the project folder.

The needles are every value of the catalogue's secrets: each password and token, and each
line of hex of every private key (a key is found even if only part of its file leaked).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Iterator

MIN_NEEDLE = 12  # shorter strings would match by chance


def needles(rows: list[dict]) -> dict[str, str]:
    """From `secrets show --reveal` rows: {needle: 'which secret'}."""
    found = {}
    for row in rows:
        value = row.get("value")
        if isinstance(value, dict):  # a key pair: the private key's secret hex lines
            for path, text in value.items():
                if path.endswith("_private"):
                    for line in private_hex_lines(text or ""):
                        found[line] = f"{row['name']} private key"
        elif value and len(value) >= MIN_NEEDLE:
            found[value] = row["name"]
    return found


def private_hex_lines(text: str) -> list[str]:
    """The lines of a BOINC private key file that hold private numbers.

    The file has 4 lines of n and 4 of e (public: e's are mostly zeros), then d, p, q and the
    CRT values (lines 9 to 22 of hex): those are the needles.
    """
    lines = [l.strip() for l in text.splitlines()[1:] if l.strip() and l.strip() != "."]
    return [l for l in lines[8:] if len(set(l)) > 4]


def scan_bytes(data: bytes, needles_: dict[str, str]) -> set[str]:
    return {label for needle, label in needles_.items() if needle.encode() in data}


def scan_image_archive(stream: io.BufferedIOBase, needles_: dict[str, str]) -> dict[str, set[str]]:
    """A `docker save` tar: every file of every layer is searched; {layer file: labels}."""
    hits: dict[str, set[str]] = {}
    with tarfile.open(fileobj=stream, mode="r|") as outer:
        for member in outer:
            if not member.isfile():
                continue
            data = outer.extractfile(member).read()
            labels = set()
            if member.name.endswith(".tar") or member.name.startswith("blobs/"):
                labels |= _scan_layer(data, needles_)
            labels |= scan_bytes(data, needles_)
            if labels:
                hits[member.name] = labels
    return hits


def _scan_layer(data: bytes, needles_: dict[str, str]) -> set[str]:
    try:
        layer = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except tarfile.TarError:
        return set()
    labels = set()
    with layer:
        for m in layer:
            if m.isfile():
                labels |= scan_bytes(layer.extractfile(m).read(), needles_)
    return labels


def scan_folder(folder: Path, needles_: dict[str, str]) -> dict[str, set[str]]:
    hits = {}
    for path in _files(folder):
        labels = scan_bytes(path.read_bytes(), needles_)
        if labels:
            hits[str(path.relative_to(folder))] = labels
    return hits


def _files(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            yield p
