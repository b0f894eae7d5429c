"""BOINC's code-signing keys and signatures, in BOINC's own text formats.

BOINC signs every application file with a 1024-bit RSA key (the only size it accepts,
public exponent 65537) and clients check those signatures before they run anything.

Key files (what `crypt_prog -genkey 1024 PRIVATE PUBLIC` writes)::

    1024                        <- the bit count, in decimal
    <64 lowercase hex digits>   <- the key's bytes, 32 a line
    ...
    .                           <- the end

A public key is 256 bytes: modulus then public exponent, 128 bytes each. A private key is
704 bytes: n, e, d (128 bytes each), then p, q, d mod (p-1), d mod (q-1) and q^-1 mod p
(64 bytes each). Every number is big-endian and left-padded with zeros to its field.

Signatures (what `crypt_prog -sign FILE PRIVATE` and `sign_executable` write) have no
bit-count line: the 128 bytes of the RSA value as hex, 32 bytes a line, then a line `.`.
What is signed is the 32-character lowercase hex MD5 of the data, as ASCII, padded the way
PKCS#1 v1.5 pads a type-1 block (00 01 FF..FF 00 || data) but without a DigestInfo, so the
signature is the raw RSA private operation on that block, and it is deterministic.

`crypt_prog -sign_string` signs a string the same way (the MD5 of its bytes). A project that
changes its key signs the new public key's text with the old private key: 7.0+ clients check
it against the text stripped of leading and trailing whitespace (see key_change_signature).

Standard library only, except generate_keypair, which imports `cryptography` when called.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Union

KEY_BITS = 1024
PUBLIC_EXPONENT = 65537
MODULUS_BYTES = KEY_BITS // 8               # n, e, d
PRIME_BYTES = MODULUS_BYTES // 2            # p, q, dmp1, dmq1, iqmp
PUBLIC_KEY_BYTES = 2 * MODULUS_BYTES        # 256
PRIVATE_KEY_BYTES = 3 * MODULUS_BYTES + 5 * PRIME_BYTES  # 704
SIGNATURE_BYTES = MODULUS_BYTES             # 128
HEX_LINE_BYTES = 32                         # 64 hex digits a line
MD5_HEX_LEN = 32
# PKCS#1 v1.5 wants at least 8 padding bytes; BOINC's data is always 32 bytes, so it gets 93.
_MIN_PADDING = 8
_HEX_LINE = re.compile(r"(?:[0-9a-fA-F]{2})+")
# BOINC's strip_whitespace: ASCII isspace() characters, at both ends only.
_ASCII_SPACE = " \t\n\r\v\f"

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class PublicKey:
    """An RSA public key: modulus n and public exponent e."""

    n: int
    e: int

    def __repr__(self) -> str:
        return f"PublicKey(fingerprint={_safe_fingerprint(self)})"


@dataclass(frozen=True)
class PrivateKey:
    """An RSA private key with its CRT parameters, in BOINC's field order."""

    n: int
    e: int
    d: int
    p: int
    q: int
    dmp1: int
    dmq1: int
    iqmp: int

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.n, self.e)

    def __repr__(self) -> str:  # never print the secret numbers
        return f"PrivateKey(fingerprint={_safe_fingerprint(self.public)})"


@dataclass(frozen=True)
class KeyPair:
    private: PrivateKey
    public: PublicKey


# -- keys ---------------------------------------------------------------------------------
def generate_keypair() -> KeyPair:
    """A new 1024-bit key pair with e = 65537, made by the `cryptography` package."""
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError as exc:  # a declared dependency of the host package, not of the image
        raise RuntimeError("generating a BOINC key pair needs the 'cryptography' package") from exc
    numbers = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS).private_numbers()
    pub = numbers.public_numbers
    private = PrivateKey(n=pub.n, e=pub.e, d=numbers.d, p=numbers.p, q=numbers.q,
                         dmp1=numbers.dmp1, dmq1=numbers.dmq1, iqmp=numbers.iqmp)
    _check_private(private)
    return KeyPair(private, private.public)


def public_from_private(private: PrivateKey) -> PublicKey:
    return PublicKey(private.n, private.e)


