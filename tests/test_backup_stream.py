"""sealed.py: the stream of `boincserver backup` and the blob of `secrets backup`: round trips,
wrong passphrases, cuts and changes."""

from __future__ import annotations

import io
import os

import pytest

from boincserver import sealed
from boincserver.errors import InvalidInput


def _seal(sections: dict[str, list[bytes]], passphrase="a good passphrase") -> bytes:
    out = io.BytesIO()
    w = sealed.SealedWriter(out, passphrase)
    for name, chunks in sections.items():
        sealed.write_section(w, name, chunks)
    sealed.end_sections(w)
    return out.getvalue()


def _open(blob: bytes, passphrase="a good passphrase") -> dict[str, bytes]:
    r = sealed.OpenedReader(io.BytesIO(blob), passphrase)
    got = {}
    while (name := sealed.next_section(r)) is not None:
        got[name] = b"".join(sealed.section_chunks(r))
    return got


def test_round_trip_across_many_pieces():
    big = os.urandom(3 * sealed.PIECE + 12345)
    blob = _seal({"manifest": [b"{}"], "database": [big[:1000], big[1000:]], "empty": []})
    assert _open(blob) == {"manifest": b"{}", "database": big, "empty": b""}
    assert big[:64] not in blob


def test_wrong_passphrase_cut_and_changed_files_are_refused():
    blob = _seal({"database": [os.urandom(2 * sealed.PIECE)]})
    with pytest.raises(InvalidInput, match="wrong passphrase"):
        _open(blob, "another passphrase")
    with pytest.raises(InvalidInput, match="cut short"):
        _open(blob[:-50])
    # Cut exactly after a whole piece: the last piece is missing, which is seen too.
    first_piece_end = len(sealed.STREAM_MAGIC) + 24 + 4 + int.from_bytes(blob[len(sealed.STREAM_MAGIC) + 24:][:4], "big")
    with pytest.raises(InvalidInput, match="cut short"):
        _open(blob[:first_piece_end])
    changed = bytearray(blob)
    changed[len(sealed.STREAM_MAGIC) + 24 + 100] ^= 1
    with pytest.raises(InvalidInput):
        _open(bytes(changed))
    with pytest.raises(InvalidInput, match="not a boincserver project backup"):
        _open(b"something else entirely, long enough to be read" * 2)


def test_blob_round_trip_and_refusals():
    blob = sealed.seal_blob(b"db=a password", "a good passphrase")
    assert blob.startswith(sealed.BLOB_MAGIC) and b"a password" not in blob
    assert sealed.open_blob(blob, "a good passphrase") == b"db=a password"
    with pytest.raises(InvalidInput, match="wrong passphrase"):
        sealed.open_blob(blob, "another passphrase")
    changed = bytearray(blob)
    changed[-1] ^= 1
    with pytest.raises(InvalidInput, match="changed"):
        sealed.open_blob(bytes(changed), "a good passphrase")
    # A project backup is not a secrets backup, and the other way round.
    with pytest.raises(InvalidInput, match="not a boincserver secrets backup"):
        sealed.open_blob(_seal({"manifest": [b"{}"]}), "a good passphrase")
    with pytest.raises(InvalidInput, match="not a boincserver project backup"):
        _open(blob + bytes(64))
