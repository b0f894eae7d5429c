"""The sealed stream of `boincserver backup`: round trip, wrong passphrase, cuts and changes."""

from __future__ import annotations

import io
import os

import pytest

from boincserver import backup
from boincserver.errors import InvalidInput


def _seal(sections: dict[str, list[bytes]], passphrase="a good passphrase") -> bytes:
    out = io.BytesIO()
    w = backup.SealedWriter(out, passphrase)
    for name, chunks in sections.items():
        backup.write_section(w, name, chunks)
    w.write(b"E")
    w.close()
    return out.getvalue()


def _open(blob: bytes, passphrase="a good passphrase") -> dict[str, bytes]:
    r = backup.OpenedReader(io.BytesIO(blob), passphrase)
    got = {}
    while (name := backup.next_section(r)) is not None:
        got[name] = b"".join(backup.section_chunks(r))
    return got


def test_round_trip_across_many_pieces():
    big = os.urandom(3 * backup.PIECE + 12345)
    blob = _seal({"manifest": [b"{}"], "database": [big[:1000], big[1000:]], "empty": []})
    assert _open(blob) == {"manifest": b"{}", "database": big, "empty": b""}
    assert big[:64] not in blob


def test_wrong_passphrase_cut_and_changed_files_are_refused():
    blob = _seal({"database": [os.urandom(2 * backup.PIECE)]})
    with pytest.raises(InvalidInput, match="wrong passphrase"):
        _open(blob, "another passphrase")
    with pytest.raises(InvalidInput, match="cut short"):
        _open(blob[:-50])
    # Cut exactly after a whole piece: the last piece is missing, which is seen too.
    first_piece_end = len(backup.MAGIC) + 24 + 4 + int.from_bytes(blob[len(backup.MAGIC) + 24:][:4], "big")
    with pytest.raises(InvalidInput, match="cut short"):
        _open(blob[:first_piece_end])
    changed = bytearray(blob)
    changed[len(backup.MAGIC) + 24 + 100] ^= 1
    with pytest.raises(InvalidInput):
        _open(bytes(changed))
    with pytest.raises(InvalidInput, match="not a boincserver project backup"):
        _open(b"something else entirely, long enough to be read" * 2)