def public_key_to_text(public: PublicKey) -> str:
    """The public key file's text, exactly as crypt_prog writes it."""
    _check_public(public)
    data = _int_bytes(public.n, MODULUS_BYTES, "modulus") + _int_bytes(public.e, MODULUS_BYTES, "exponent")
    return f"{KEY_BITS}\n" + _hex_block(data)


def private_key_to_text(private: PrivateKey) -> str:
    """The private key file's text, exactly as crypt_prog writes it."""
    _check_private(private)
    data = b"".join([
        _int_bytes(private.n, MODULUS_BYTES, "n"),
        _int_bytes(private.e, MODULUS_BYTES, "e"),
        _int_bytes(private.d, MODULUS_BYTES, "d"),
        _int_bytes(private.p, PRIME_BYTES, "p"),
        _int_bytes(private.q, PRIME_BYTES, "q"),
        _int_bytes(private.dmp1, PRIME_BYTES, "dmp1"),
        _int_bytes(private.dmq1, PRIME_BYTES, "dmq1"),
        _int_bytes(private.iqmp, PRIME_BYTES, "iqmp"),
    ])
    return f"{KEY_BITS}\n" + _hex_block(data)


def parse_public_key(text: str | bytes) -> PublicKey:
    """A public key from its file text; ValueError, saying what is wrong, if it is not one.

    Also takes the whitespace-stripped form BOINC sends in scheduler replies.
    """
    data = _parse_key_text(text, "public", PUBLIC_KEY_BYTES)
    public = PublicKey(n=_take(data, 0, MODULUS_BYTES), e=_take(data, MODULUS_BYTES, MODULUS_BYTES))
    _check_public(public)
    return public


def parse_private_key(text: str | bytes) -> PrivateKey:
    """A private key from its file text; ValueError, saying what is wrong, if it is not one."""
    data = _parse_key_text(text, "private", PRIVATE_KEY_BYTES)
    sizes = [MODULUS_BYTES] * 3 + [PRIME_BYTES] * 5
    values, offset = [], 0
    for size in sizes:
        values.append(_take(data, offset, size))
        offset += size
    private = PrivateKey(*values)
    _check_private(private)
    return private


def fingerprint(public: PublicKey | PrivateKey) -> str:
    """A short name for a key: the first 16 hex digits of the SHA-256 of its public key text.

    The text is exactly what public_key_to_text writes (and crypt_prog writes to the
    public key file), so `sha256sum code_sign_public | cut -c1-16` gives the same value.
    """
    if isinstance(public, PrivateKey):
        public = public.public
    return hashlib.sha256(public_key_to_text(public).encode("ascii")).hexdigest()[:16]


def _safe_fingerprint(public: PublicKey) -> str:
    try:
        return repr(fingerprint(public))
    except ValueError:
        return "<not a valid BOINC key>"


