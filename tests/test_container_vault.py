"""The secrets volume (boincserver.container.vault) and what the host runs on it in a one-shot
makeproject container: `boincserver-project-setup secrets ...`, `sign-md5` and `db-user`
(boincserver.container.secrets), over fake volumes and a fake MySQLdb."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from container_fakes import FakeMySQLdb, fake_mounts, install_mysqldb, this_user

from boincserver.boinc import keys
from boincserver.container import setup
from boincserver.container.common import Mounts, Owner, Refused
from boincserver.container.vault import JOURNAL, Vault

FIXTURES = Path(__file__).parent / "fixtures" / "keys"
CONFIG = "<boinc>\n  <config>\n    <db_passwd>old</db_passwd>\n    <key_dir>{keys}/</key_dir>\n  </config>\n</boinc>\n"


@pytest.fixture
def mounts(tmp_path) -> Mounts:
    m = fake_mounts(tmp_path)
    (m.project / "config.xml").write_text(CONFIG.format(keys=m.keys))
    return m


@pytest.fixture
def db(tmp_path, monkeypatch) -> FakeMySQLdb:
    return install_mysqldb(tmp_path, monkeypatch)


@pytest.fixture(autouse=True)
def boinc_user(monkeypatch):
    monkeypatch.setattr(Owner, "named", staticmethod(this_user))


ENV = {"PROJECT": "demo", "BOINC_USER": "boincadm"}


def run(mounts, *argv, stdin: bytes = b"") -> tuple[int, bytes, str]:
    out, err = io.BytesIO(), io.StringIO()
    code = setup.main(list(argv), mounts=mounts, environ=ENV, stdin=io.BytesIO(stdin), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def answer(mounts, *argv, stdin: bytes = b""):
    code, out, err = run(mounts, *argv, stdin=stdin)
    assert code == 0, err
    return json.loads(out)


def failure(mounts, *argv, stdin: bytes = b"") -> str:
    code, out, err = run(mounts, *argv, stdin=stdin)
    assert (code, out) == (setup.FAILED, b""), err
    assert err.startswith("[makeproject] error: ")
    return err


# -- the vault ----------------------------------------------------------------------------
@pytest.fixture
def vault(mounts) -> Vault:
    v = Vault(mounts, this_user())
    v.prepare()
    return v


def test_prepare_makes_every_file_with_modes_by_reader(vault, mounts):
    assert (mounts.secrets.stat().st_mode & 0o777, (mounts.secrets / "pending").stat().st_mode & 0o777,
            mounts.keys.stat().st_mode & 0o777) == (0o755, 0o700, 0o750)
    for secret in vault.catalogue.values():
        for f in secret.files:
            mode = (mounts.secrets / f.path).stat().st_mode & 0o777
            assert mode == (0o640 if "apache" in f.readers else 0o600), f.path


def test_ensure_generates_once_and_leaves_tokens_empty(vault):
    assert vault.ensure() == ["db", "ops", "upload", "code_sign"]
    values = {n: vault.value(n) for n in vault.catalogue}
    assert vault.ensure() == []
    assert {n: vault.value(n) for n in vault.catalogue} == values
    assert values["mail"] == values["recaptcha"] == ""
    assert vault.read("ops.htpasswd").startswith("admin:$6$")
    pair = keys.parse_private_key(vault.read("keys/code_sign_private"))
    assert keys.public_from_private(pair) == keys.parse_public_key(vault.read("keys/code_sign_public"))


def test_show_gives_fingerprints_and_values_only_when_asked(vault):
    vault.ensure()
    rows = {r["name"]: r for r in vault.show()}
    assert rows["db"]["set"] and len(rows["db"]["fingerprint"]) == 16 and "value" not in rows["db"]
    assert rows["code_sign"]["private_key"] == "on server" and not rows["mail"]["set"]
    revealed = {r["name"]: r for r in vault.show(reveal=True)}
    assert revealed["db"]["value"] == vault.value("db")


def test_a_rotation_is_journaled_then_completed(vault):
    vault.ensure()
    old = vault.value("db")
    seen = []
    vault.begin({"db": vault.new_values("db")}, "rotate")
    assert vault.pending()["reason"] == "rotate" and vault.value("db") == old
    with pytest.raises(Refused, match="unfinished"):
        vault.begin({"db": vault.new_values("db")}, "rotate")
    assert vault.complete({"database": lambda name, values: seen.append((name, values))}) == ["db"]
    assert seen[0][0] == "db" and vault.value("db") == seen[0][1]["db_password"] != old
    assert vault.pending() is None and not vault.path(JOURNAL).exists()


def test_backup_and_changes_from_it(vault):
    vault.ensure()
    blob = vault.backup_tar()
    changes = vault.changes_from_tar(blob)
    assert set(changes) == {"db", "ops", "upload", "code_sign"}  # tokens never set stay out
    assert changes["db"] == {"db_password": vault.read("db_password")}
    empty = io.BytesIO()
    tarfile.open(fileobj=empty, mode="w").close()
    with pytest.raises(Refused, match="no MANIFEST.json"):
        vault.changes_from_tar(empty.getvalue())


# -- `secrets ...` --------------------------------------------------------------------------
def test_show_generates_what_is_missing_first(mounts):
    got = answer(mounts, "secrets", "show")
    assert got["recovered"] == [] and {r["name"] for r in got["secrets"]} == {"db", "ops", "mail", "recaptcha",
                                                                                "upload", "code_sign"}
    assert all("value" not in r for r in got["secrets"])


def test_rotate_db_reaches_mariadb_and_config_xml(mounts, db):
    Vault(mounts, this_user()).ensure()
    old = Vault(mounts).value("db")
    got = answer(mounts, "secrets", "rotate", "db")
    new = Vault(mounts).value("db")
    assert got["rotated"] == ["db"] and new != old
    assert ("ALTER USER %s@'%%' IDENTIFIED BY %s", ("boincadm", new)) in db.accounts
    assert f"<db_passwd>{new}</db_passwd>" in (mounts.project / "config.xml").read_text()


def test_rotate_all_leaves_the_code_signing_key_and_the_tokens(mounts, db):
    Vault(mounts, this_user()).ensure()
    code_sign = Vault(mounts).read("keys/code_sign_public")
    assert answer(mounts, "secrets", "rotate", "all")["rotated"] == ["db", "ops", "upload"]
    assert Vault(mounts).read("keys/code_sign_public") == code_sign


def test_recaptcha_comes_from_stdin_as_two_lines(mounts):
    answer(mounts, "secrets", "rotate", "recaptcha", stdin=b"pub-key\npriv-key\n")
    config = (mounts.project / "config.xml").read_text()
    assert "<recaptcha_public_key>pub-key</recaptcha_public_key>" in config
    assert "<recaptcha_private_key>priv-key</recaptcha_private_key>" in config
    assert "two lines" in failure(mounts, "secrets", "rotate", "recaptcha", stdin=b"only one\n")
    assert Vault(mounts).pending() is None  # refused before a journal was written
    assert "unknown secret(s) ['nope']" in failure(mounts, "secrets", "rotate", "nope")


def test_code_sign_rotation_writes_the_key_change(mounts):
    Vault(mounts, this_user()).ensure()
    old_public_text = Vault(mounts).read("keys/code_sign_public")
    answer(mounts, "secrets", "rotate", "code_sign")
    new_public_text = Vault(mounts).read("keys/code_sign_public")
    assert new_public_text != old_public_text
    assert (mounts.keys / "old_key_0").read_text() == old_public_text
    old_public = keys.parse_public_key(old_public_text)
    stripped = (mounts.keys / "signature_stripped_0").read_text()
    assert keys.verify_text_signature(new_public_text.strip(), stripped, old_public)
    # A second change goes into the next slot.
    answer(mounts, "secrets", "rotate", "code_sign")
    assert (mounts.keys / "old_key_1").read_text() == new_public_text


def test_offline_signing_export_forget_and_set_public(mounts):
    Vault(mounts, this_user()).ensure()
    code, private_text, err = run(mounts, "secrets", "export-private", "code_sign")
    assert code == 0 and keys.parse_private_key(private_text.decode())
    public = keys.parse_public_key(Vault(mounts).read("keys/code_sign_public"))
    assert "does not match" in failure(mounts, "secrets", "forget-private", "code_sign", "0" * 16)
    assert answer(mounts, "secrets", "forget-private", "code_sign", keys.fingerprint(public))["forgotten"] is True
    assert answer(mounts, "secrets", "forget-private", "code_sign", keys.fingerprint(public))["forgotten"] is False
    rows = {r["name"]: r for r in answer(mounts, "secrets", "show")["secrets"]}
    assert rows["code_sign"]["private_key"] == "offline"
    assert "the code-signing private key is offline" in failure(mounts, "secrets", "rotate", "code_sign")
    assert Vault(mounts).pending() is None  # refused before the journal: later commands still work
    mine = (FIXTURES / "test_only_public_key").read_text()
    got = answer(mounts, "secrets", "set-public", "code_sign", stdin=mine.encode())
    assert got["fingerprint"] == keys.fingerprint(keys.parse_public_key(mine))
    Vault(mounts, this_user()).ensure()  # an offline key is not generated again
    assert Vault(mounts).read("keys/code_sign_public") == keys.public_key_to_text(keys.parse_public_key(mine))
    assert "already has a private key" in failure(mounts, "secrets", "set-public", "upload", stdin=mine.encode())


def test_backup_then_restore_puts_the_values_back(mounts, db):
    Vault(mounts, this_user()).ensure()
    before = {r["name"]: r["fingerprint"] for r in answer(mounts, "secrets", "show")["secrets"]}
    code, blob, err = run(mounts, "secrets", "backup")
    assert code == 0 and blob.startswith(b"MANIFEST.json")
    answer(mounts, "secrets", "rotate", "all")
    got = answer(mounts, "secrets", "restore", stdin=blob)
    assert set(got["restored"]) == {"db", "ops", "upload", "code_sign"}
    assert {r["name"]: r["fingerprint"] for r in answer(mounts, "secrets", "show")["secrets"]} == before
    assert not (mounts.keys / "old_key_0").exists()  # a restore publishes no key change


# -- sign-md5 and db-user -----------------------------------------------------------------------
def test_sign_md5_signs_with_the_key_config_xml_names(mounts):
    mounts.keys.mkdir()
    (mounts.keys / "code_sign_private").write_text((FIXTURES / "test_only_private_key").read_text())
    md5 = hashlib.md5((FIXTURES / "message.txt").read_bytes()).hexdigest()
    assert answer(mounts, "sign-md5", md5) == {md5: (FIXTURES / "message.txt.sig").read_text()}
    (mounts.keys / "code_sign_private").write_text("")
    assert answer(mounts, "sign-md5", md5) is None  # kept offline: the host says so
    (mounts.project / "config.xml").write_text("<boinc><config/></boinc>\n")
    assert "names no <key_dir>" in failure(mounts, "sign-md5", md5)


def test_db_user_gives_the_restored_password_to_the_project_user(mounts, db):
    assert "no database password" in failure(mounts, "db-user")
    Vault(mounts, this_user()).ensure()
    password = Vault(mounts).value("db")
    assert answer(mounts, "db-user") == {"db_user": "boincadm", "database": "demo"}
    assert db.connects == [{"unix_socket": "/fake/mysqld.sock", "user": "root"}]
    assert [params for _, params in db.accounts] == [("boincadm", password), ("boincadm", password),
                                                     ("boincadm",), ()]
    assert "GRANT ALL PRIVILEGES ON `demo`.*" in db.accounts[2][0]
