"""boincserver.boinc.keys against BOINC's own crypt_prog, run in the makeproject image.

Both directions: keys and signatures made here are accepted by crypt_prog, and keys made by
crypt_prog load here and sign exactly as crypt_prog does. Without a Docker engine or the BOINC
source they skip (tests/stack/conftest.py); without the image they build it first.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from boincserver import __version__, pins
from boincserver.boinc import keys

from .conftest import run_cli

IMAGE = pins.base_image("makeproject")
CRYPT_PROG = "/usr/src/boinc/lib/crypt_prog"  # inside the image


pytestmark = pytest.mark.docker


@pytest.fixture(scope="module", autouse=True)
def makeproject_image(tmp_path_factory) -> str:
    """The pinned makeproject image; built here when no earlier test or session has built it.

    (These tests used to skip when it was missing, which made them depend on the order and the
    history of the runs.)"""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        folder = tmp_path_factory.mktemp("keys") / f"kb_{os.getpid()}"
        run_cli("init", folder)
        try:
            run_cli("build", cwd=folder)
        finally:
            # Only the base images are wanted; the project's own images go again.
            for service in ("mysql", "makeproject", "apache"):
                subprocess.run(["docker", "image", "rm", f"boincserver-{folder.name}/{service}:{__version__}"],
                               capture_output=True)
    assert subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0, \
        f"{IMAGE} is still missing after `boincserver build`"
    return IMAGE


def crypt_prog(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """crypt_prog with `folder` mounted at /w; file arguments are given as /w/NAME."""
    user = [f"--user={os.getuid()}:{os.getgid()}"] if hasattr(os, "getuid") else []
    return subprocess.run(["docker", "run", "--rm", "--network=none", *user, "-v", f"{folder}:/w",
                           "--entrypoint", CRYPT_PROG, IMAGE, *args],
                          capture_output=True, text=True, timeout=120)


def accepted(done: subprocess.CompletedProcess) -> bool:
    """crypt_prog -verify's answer: exit 0 "signature is valid"; exit 1 "signature is invalid"
    when the data differ; exit 2 from check_*_signature when the padding is wrong (another key).
    Any other failure (a key or signature it cannot read) fails the test."""
    if done.returncode == 0 and "signature is valid" in done.stdout:
        return True
    if done.returncode == 1 and "signature is invalid" in done.stdout:
        return False
    if done.returncode == 2 and "_signature" in done.stderr and "check_" in done.stderr:
        return False
    raise AssertionError(f"crypt_prog failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@pytest.fixture
def work(tmp_path) -> Path:
    tmp_path.chmod(0o777)  # whatever user the container runs as may write here
    (tmp_path / "app").write_bytes(bytes(range(256)) * 40 + b"an application file\n")
    return tmp_path


# -- keys.py -> crypt_prog ----------------------------------------------------------------
def test_crypt_prog_verifies_keys_py_signature(work):
    pair = keys.generate_keypair()
    (work / "pub").write_text(keys.public_key_to_text(pair.public))
    (work / "sig").write_text(keys.sign_file(work / "app", pair.private))
    assert accepted(crypt_prog(work, "-verify", "/w/app", "/w/sig", "/w/pub"))
    # ...and is not simply accepting anything: another key's signature, a changed file.
    (work / "other_sig").write_text(keys.sign_file(work / "app", keys.generate_keypair().private))
    assert not accepted(crypt_prog(work, "-verify", "/w/app", "/w/other_sig", "/w/pub"))
    (work / "app").write_bytes(b"changed\n")
    assert not accepted(crypt_prog(work, "-verify", "/w/app", "/w/sig", "/w/pub"))


def test_crypt_prog_uses_keys_py_private_key_identically(work):
    pair = keys.generate_keypair()
    (work / "priv").write_text(keys.private_key_to_text(pair.private))
    (work / "pub").write_text(keys.public_key_to_text(pair.public))
    done = crypt_prog(work, "-sign", "/w/app", "/w/priv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == keys.sign_file(work / "app", pair.private)
    done = crypt_prog(work, "-test_crypt", "/w/priv", "/w/pub")
    assert done.returncode == 0 and "successful" in done.stdout, done.stdout + done.stderr


def test_crypt_prog_verifies_a_signature_with_a_leading_zero_byte(work):
    pair = keys.generate_keypair()
    for i in range(5000):
        (work / "app").write_text(f"attempt {i}\n")
        sig = keys.sign_file(work / "app", pair.private)
        if sig.startswith("00"):
            break
    else:
        pytest.fail("no signature with a leading zero byte in 5000 tries")
    (work / "pub").write_text(keys.public_key_to_text(pair.public))
    (work / "sig").write_text(sig)
    assert accepted(crypt_prog(work, "-verify", "/w/app", "/w/sig", "/w/pub"))


def test_crypt_prog_verifies_keys_py_key_change_signature(work):
    old, new = keys.generate_keypair(), keys.generate_keypair()
    (work / "old_pub").write_text(keys.public_key_to_text(old.public))
    (work / "sig").write_text(keys.key_change_signature(new.public, old.private))
    new_text = keys.public_key_to_text(new.public).strip()
    assert accepted(crypt_prog(work, "-verify_string", new_text, "/w/sig", "/w/old_pub"))
    (work / "new_pub").write_text(keys.public_key_to_text(new.public))
    assert not accepted(crypt_prog(work, "-verify_string", new_text, "/w/sig", "/w/new_pub"))


# -- crypt_prog -> keys.py ----------------------------------------------------------------
def test_crypt_prog_key_pair_loads_and_signs_for_crypt_prog(work):
    done = crypt_prog(work, "-genkey", "1024", "/w/priv", "/w/pub")
    assert done.returncode == 0, done.stdout + done.stderr
    priv_text, pub_text = (work / "priv").read_text(), (work / "pub").read_text()
    private, public = keys.parse_private_key(priv_text), keys.parse_public_key(pub_text)
    assert private.public == public
    assert public.e == 65537 and public.n.bit_length() == 1024
    assert keys.private_key_to_text(private) == priv_text
    assert keys.public_key_to_text(public) == pub_text

    sig = keys.sign_file(work / "app", private)
    (work / "sig").write_text(sig)
    assert accepted(crypt_prog(work, "-verify", "/w/app", "/w/sig", "/w/pub"))

    done = crypt_prog(work, "-sign", "/w/app", "/w/priv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == sig
    assert keys.verify_file_signature(work / "app", done.stdout, public)


def test_crypt_prog_sign_string_matches_keys_py(work):
    done = crypt_prog(work, "-genkey", "1024", "/w/priv", "/w/pub")
    assert done.returncode == 0, done.stdout + done.stderr
    private = keys.parse_private_key((work / "priv").read_text())
    text = "some text to sign"
    done = crypt_prog(work, "-sign_string", text, "/w/priv")
    assert done.returncode == 0, done.stderr
    assert done.stdout == keys.sign_text(text, private)
    assert keys.verify_text_signature(text, done.stdout, private.public)