# -- signatures ---------------------------------------------------------------------------
def md5_hex_of_file(path: PathLike, chunk_size: int = 1 << 16) -> str:
    """The lowercase hex MD5 of a file's bytes, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sign_file(path: PathLike, private: PrivateKey) -> str:
    """The signature text `crypt_prog -sign FILE PRIVATE` (or sign_executable) writes."""
    return sign_md5_hex(md5_hex_of_file(path), private)


def verify_file_signature(path: PathLike, signature_text: str | bytes, public: PublicKey) -> bool:
    """Whether `signature_text` is a signature of the file by `public`'s private key.

    False for a well-formed signature that does not match; ValueError if the text is not
    a signature at all (see parse_signature).
    """
    return _verify_md5_hex(md5_hex_of_file(path), signature_text, public)


def sign_text(text: str | bytes, private: PrivateKey) -> str:
    """The signature text `crypt_prog -sign_string TEXT PRIVATE` writes (str is UTF-8 encoded).

    BOINC signs a C string, so text with a NUL byte is refused.
    """
    return sign_md5_hex(_md5_hex_of_text(text), private)


def verify_text_signature(text: str | bytes, signature_text: str | bytes, public: PublicKey) -> bool:
    """Whether `signature_text` signs `text` (what `crypt_prog -verify_string` checks)."""
    return _verify_md5_hex(_md5_hex_of_text(text), signature_text, public)


def key_change_signature(new_public: PublicKey, old_private: PrivateKey, *, stripped: bool = True) -> str:
    """The signature that lets clients holding the old key accept `new_public`.

    The scheduler sends signature_stripped_N to 7.0+ clients: it signs the new public key's
    text with leading and trailing whitespace removed. stripped=False gives signature_N for
    older clients: the key file's text as it is, final newline included.
    """
    text = public_key_to_text(new_public)
    return sign_text(text.strip(_ASCII_SPACE) if stripped else text, old_private)


def parse_signature(text: str | bytes) -> bytes:
    """The 128 bytes of a signature text; ValueError, saying what is wrong, if it is not one."""
    text = _as_text(text, "signature")
    lines = _hex_lines(text, "signature")
    if lines and lines[0] == str(KEY_BITS):
        raise ValueError(f"signature starts with a bit-count line ({KEY_BITS}) like a key file; "
                         "is this a key rather than a signature? Signatures have no such line")
    data = _decode_hex_lines(lines, "signature")
    if len(data) != SIGNATURE_BYTES:
        raise ValueError(f"signature has {len(data)} bytes of hex data; a BOINC signature has "
                         f"{SIGNATURE_BYTES} ({SIGNATURE_BYTES * 2} hex digits)")
    return data


# -- internals ----------------------------------------------------------------------------
def _hex_block(data: bytes) -> str:
    """Hex, 32 bytes a line, then a line '.', as BOINC prints key and signature data."""
    hexed = data.hex()
    step = HEX_LINE_BYTES * 2
    lines = [hexed[i:i + step] for i in range(0, len(hexed), step)]
    return "".join(line + "\n" for line in lines) + ".\n"


def _int_bytes(value: int, size: int, name: str) -> bytes:
    if value < 0 or value.bit_length() > size * 8:
        raise ValueError(f"key field {name} does not fit in its {size} bytes")
    return value.to_bytes(size, "big")


def _take(data: bytes, offset: int, size: int) -> int:
    return int.from_bytes(data[offset:offset + size], "big")


def _as_text(text: str | bytes, what: str) -> str:
    if isinstance(text, bytes):
        try:
            return text.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{what} is not ASCII text") from None
    if not isinstance(text, str):
        raise ValueError(f"{what} must be text, not {type(text).__name__}")
    return text


def _hex_lines(text: str, what: str) -> list[str]:
    """The hex lines of a block that must end with a line '.' (blank lines ignored)."""
    lines = [line.strip(_ASCII_SPACE) for line in text.strip(_ASCII_SPACE).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"{what} is empty")
    if "." not in lines:
        raise ValueError(f"{what} is missing its closing '.' line (the text may be cut short)")
    if lines[-1] != ".":
        raise ValueError(f"{what} has text after its closing '.' line")
    return lines[:-1]


def _decode_hex_lines(lines: list[str], what: str) -> bytes:
    for number, line in enumerate(lines, 1):
        if not _HEX_LINE.fullmatch(line):
            shown = line if len(line) <= 70 else line[:67] + "..."
            raise ValueError(f"{what}: hex line {number} is not an even number of hex digits: {shown!r}")
    return bytes.fromhex("".join(lines))


def _parse_key_text(text: str | bytes, kind: str, size: int) -> bytes:
    what = f"{kind} key"
    text = _as_text(text, what)
    body = text.strip(_ASCII_SPACE)
    if not body:
        raise ValueError(f"{what} is empty")
    first, _, rest = body.partition("\n")
    first = first.strip(_ASCII_SPACE)
    if not first.isdigit():
        raise ValueError(f"{what} must start with a line holding its bit count ({KEY_BITS}), "
                         f"not {first[:40]!r}")
    if int(first) != KEY_BITS:
        raise ValueError(f"{what} has bit count {int(first)}; BOINC only uses {KEY_BITS}-bit keys")
    data = _decode_hex_lines(_hex_lines(rest, what), what)
    if len(data) != size:
        other = "public" if kind == "private" else "private"
        other_size = PUBLIC_KEY_BYTES if kind == "private" else PRIVATE_KEY_BYTES
        hint = f" (that is the size of a {other} key)" if len(data) == other_size else ""
        raise ValueError(f"{what} has {len(data)} bytes of key data; a BOINC {kind} key has "
                         f"{size} ({size * 2} hex digits){hint}")
    return data


def _check_public(public: PublicKey) -> None:
    if public.n.bit_length() != KEY_BITS:
        raise ValueError(f"public key modulus has {public.n.bit_length()} bits, not {KEY_BITS}")
    if public.e < 3 or public.e % 2 == 0 or public.e >= public.n:
        raise ValueError(f"public key exponent {public.e} is not a usable RSA exponent")


def _check_private(private: PrivateKey) -> None:
    if private.n.bit_length() != KEY_BITS:
        raise ValueError(f"private key modulus has {private.n.bit_length()} bits, not {KEY_BITS}")
    p, q = private.p, private.q
    if p < 2 or q < 2 or p * q != private.n:
        raise ValueError("private key is inconsistent: p * q is not its modulus")
    if not 0 < private.d < private.n:
        raise ValueError("private key is inconsistent: its private exponent is out of range")
    if (private.e * private.d) % ((p - 1) * (q - 1) // _gcd(p - 1, q - 1)) != 1:
        raise ValueError("private key is inconsistent: d is not the inverse of e")
    if (private.dmp1 != private.d % (p - 1) or private.dmq1 != private.d % (q - 1)
            or (private.iqmp * q) % p != 1):
        raise ValueError("private key is inconsistent: its CRT parameters do not match p, q and d")


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _md5_hex_of_text(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if b"\0" in data:
        raise ValueError("BOINC signs C strings: the text must not contain a NUL byte")
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _padded_block(data: bytes) -> bytes:
    """PKCS#1 v1.5 type-1 padding, no DigestInfo: 00 01 FF..FF 00 || data."""
    return b"\x00\x01" + b"\xff" * (SIGNATURE_BYTES - 3 - len(data)) + b"\x00" + data


