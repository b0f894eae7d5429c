"""Sealing with a passphrase: AES-256-GCM under a key derived by scrypt, whole or as a stream.

`seal_blob`/`open_blob` seal one value held in memory (`secrets backup`, a few kB).
SealedWriter and OpenedReader seal a stream of any length (`backup`: the database dump and
the volumes' tar streams) in 1 MiB pieces, never whole in memory, each under a counter nonce
and the last one marked as last, so that a reordered, changed or cut stream is refused.
Named sections follow each other in such a stream.
"""

from __future__ import annotations

import secrets as rand
from typing import IO, Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from boincserver.errors import InvalidInput

BLOB_MAGIC = b"BOINCSERVER-SECRETS-BACKUP-1\n"
STREAM_MAGIC = b"BOINCSERVER-PROJECT-BACKUP-1\n"
PIECE = 1 << 20
END = b"E"  # after the last section


def derive_key(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2 ** 15, r=8, p=1).derive(passphrase.encode())


# -- one value -------------------------------------------------------------------------------
def seal_blob(plain: bytes, passphrase: str) -> bytes:
    salt, nonce = rand.token_bytes(16), rand.token_bytes(12)
    return BLOB_MAGIC + salt + nonce + AESGCM(derive_key(passphrase, salt)).encrypt(nonce, plain, BLOB_MAGIC)


def open_blob(blob: bytes, passphrase: str) -> bytes:
    if not blob.startswith(BLOB_MAGIC) or len(blob) < len(BLOB_MAGIC) + 28 + 16:
        raise InvalidInput("not a boincserver secrets backup; nothing was changed")
    body = blob[len(BLOB_MAGIC):]
    salt, nonce, sealed = body[:16], body[16:28], body[28:]
    try:
        return AESGCM(derive_key(passphrase, salt)).decrypt(nonce, sealed, BLOB_MAGIC)
    except InvalidTag:
        raise InvalidInput("wrong passphrase, or the backup file was changed; nothing was restored") from None


# -- a stream ---------------------------------------------------------------------
class SealedWriter:
    """Plain bytes in, sealed pieces out."""

    def __init__(self, out: IO[bytes], passphrase: str):
        salt, self._prefix = rand.token_bytes(16), rand.token_bytes(8)
        self._aead = AESGCM(derive_key(passphrase, salt))
        self._out = out
        self._buf = bytearray()
        self._n = 0
        out.write(STREAM_MAGIC + salt + self._prefix)

    def _seal(self, plain: bytes, last: bool) -> None:
        nonce = self._prefix + self._n.to_bytes(4, "big")
        sealed = self._aead.encrypt(nonce, plain, STREAM_MAGIC + (b"\1" if last else b"\0"))
        self._out.write(len(sealed).to_bytes(4, "big") + sealed)
        self._n += 1

    def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= PIECE:
            self._seal(bytes(self._buf[:PIECE]), False)
            del self._buf[:PIECE]

    def close(self) -> None:
        self._seal(bytes(self._buf), True)
        self._buf.clear()


class OpenedReader:
    """Sealed pieces in, plain bytes out; refuses a wrong passphrase, a change or a cut."""

    def __init__(self, src: IO[bytes], passphrase: str):
        head = src.read(len(STREAM_MAGIC) + 24)
        if not head.startswith(STREAM_MAGIC) or len(head) < len(STREAM_MAGIC) + 24:
            raise InvalidInput("not a boincserver project backup; nothing was changed")
        salt, self._prefix = head[len(STREAM_MAGIC):len(STREAM_MAGIC) + 16], head[len(STREAM_MAGIC) + 16:]
        self._aead = AESGCM(derive_key(passphrase, salt))
        self._src = src
        self._buf = bytearray()
        self._n = 0
        self._last = False

    def _open_next(self) -> None:
        size = self._src.read(4)
        if len(size) < 4:
            raise InvalidInput("the backup file is cut short")
        want = int.from_bytes(size, "big")
        sealed = self._src.read(want)
        if len(sealed) < want:
            raise InvalidInput("the backup file is cut short")
        nonce = self._prefix + self._n.to_bytes(4, "big")
        for last in (False, True):
            try:
                self._buf += self._aead.decrypt(nonce, sealed, STREAM_MAGIC + (b"\1" if last else b"\0"))
                self._last = last
                self._n += 1
                return
            except InvalidTag:
                continue
        raise InvalidInput("wrong passphrase, or the backup file was changed")

    def read(self, n: int) -> bytes:
        while len(self._buf) < n and not self._last:
            self._open_next()
        if len(self._buf) < n:
            raise InvalidInput("the backup file is cut short")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data


# -- sections ------------------------------------------------------------------------------
def write_section(w: SealedWriter, name: str, chunks: Iterable[bytes]) -> int:
    w.write(b"S" + bytes([len(name)]) + name.encode())
    total = 0
    for chunk in chunks:
        if chunk:
            w.write(len(chunk).to_bytes(4, "big") + chunk)
            total += len(chunk)
    w.write(b"\0\0\0\0")
    return total


def end_sections(w: SealedWriter) -> None:
    """The end mark after the last section, then the last sealed piece."""
    w.write(END)
    w.close()


def read_stream(src: IO[bytes], size: int = PIECE) -> Iterator[bytes]:
    while True:
        chunk = src.read(size)
        if not chunk:
            return
        yield chunk


def next_section(r: OpenedReader) -> str | None:
    kind = r.read(1)
    if kind == END:
        return None
    if kind != b"S":
        raise InvalidInput("the backup file is not in a known format")
    return r.read(r.read(1)[0]).decode()


def section_chunks(r: OpenedReader) -> Iterator[bytes]:
    while True:
        n = int.from_bytes(r.read(4), "big")
        if n == 0:
            return
        yield r.read(n)


class SectionFeed:
    """One section of the reader, fed to a command's stdin; `rest()` skips what the command
    did not take (it stopped early), so that the next section is read from its start."""

    def __init__(self, r: OpenedReader):
        self._chunks = section_chunks(r)

    def feed(self, dst: IO[bytes]) -> None:
        for chunk in self._chunks:
            dst.write(chunk)

    def rest(self) -> None:
        for _ in self._chunks:
            pass
