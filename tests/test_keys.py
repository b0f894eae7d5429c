"""BOINC code-signing keys and signatures: formats, round trips and known answers from crypt_prog."""

from __future__ import annotations

import ast
import hashlib
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from boincserver.boinc import keys
from boincserver.boinc.keys import PrivateKey, PublicKey

# Throwaway keys made once with BOINC's crypt_prog; see the README beside them.
FIXTURES = Path(__file__).parent / "fixtures" / "keys"
HEX_LINE = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def pair():
    return keys.generate_keypair()


@pytest.fixture(scope="module")
def other_pair():
    return keys.generate_keypair()


@pytest.fixture
def fixture_private() -> PrivateKey:
    return keys.parse_private_key((FIXTURES / "test_only_private_key").read_text())


@pytest.fixture
def fixture_public() -> PublicKey:
    return keys.parse_public_key((FIXTURES / "test_only_public_key").read_text())


def hex_body(text: str) -> list[str]:
    """The hex lines of a key or signature text, checking BOINC's layout on the way."""
    assert text.endswith(".\n")
    lines = text.split("\n")
    assert lines[-1] == "" and lines[-2] == "."
    body = lines[:-2]
    assert all(HEX_LINE.fullmatch(line) for line in body), body
    return body


# -- generation and round trips -----------------------------------------------------------
def test_generated_keypair_is_1024_bit_with_e_65537(pair):
    assert pair.private.n.bit_length() == 1024
    assert pair.private.e == pair.public.e == 65537
    assert pair.public == keys.public_from_private(pair.private) == pair.private.public


def test_private_key_round_trip(pair):
    text = keys.private_key_to_text(pair.private)
    assert keys.parse_private_key(text) == pair.private
    assert keys.private_key_to_text(keys.parse_private_key(text)) == text


def test_public_key_round_trip(pair):
    text = keys.public_key_to_text(pair.public)
    assert keys.parse_public_key(text) == pair.public
    assert keys.public_key_to_text(keys.parse_public_key(text)) == text


def test_two_generated_keys_differ(pair, other_pair):
    assert pair.public != other_pair.public
    assert keys.fingerprint(pair.public) != keys.fingerprint(other_pair.public)


# -- text layout --------------------------------------------------------------------------
def test_public_key_text_layout(pair):
    text = keys.public_key_to_text(pair.public)
    first, rest = text.split("\n", 1)
    assert first == "1024"
    body = hex_body(rest)
    assert len(body) == 8
    assert len("".join(body)) == 256 * 2
    assert int("".join(body)[:256], 16) == pair.public.n
    assert int("".join(body)[256:], 16) == 65537


def test_private_key_text_layout(pair):
    text = keys.private_key_to_text(pair.private)
    first, rest = text.split("\n", 1)
    assert first == "1024"
    body = hex_body(rest)
    assert len(body) == 22
    data = "".join(body)
    assert len(data) == (3 * 128 + 5 * 64) * 2
    fields = [data[:256], data[256:512], data[512:768]] + [data[768 + i * 128:768 + (i + 1) * 128]
                                                            for i in range(5)]
    p = pair.private
    assert [int(f, 16) for f in fields] == [p.n, p.e, p.d, p.p, p.q, p.dmp1, p.dmq1, p.iqmp]


def test_signature_text_layout_has_no_bit_count_line(pair, tmp_path):
    f = tmp_path / "data"
    f.write_bytes(b"some data\n")
    sig = keys.sign_file(f, pair.private)
    body = hex_body(sig)
    assert len(body) == 4  # 128 bytes, nothing else: no "1024" line
    assert len(keys.parse_signature(sig)) == 128


def test_signature_keeps_leading_zero_bytes(pair, tmp_path):
    # About one signature in 256 starts with a zero byte; it must still be 128 bytes long.
    f = tmp_path / "data"
    for i in range(5000):
        f.write_text(f"attempt {i}\n")
        sig = keys.sign_file(f, pair.private)
        if sig.startswith("00"):
            break
    else:
        pytest.fail("no signature with a leading zero byte in 5000 tries")
    assert len("".join(hex_body(sig))) == 256
    assert keys.verify_file_signature(f, sig, pair.public)


# -- signing and verifying ----------------------------------------------------------------
def test_sign_and_verify_round_trip(pair, tmp_path):
    f = tmp_path / "app_1.0_x86_64-pc-linux-gnu"
    f.write_bytes(bytes(range(256)) * 100)
    sig = keys.sign_file(f, pair.private)
    assert keys.verify_file_signature(f, sig, pair.public)
    assert keys.sign_file(f, pair.private) == sig  # deterministic
    assert keys.verify_file_signature(str(f), sig.encode("ascii"), pair.public)