def sign_md5_hex(md5_hex: str, private: PrivateKey) -> str:
    """The signature of a file known by its hex MD5 (what update_versions writes as FILE.sig)."""
    m = int.from_bytes(_padded_block(md5_hex.encode("ascii")), "big")
    # CRT: the same value as pow(m, d, n), about three times faster.
    s1 = pow(m, private.dmp1, private.p)
    s2 = pow(m, private.dmq1, private.q)
    s = s2 + private.q * ((private.iqmp * (s1 - s2)) % private.p)
    if pow(s, private.e, private.n) != m:  # a fault check, as OpenSSL does
        raise ValueError("signing failed: the private key's numbers do not match each other")
    return _hex_block(s.to_bytes(SIGNATURE_BYTES, "big"))


def _verify_md5_hex(md5_hex: str, signature_text: str | bytes, public: PublicKey) -> bool:
    s = int.from_bytes(parse_signature(signature_text), "big")
    if s >= public.n:
        return False
    block = pow(s, public.e, public.n).to_bytes(SIGNATURE_BYTES, "big")
    if block[:2] != b"\x00\x01":
        return False
    end = block.find(b"\x00", 2)
    if end < 2 + _MIN_PADDING or block[2:end] != b"\xff" * (end - 2):
        return False
    return hmac.compare_digest(block[end + 1:], md5_hex.encode("ascii"))


def sign_md5s(md5s: list[str], private: PrivateKey) -> dict[str, str]:
    """A signature for each hex MD5: what a version's files need, signed in one go."""
    return {m: sign_md5_hex(m, private) for m in md5s}


# -- a key change (sched/handle_request.cpp) ------------------------------------------------
def key_change_slot(existing: dict[str, str], old_public_text: str) -> int:
    """N of the old_key_N to write: the first free one, or the one holding this old key.

    `existing` maps the key folder's old_key_N file names to their text.
    """
    n = 0
    while f"old_key_{n}" in existing and existing[f"old_key_{n}"] != old_public_text:
        n += 1
    return n


def key_change_files(slot: int, old_public_text: str, old_private: PrivateKey, new_public: PublicKey) -> dict[str, str]:
    """The files the scheduler reads to send clients holding the old key the new one, signed
    by the old private key: old_key_N, signature_N (older clients), signature_stripped_N."""
    return {f"old_key_{slot}": old_public_text,
            f"signature_{slot}": key_change_signature(new_public, old_private, stripped=False),
            f"signature_stripped_{slot}": key_change_signature(new_public, old_private)}
