"""Secrets against the real stack: generation, isolation, rotation (crash-safe), backup,
offline code signing. Runs on the session's stack (tests/stack/conftest.py), in any order: every
test reads the secrets' current values before it changes them, and the tests whose change other
tests would see (a fresh project's state, the private key moved off the server) use a project of
their own."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import urllib.request

import pytest

from boincserver import pins
from boincserver.boinc import keys

from .conftest import Stack, apache_sh, compose, free_port, run_cli, running_project, sql

PASS = {"BOINCSERVER_BACKUP_PASSPHRASE": "correct horse battery"}


def status_of(url: str, auth: tuple[str, str] | None = None) -> int:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def revealed(stack: Stack) -> dict[str, dict]:
    rows = json.loads(run_cli("secrets", "show", "--reveal", "--json", cwd=stack.dir).stdout)
    return {r["name"]: r for r in rows}


def fingerprints(stack: Stack) -> dict[str, str | None]:
    rows = json.loads(run_cli("secrets", "show", "--json", cwd=stack.dir).stdout)
    return {r["name"]: r["fingerprint"] for r in rows}


def db_login_works(stack: Stack, password: str) -> bool:
    done = compose(stack.dir, "exec", "-T", "mysql", "mariadb", "-h", "127.0.0.1", "-u", "boincadm",
                   f"-p{password}", stack.project, "-N", "-e", "SELECT 1", check=False)
    return done.returncode == 0 and done.stdout.strip() == "1"


def assert_serving(stack: Stack):
    assert status_of(f"{stack.local}/{stack.project}/") == 200
    # A page that reads the database through BOINC's PHP with config.xml's password.
    page = urllib.request.urlopen(f"{stack.local}/{stack.project}/server_status.php", timeout=20).read().decode()
    assert "Database schema version" in page
    data = json.loads(run_cli("status", "--json", cwd=stack.dir).stdout)
    assert {"feeder", "transitioner", "file_deleter"} <= {d["name"] for d in data["daemons"] if d["running"]}


def test_every_secret_is_generated_and_shown_without_values(stack: Stack):
    done = run_cli("secrets", "show", "--json", cwd=stack.dir)
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert set(rows) == {"db", "ops", "mail", "recaptcha", "upload", "code_sign"}
    for name in ("db", "ops", "upload", "code_sign"):
        assert rows[name]["set"] and len(rows[name]["fingerprint"]) == 16
    # mail and recaptcha are set only by their rotation tests; that none is generated is checked on
    # a fresh project (test_init_with_offline_signing_keeps_the_private_key_off_the_server).
    assert {rows[name]["kind"] for name in ("mail", "recaptcha")} == {"token"}
    assert not any("value" in row for row in rows.values())
    secrets = revealed(stack)
    assert len(secrets["db"]["value"]) == 32 and secrets["db"]["value"] not in done.stdout
    assert db_login_works(stack, secrets["db"]["value"])


def test_isolation_of_secrets(stack: Stack):
    # apache sees the code-signing private key as an empty file, even as root.
    for user in ("root", None):
        assert apache_sh(stack.dir, "wc -c < /run/boincserver/secrets/keys/code_sign_private", user).strip() == "0"
        assert apache_sh(stack.dir, "wc -c < /run/boincserver/secrets/db_password", user).strip() == "0"
    # What apache needs, its own user (the BOINC user) reads.
    assert int(apache_sh(stack.dir, "wc -c < /run/boincserver/secrets/keys/upload_private").strip()) > 1000
    # mysql mounts no secrets.
    cid = compose(stack.dir, "ps", "-q", "mysql").stdout.strip()
    mounts = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .Mounts}}", cid],
                                       capture_output=True, text=True, check=True).stdout)
    assert not any("secrets" in (m.get("Name") or "") + m["Destination"] for m in mounts), mounts
    # MariaDB: loopback only.
    port = int(compose(stack.dir, "port", "mysql", "3306").stdout.strip().rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    # Every other address of this machine (its network interfaces, Docker's bridges) refuses.
    addresses = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    outside = [a for a in addresses if not a.startswith("127.") and ":" not in a]
    assert outside, "this machine shows no non-loopback address to try"
    for address in outside:
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=5).close()


def test_scan_finds_no_secret_in_images_or_folder_and_finds_a_planted_one(stack: Stack, tmp_path):
    done = run_cli("secrets", "scan", "--json", cwd=stack.dir, check=False)
    report = json.loads(done.stdout)
    assert done.returncode == 0, report["findings"]
    assert {"db", "ops", "upload private key", "code_sign private key"} <= set(report["secrets_searched"])
    assert len(report["images"]) == 6 and report["findings"] == {}
    # The same scan fails on an image that holds a secret.
    secret = revealed(stack)["ops"]["value"]
    (tmp_path / "leak.txt").write_text(f"password={secret}\n")
    (tmp_path / "Dockerfile").write_text(f"FROM {pins.BASE_OS_IMAGE}\nCOPY leak.txt /etc/leak.txt\n")
    planted = f"boincserver-planted-{stack.project}:test"
    subprocess.run(["docker", "build", "-q", "-t", planted, str(tmp_path)], check=True, capture_output=True,
                   env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
    try:
        done = run_cli("secrets", "scan", "--image", planted, cwd=stack.dir, check=False)
        assert done.returncode == 1
        assert f"FOUND ops in {planted}" in done.stdout
    finally:
        subprocess.run(["docker", "image", "rm", "-f", planted], capture_output=True)


def test_rotate_db_takes_effect_everywhere(stack: Stack):
    old = revealed(stack)["db"]["value"]
    run_cli("secrets", "rotate", "db", cwd=stack.dir)
    new = revealed(stack)["db"]["value"]
    assert new != old
    assert db_login_works(stack, new) and not db_login_works(stack, old)
    assert f"<db_passwd>{new}</db_passwd>" in apache_sh(stack.dir, "cat $PROJECT_ROOT/config.xml")
    assert_serving(stack)


def test_rotate_ops_old_password_stops_working(stack: Stack):
    url = f"{stack.local}/{stack.project}_ops/"
    old = revealed(stack)["ops"]["value"]
    assert status_of(url, ("admin", old)) == 200
    run_cli("secrets", "rotate", "ops", cwd=stack.dir)
    new = revealed(stack)["ops"]["value"]
    assert status_of(url, ("admin", old)) == 401
    assert status_of(url, ("admin", new)) == 200


def test_rotate_token_needs_a_value_and_recaptcha_reaches_config(stack: Stack):
    done = run_cli("secrets", "rotate", "recaptcha", cwd=stack.dir, check=False)
    assert done.returncode == 1 and "standard input" in done.stderr
    pub, priv = "6LcPUBLICpublicPUBLICkey0000000000000", "6LcPRIVATEprivatePRIVATEkey000000000000"
    import os
    import sys
    proc = subprocess.run([sys.executable, "-m", "boincserver", "secrets", "rotate", "recaptcha", "--stdin"],
                          input=f"{pub}\n{priv}\n", cwd=stack.dir, capture_output=True, text=True,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    config = apache_sh(stack.dir, "cat $PROJECT_ROOT/config.xml")
    assert f"<recaptcha_public_key>{pub}</recaptcha_public_key>" in config
    assert f"<recaptcha_private_key>{priv}</recaptcha_private_key>" in config


def test_rotate_mail_from_stdin_reaches_apache(stack: Stack):
    import os
    import sys
    value = "smtp-password-" + os.urandom(6).hex()
    proc = subprocess.run([sys.executable, "-m", "boincserver", "secrets", "rotate", "mail", "--stdin"],
                          input=value + "\n", cwd=stack.dir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # The project's PHP (run as the BOINC user) can read it; nobody else sees it in the folder.
    seen = compose(stack.dir, "exec", "-T", "-u", "boincadm", "apache", "cat",
                   "/run/boincserver/secrets/mail_password").stdout.strip()
    assert seen == value


@pytest.mark.parametrize("step", ["journal", "effect", "promote"])
def test_rotation_killed_at_each_step_is_completed_by_the_next_command(stack: Stack, step):
    old = revealed(stack)["db"]["value"]
    done = run_cli("secrets", "rotate", "db", cwd=stack.dir, check=False,
                   env={"BOINCSERVER_FAULT_AFTER": step})
    assert done.returncode == 1
    # The next command (any that looks at the project) finds the journal and finishes it.
    status = run_cli("status", cwd=stack.dir)
    assert "interrupted secrets rotation" in status.stderr
    now = revealed(stack)["db"]["value"]
    assert now != old
    assert db_login_works(stack, now) and not db_login_works(stack, old)
    assert_serving(stack)


def test_rotate_upload_keys(stack: Stack):
    before = fingerprints(stack)["upload"]
    run_cli("secrets", "rotate", "upload", cwd=stack.dir)
    assert fingerprints(stack)["upload"] != before
    assert_serving(stack)


def test_backup_and_restore(stack: Stack, tmp_path):
    backup = tmp_path / "secrets.bin"
    before = fingerprints(stack)
    run_cli("secrets", "backup", backup, cwd=stack.dir, env=PASS)
    blob = backup.read_bytes()
    assert (backup.stat().st_mode & 0o777) == 0o600
    for value in (revealed(stack)["db"]["value"], revealed(stack)["ops"]["value"]):
        assert value.encode() not in blob
    run_cli("secrets", "rotate", "db", "ops", cwd=stack.dir)
    rotated = fingerprints(stack)
    assert rotated["db"] != before["db"] and rotated["ops"] != before["ops"]
    # A wrong passphrase and a changed file: a clear error, nothing changed.
    done = run_cli("secrets", "restore", backup, cwd=stack.dir, check=False,
                   env={"BOINCSERVER_BACKUP_PASSPHRASE": "wrong passphrase"})
    assert done.returncode == 1 and "wrong passphrase" in done.stderr and "Traceback" not in done.stderr
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(blob[:-5] + bytes([blob[-5] ^ 1]) + blob[-4:])
    done = run_cli("secrets", "restore", tampered, cwd=stack.dir, check=False, env=PASS)
    assert done.returncode == 1 and "changed" in done.stderr
    assert fingerprints(stack) == rotated
    run_cli("secrets", "restore", backup, cwd=stack.dir, env=PASS)
    assert fingerprints(stack) == before
    assert db_login_works(stack, revealed(stack)["db"]["value"])
    assert_serving(stack)


def test_code_sign_key_rotation_publishes_a_key_change(stack: Stack, tmp_path):
    run_cli("app", "add", "uppercase", "--example", "uppercase", cwd=stack.dir)
    versions_before = {v["version"] for a in json.loads(run_cli("app", "list", "--json", cwd=stack.dir).stdout)
                       if a["name"] == "uppercase" for v in a["versions"]}
    old_public = keys.parse_public_key(revealed(stack)["code_sign"]["value"]["keys/code_sign_public"])
    done = run_cli("secrets", "keys", "rotate", cwd=stack.dir)
    assert "re-released uppercase" in done.stdout
    new_public_text = revealed(stack)["code_sign"]["value"]["keys/code_sign_public"]
    new_public = keys.parse_public_key(new_public_text)
    assert new_public != old_public
    # The app's newest version came again under a new number, signed with the new key.
    apps = json.loads(run_cli("app", "list", "--json", cwd=stack.dir).stdout)
    versions = {v["version"] for a in apps if a["name"] == "uppercase" for v in a["versions"]}
    assert max(versions) > max(versions_before)
    xml_doc = sql(stack.dir, stack.project, "SELECT xml_doc FROM app_version WHERE version_num = "
                  f"{max(versions)} AND appid = (SELECT id FROM app WHERE name = 'uppercase')")
    import re
    name = re.search(r"<name>(\S+?)</name>", xml_doc).group(1)
    signature = re.search(r"<file_signature>\s*(.*?)</file_signature>", xml_doc.replace("\\n", "\n"), re.S).group(1)
    local = tmp_path / name
    assert "_1.00_" not in name  # a new version's files have new names
    local.write_bytes(subprocess.run(
        ["docker", "compose", "exec", "-T", "apache", "sh", "-c",
         f"cat $(find $PROJECT_ROOT/download -name {name} | head -1)"],
        cwd=stack.dir, capture_output=True, check=True).stdout)
    assert keys.verify_file_signature(local, signature.strip() + "\n", new_public)
    listing = apache_sh(stack.dir, "ls /run/boincserver/secrets/keys")
    assert "old_key_0" in listing and "signature_stripped_0" in listing
    sig = apache_sh(stack.dir, "cat /run/boincserver/secrets/keys/signature_stripped_0")
    assert keys.verify_text_signature(new_public_text.strip(), sig, old_public)
    assert_serving(stack)


def test_offline_signing_export_sign_and_update_versions(tmp_path):
    # A project of its own: the server's private key does not come back after the export.
    with running_project(tmp_path, "ex") as stack:
        export_sign_and_update_versions(stack, tmp_path)


def export_sign_and_update_versions(stack: Stack, tmp_path) -> None:
    keys_dir = tmp_path / "offline-keys"
    run_cli("secrets", "keys", "export", keys_dir, cwd=stack.dir)
    assert (keys_dir / "code_sign_private").stat().st_mode & 0o777 == 0o600
    rows = json.loads(run_cli("secrets", "show", "--json", cwd=stack.dir).stdout)
    assert next(r for r in rows if r["name"] == "code_sign")["private_key"] == "offline"
    empty = compose(stack.dir, "run", "--rm", "--no-deps", "-T", "--entrypoint", "wc", "makeproject",
                    "-c", "/run/boincserver/secrets/keys/code_sign_private").stdout
    assert empty.split()[0] == "0"
    # An app version, signed here, registered by BOINC's own tools on the server.
    exe = tmp_path / "signedapp_1.0_x86_64-pc-linux-gnu"
    exe.write_text("#!/bin/sh\necho hello\n")
    run_cli("secrets", "keys", "sign", "--keys-dir", keys_dir, exe, cwd=stack.dir)
    sig = exe.with_name(exe.name + ".sig").read_text()
    d = "$PROJECT_ROOT/apps/signedapp/1.0/x86_64-pc-linux-gnu"
    for f, text in ((exe.name, exe.read_text()), (exe.name + ".sig", sig)):
        compose(stack.dir, "exec", "-T", "-u", "boincadm", "apache", "sh", "-c",
                f"mkdir -p {d} && cat > {d}/{f}", input=text)
    apache_sh(stack.dir, "cd $PROJECT_ROOT && sed -i 's#</boinc>#<app><name>signedapp</name>"
                         "<user_friendly_name>signed</user_friendly_name></app></boinc>#' project.xml")
    compose(stack.dir, "exec", "-T", "-u", "boincadm", "-w", "/home/boincadm/project", "apache", "bin/xadd")
    compose(stack.dir, "exec", "-T", "-u", "boincadm", "-w", "/home/boincadm/project", "apache",
            "bin/update_versions", "--noconfirm")
    xml_doc = sql(stack.dir, stack.project, "SELECT av.xml_doc FROM app_version av JOIN app a ON a.id = av.appid "
                                            "WHERE a.name = 'signedapp'")
    assert "<file_signature>" in xml_doc
    assert sig.splitlines()[0] in xml_doc.replace("\\n", "\n")
    assert_serving(stack)


def test_init_with_offline_signing_keeps_the_private_key_off_the_server(tmp_path):
    port = free_port()
    project_dir, keys_dir = tmp_path / "offline_proj", tmp_path / "keys"
    done = run_cli("init", project_dir, "--url-base", f"http://127.0.0.1:{port}", "--http-port", port,
                   "--offline-signing", project_dir / "keys", check=False)
    assert done.returncode == 1 and "outside" in done.stderr and not project_dir.exists()
    run_cli("init", project_dir, "--url-base", f"http://127.0.0.1:{port}", "--http-port", port,
            "--offline-signing", keys_dir)
    try:
        run_cli("up", cwd=project_dir)
        local_public = keys.parse_public_key((keys_dir / "code_sign_public").read_text())
        rows = {r["name"]: r for r in json.loads(run_cli("secrets", "show", "--json", cwd=project_dir).stdout)}
        assert rows["code_sign"]["private_key"] == "offline"
        assert rows["code_sign"]["fingerprint"] == keys.fingerprint(local_public)
        # A fresh project: the tokens come from outside services, so none is generated.
        assert rows["mail"]["kind"] == rows["recaptcha"]["kind"] == "token"
        assert not rows["mail"]["set"] and not rows["recaptcha"]["set"]
        on_server = compose(project_dir, "run", "--rm", "--no-deps", "-T", "--entrypoint", "cat", "makeproject",
                            "/run/boincserver/secrets/keys/code_sign_private").stdout
        assert on_server.strip() == ""
        assert status_of(f"http://127.0.0.1:{port}/offline_proj/") == 200
    finally:
        run_cli("down", "--volumes", "--yes", cwd=project_dir, check=False)