def test_verification_fails_for_a_changed_file(pair, tmp_path):
    f = tmp_path / "data"
    f.write_bytes(b"original\n")
    sig = keys.sign_file(f, pair.private)
    f.write_bytes(b"0riginal\n")
    assert keys.verify_file_signature(f, sig, pair.public) is False


def test_verification_fails_for_another_key(pair, other_pair, tmp_path):
    f = tmp_path / "data"
    f.write_bytes(b"data\n")
    assert keys.verify_file_signature(f, keys.sign_file(f, other_pair.private), pair.public) is False
    assert keys.verify_file_signature(f, keys.sign_file(f, pair.private), other_pair.public) is False


def test_verification_fails_for_a_changed_signature(pair, tmp_path):
    f = tmp_path / "data"
    f.write_bytes(b"data\n")
    sig = keys.sign_file(f, pair.private)
    flipped = ("0" if sig[70] != "0" else "1").join([sig[:70], sig[71:]])
    assert keys.verify_file_signature(f, flipped, pair.public) is False
    too_big = "\n".join(["f" * 64] * 4) + "\n.\n"  # not below the modulus
    assert keys.verify_file_signature(f, too_big, pair.public) is False


def test_verification_refuses_a_digest_info_signature(pair, tmp_path):
    """A standard PKCS#1 v1.5 signature (with a DigestInfo) is not what BOINC checks."""
    f = tmp_path / "data"
    f.write_bytes(b"data\n")
    md5 = keys.md5_hex_of_file(f).encode()
    digest_info = bytes.fromhex("3020300c06082a864886f70d020505000410") + hashlib.md5(b"data\n").digest()
    for payload in (digest_info, b"x" + md5):
        block = b"\x00\x01" + b"\xff" * (128 - 3 - len(payload)) + b"\x00" + payload
        s = pow(int.from_bytes(block, "big"), pair.private.d, pair.private.n)
        sig = keys._hex_block(s.to_bytes(128, "big"))
        assert keys.verify_file_signature(f, sig, pair.public) is False


def test_md5_hex_of_file_is_streamed_and_matches_hashlib(tmp_path):
    f = tmp_path / "big"
    data = bytes(range(256)) * 1000 + b"tail"
    f.write_bytes(data)
    assert keys.md5_hex_of_file(f, chunk_size=1000) == hashlib.md5(data).hexdigest()
    assert keys.md5_hex_of_file(f) == hashlib.md5(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert keys.md5_hex_of_file(empty) == "d41d8cd98f00b204e9800998ecf8427e"


def test_sign_text_str_and_bytes_agree(pair):
    sig = keys.sign_text("hello", pair.private)
    assert sig == keys.sign_text(b"hello", pair.private)
    assert keys.verify_text_signature("hello", sig, pair.public)
    assert keys.verify_text_signature("hello!", sig, pair.public) is False


def test_sign_text_equals_signing_a_file_with_that_text(pair, tmp_path):
    f = tmp_path / "data"
    f.write_bytes(b"same bytes")
    assert keys.sign_text(b"same bytes", pair.private) == keys.sign_file(f, pair.private)


def test_sign_text_refuses_nul(pair):
    with pytest.raises(ValueError, match="NUL"):
        keys.sign_text(b"a\0b", pair.private)


def test_key_change_signature(pair, other_pair):
    old, new = pair, other_pair
    text = keys.public_key_to_text(new.public)
    stripped = keys.key_change_signature(new.public, old.private)
    assert keys.verify_text_signature(text.strip(), stripped, old.public)
    assert keys.verify_text_signature(text, stripped, old.public) is False
    full = keys.key_change_signature(new.public, old.private, stripped=False)
    assert keys.verify_text_signature(text, full, old.public)
    assert keys.verify_text_signature(text.strip(), stripped, new.public) is False


# -- fingerprints and repr ----------------------------------------------------------------
def test_fingerprint_is_sha256_of_public_key_text(pair):
    expected = hashlib.sha256(keys.public_key_to_text(pair.public).encode()).hexdigest()[:16]
    assert keys.fingerprint(pair.public) == expected
    assert keys.fingerprint(pair.private) == expected
    assert re.fullmatch(r"[0-9a-f]{16}", expected)


def test_repr_does_not_show_secret_numbers(pair):
    shown = repr(pair.private) + repr(pair) + str(pair.private)
    assert keys.fingerprint(pair.public) in shown
    for secret in (pair.private.d, pair.private.p, pair.private.q):
        assert str(secret) not in shown and format(secret, "x") not in shown


# -- tolerated input forms ----------------------------------------------------------------
def test_parse_accepts_stripped_crlf_uppercase_and_bytes(pair):
    text = keys.public_key_to_text(pair.public)
    assert keys.parse_public_key(text.strip()) == pair.public
    assert keys.parse_public_key("\n" + text.replace("\n", "\r\n") + "\n\n") == pair.public
    assert keys.parse_public_key(text.upper()) == pair.public
    assert keys.parse_public_key(text.encode("ascii")) == pair.public
    assert keys.parse_signature(keys.sign_text("x", pair.private).strip().upper()) is not None


# -- malformed input ----------------------------------------------------------------------
def _public_text(pair) -> str:
    return keys.public_key_to_text(pair.public)


@pytest.mark.parametrize("mangle, message", [
    (lambda t: "", "is empty"),
    (lambda t: "   \n\n", "is empty"),
    (lambda t: t.replace("1024", "2048", 1), "bit count 2048; BOINC only uses 1024-bit keys"),
    (lambda t: t.replace("1024", "512", 1), "bit count 512"),
    (lambda t: t.split("\n", 1)[1], "must start with a line holding its bit count"),
    (lambda t: t.replace("\n.\n", "\n"), "missing its closing '.' line"),
    (lambda t: t + "00\n", "text after its closing '.' line"),
    (lambda t: t.replace(t.split("\n")[1], "zz" + t.split("\n")[1][2:]), "hex line 1 is not"),
    (lambda t: t.replace(t.split("\n")[2], t.split("\n")[2][:-1]), "hex line 2 is not an even number"),
    (lambda t: t.replace(t.split("\n")[3] + "\n", ""),
     "has 224 bytes of key data; a BOINC public key has 256"),
    (lambda t: t.replace("\n.\n", "\n" + "00" * 32 + "\n.\n"), "has 288 bytes"),
])
def test_malformed_public_keys(pair, mangle, message):
    with pytest.raises(ValueError) as exc:
        keys.parse_public_key(mangle(_public_text(pair)))
    assert message in str(exc.value)
    assert "public key" in str(exc.value)


def test_public_key_given_as_private_key_says_so(pair):
    with pytest.raises(ValueError, match=r"private key has 256 bytes.*has 704.*size of a public key"):
        keys.parse_private_key(_public_text(pair))
    with pytest.raises(ValueError, match=r"public key has 704 bytes.*size of a private key"):
        keys.parse_public_key(keys.private_key_to_text(pair.private))


def test_non_ascii_and_non_text_refused():
    with pytest.raises(ValueError, match="not ASCII"):
        keys.parse_public_key("1024\n".encode() + "é".encode())
    with pytest.raises(ValueError, match="must be text"):
        keys.parse_private_key(None)


def test_inconsistent_private_key_refused(pair):
    bad = replace(pair.private, d=pair.private.d + 2)
    # The writer refuses such a key, so the text is built by hand.
    p = bad
    data = b"".join([v.to_bytes(128, "big") for v in (p.n, p.e, p.d)]
                    + [v.to_bytes(64, "big") for v in (p.p, p.q, p.dmp1, p.dmq1, p.iqmp)])
    text = "1024\n" + keys._hex_block(data)
    with pytest.raises(ValueError, match="private key is inconsistent"):
        keys.parse_private_key(text)
    with pytest.raises(ValueError, match="inconsistent"):
        keys.private_key_to_text(bad)
    with pytest.raises(ValueError, match="p \\* q is not its modulus"):
        keys.private_key_to_text(replace(pair.private, p=pair.private.q))


def test_public_key_with_a_short_modulus_refused():
    with pytest.raises(ValueError, match="modulus has 1016 bits, not 1024"):
        keys.public_key_to_text(PublicKey(n=(1 << 1015) + 1, e=65537))
    text = "1024\n" + keys._hex_block((7).to_bytes(128, "big") + (3).to_bytes(128, "big"))
    with pytest.raises(ValueError, match="modulus has 3 bits"):
        keys.parse_public_key(text)


@pytest.mark.parametrize("text, message", [
    ("", "signature is empty"),
    ("abcd\n", "missing its closing '.' line"),
    ("1024\n" + "00" * 128 + "\n.\n", "starts with a bit-count line (1024) like a key file"),
    ("0" * 255 + "\n.\n", "hex line 1 is not an even number"),
    ("\n".join(["00" * 32] * 3) + "\n.\n", "signature has 96 bytes of hex data; a BOINC signature has 128"),
    ("\n".join(["00" * 32] * 4 + ["zz"]) + "\n.\n", "hex line 5"),
])
def test_malformed_signatures(pair, tmp_path, text, message):
    f = tmp_path / "data"
    f.write_bytes(b"data\n")
    with pytest.raises(ValueError, match=re.escape(message)):
        keys.verify_file_signature(f, text, pair.public)


# -- known answers from BOINC's crypt_prog ------------------------------------------------
def test_fixture_keys_parse_and_rewrite_byte_for_byte(fixture_private, fixture_public):
    assert fixture_private.public == fixture_public
    assert keys.private_key_to_text(fixture_private) == (FIXTURES / "test_only_private_key").read_text()
    assert keys.public_key_to_text(fixture_public) == (FIXTURES / "test_only_public_key").read_text()


def test_crypt_prog_signature_verifies(fixture_public):
    sig = (FIXTURES / "message.txt.sig").read_text()
    assert keys.verify_file_signature(FIXTURES / "message.txt", sig, fixture_public)


def test_signature_identical_to_crypt_prog(fixture_private):
    expected = (FIXTURES / "message.txt.sig").read_text()
    assert keys.sign_file(FIXTURES / "message.txt", fixture_private) == expected


def test_sign_string_identical_to_crypt_prog(fixture_private, fixture_public):
    expected = (FIXTURES / "test_only_public_key.stripped.sig").read_text()
    assert keys.key_change_signature(fixture_public, fixture_private) == expected
    stripped = (FIXTURES / "test_only_public_key").read_text().strip()
    assert keys.sign_text(stripped, fixture_private) == expected
    assert keys.verify_text_signature(stripped, expected, fixture_public)


def test_fixture_fingerprint_matches_sha256_of_the_key_file(fixture_public):
    data = (FIXTURES / "test_only_public_key").read_bytes()
    assert keys.fingerprint(fixture_public) == hashlib.sha256(data).hexdigest()[:16]


# -- signing MD5s and a key change ----------------------------------------------------------------
def test_sign_md5s_signs_each_like_crypt_prog(fixture_private):
    md5 = hashlib.md5((FIXTURES / "message.txt").read_bytes()).hexdigest()
    other = hashlib.md5(b"x").hexdigest()
    sigs = keys.sign_md5s([md5, other], fixture_private)
    assert sigs[md5] == (FIXTURES / "message.txt.sig").read_text()
    assert sigs[other] == keys.sign_md5_hex(other, fixture_private) != sigs[md5]


def test_key_change_slot_is_the_first_free_or_the_same_old_key():
    assert keys.key_change_slot({}, "A") == 0
    assert keys.key_change_slot({"old_key_0": "A"}, "A") == 0
    assert keys.key_change_slot({"old_key_0": "A"}, "B") == 1
    assert keys.key_change_slot({"old_key_0": "A", "old_key_1": "B"}, "C") == 2


def test_key_change_files_let_old_clients_accept_the_new_key(pair, other_pair):
    old_text = keys.public_key_to_text(pair.public)
    files = keys.key_change_files(1, old_text, pair.private, other_pair.public)
    assert set(files) == {"old_key_1", "signature_1", "signature_stripped_1"}
    assert files["old_key_1"] == old_text
    new_text = keys.public_key_to_text(other_pair.public)
    assert keys.verify_text_signature(new_text, files["signature_1"], pair.public)
    assert keys.verify_text_signature(new_text.strip(), files["signature_stripped_1"], pair.public)
    assert not keys.verify_text_signature(new_text, files["signature_stripped_1"], pair.public)


# -- standard library only ----------------------------------------------------------------
def test_module_imports_only_the_standard_library_at_top_level():
    tree = ast.parse(Path(keys.__file__).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    assert names - set(sys.stdlib_module_names) - {"__future__"} == set()


def test_works_without_cryptography_except_generation():
    """In the makeproject image only the standard library is sure to be there."""
    script = f"""
import sys
sys.modules["cryptography"] = None
from pathlib import Path
from boincserver.boinc import keys
d = Path({str(FIXTURES)!r})
priv = keys.parse_private_key((d / "test_only_private_key").read_text())
assert keys.sign_file(d / "message.txt", priv) == (d / "message.txt.sig").read_text()
assert keys.verify_file_signature(d / "message.txt", (d / "message.txt.sig").read_text(), priv.public)
try:
    keys.generate_keypair()
except RuntimeError as exc:
    assert "cryptography" in str(exc)
else:
    raise SystemExit("generate_keypair worked without cryptography")
assert "cryptography" not in [m for m in sys.modules if sys.modules[m] is not None]
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
