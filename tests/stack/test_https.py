"""HTTPS by ACME against a real ACME CA: Debian's pebble (Let's Encrypt's test CA) on the
project's network, validating over HTTP-01 through the project's published HTTP port.

One project for the module: started on plain HTTP, then moved to https:// by `up`, which
waits for the certificate mod_md obtains. Pebble's certificates live 300 s and the project's
overlay makes mod_md renew at half that, so a renewal happens while a real client works.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import socket
import subprocess
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from .conftest import (Stack, compose, debian_client, ensure_example_app, free_port, image_of_folder, run_cli,
                       running_project)
from .test_client_e2e import run_job

HOST = "boinc.test"  # pebble's DNS (challtestsrv) answers every name with the host's bridge address
PEBBLE_DIR = Path(__file__).parent / "pebble"
VALIDITY = 300
# Test only, in the project's own apache overlay: mod_md looks every 5 s, retries after 2 s,
# and renews at half a certificate's life. A user's overlay can do the same.
MD_TIMING = ("\n# mod_md's timing for a CA whose certificates live minutes (tests/stack/test_https.py)\n"
             "RUN printf 'MDCheckInterval 5s\\nMDRetryDelay 2s\\nMDRenewWindow 50%%\\n' "
             "> /etc/apache2/boincserver-md-local.conf\n")


def pebble_image() -> str:
    """Debian's pebble on the pinned base OS image (tests/stack/pebble/)."""
    return image_of_folder(PEBBLE_DIR, "boincserver-test/pebble:2.4.0")


def listener_certificate(into: Path) -> tuple[Path, Path]:
    """Pebble's own TLS certificate (Debian ships none): self-signed for the name `pebble`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("pebble"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, pem_key = into / "pebble.crt", into / "pebble.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    pem_key.chmod(0o644)  # read by pebble in its container
    return crt, pem_key


class Pebble:
    """Pebble and challtestsrv in one container on the project's network (alias `pebble`)."""

    def __init__(self, s: Stack, fixture: Path):
        self.name = f"boincserver-test-pebble-{os.getpid()}"
        network = f"boincserver-{s.project}_default"
        gateway = subprocess.run(["docker", "network", "inspect", network, "-f",
                                  "{{(index .IPAM.Config 0).Gateway}}"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        crt, key = listener_certificate(fixture)
        self.listener_crt = crt
        config = fixture / "pebble.json"
        # The CA validates at the host's bridge address on the project's published HTTP port:
        # through Docker's port publishing, as a CA on the internet reaches port 80.
        config.write_text(json.dumps({"pebble": {
            "listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
            "certificate": "/fixture/pebble.crt", "privateKey": "/fixture/pebble.key",
            "httpPort": s.port, "tlsPort": 5001, "ocspResponderURL": "",
            "externalAccountBindingRequired": False, "certificateValidityPeriod": VALIDITY}}))
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)
        subprocess.run(["docker", "run", "-d", "--name", self.name, "--network", network, "--network-alias", "pebble",
                        "-v", f"{fixture}:/fixture:ro", "-p", "127.0.0.1::15000", "-p", "127.0.0.1::8055",
                        pebble_image(), "/fixture/pebble.json", gateway], check=True, capture_output=True)
        self.management = self._port(15000)
        self.dns = self._port(8055)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.root = self._get(f"https://{self.management}/roots/0")
                break
            except OSError:
                assert time.monotonic() < deadline, self.log()
                time.sleep(0.5)
        self.root_file = fixture / "pebble-root.pem"
        self.root_file.write_bytes(self.root)

    def _port(self, port: int) -> str:
        return subprocess.run(["docker", "port", self.name, str(port)], capture_output=True, text=True,
                              check=True).stdout.split()[0]

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.listener_crt))
        with urllib.request.urlopen(url, context=context, timeout=5) as resp:
            return resp.read()

    def answer(self, host: str, address: str) -> None:
        """challtestsrv answers `host` with `address` from now on."""
        req = urllib.request.Request(f"http://{self.dns}/add-a", method="POST",
                                     data=json.dumps({"host": host, "addresses": [address]}).encode())
        urllib.request.urlopen(req, timeout=5).read()

    def log(self) -> str:
        return subprocess.run(["docker", "logs", self.name], capture_output=True, text=True).stderr[-4000:]

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


@pytest.fixture(scope="module")
def https_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("https")
    fixture = root / "pebble"
    fixture.mkdir()
    with running_project(root, "tls") as s:
        overlay = s.dir / "images/apache/Dockerfile"
        overlay.write_text(overlay.read_text() + MD_TIMING)
        pebble = Pebble(s, fixture)
        try:
            s.https_port = free_port()
            s.url_base = f"https://{HOST}:{s.https_port}"
            started = time.monotonic()
            s.up = run_cli("up", "--url-base", s.url_base, "--https-port", s.https_port,
                           "--acme-directory", "https://pebble:14000/dir", "--acme-ca-bundle", fixture / "pebble.crt",
                           "--acme-email", "ops@example.org", cwd=s.dir, check=False)
            s.up_seconds = time.monotonic() - started
            assert s.up.returncode == 0, f"{s.up.stdout}\n{s.up.stderr}\npebble:\n{pebble.log()}"
            s.pebble = pebble
            yield s
        finally:
            pebble.remove()


def served(s: Stack, host: str = HOST, path: str = "", cafile: Path | None = None) -> tuple[int, dict, str]:
    """GET https://HOST:PORT/PROJECT/PATH verified against pebble's root (or `cafile`),
    connected to 127.0.0.1."""
    context = ssl.create_default_context(cafile=str(cafile or s.pebble.root_file))
    with socket.create_connection(("127.0.0.1", s.https_port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            cert = tls.getpeercert()
            tls.sendall(f"GET /{s.project}/{path} HTTP/1.1\r\nHost: {host}:{s.https_port}\r\n"
                        f"Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, cert, data.decode(errors="replace")


def serial(cert: dict) -> str:
    return cert["serialNumber"]


def http(s: Stack, method: str, path: str, host: str | None) -> tuple[int, str]:
    """A plain-HTTP request to the published port; (status, Location)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request(method, path, body=b"x" if method == "POST" else None,
                 headers={"Host": f"{host}:{s.port}"} if host else {})
    resp = conn.getresponse()
    return resp.status, resp.getheader("Location") or ""


def test_up_moves_the_project_to_https_once_the_acme_ca_has_certified_it(https_project):
    s = https_project
    status, cert, body = served(s)  # verified against pebble's root, for the host name
    assert status == 200 and s.project in body
    issuer = dict(x[0] for x in cert["issuer"])
    assert issuer["commonName"].startswith("Pebble Intermediate")
    curl = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(s.pebble.root_file),
                           "--resolve", f"{HOST}:{s.https_port}:127.0.0.1", f"{s.url_base}/{s.project}/"],
                          capture_output=True, text=True)
    assert curl.stdout == "200", curl.stderr  # curl too verifies it against pebble's root
    assert "certificate for boinc.test" in s.up.stdout + s.up.stderr
    settings = tomllib.loads((s.dir / "boincserver.toml").read_text())["project"]
    assert settings["url_base"] == s.url_base and settings["https_port"] == s.https_port
    report = json.loads(run_cli("status", "--json", cwd=s.dir).stdout)
    assert report["master_url"] == f"{s.url_base}/{s.project}/"
    config = compose(s.dir, "exec", "-T", "apache", "cat", "config.xml").stdout
    assert f"<master_url>{s.url_base}/{s.project}/</master_url>" in config


def test_http_is_redirected_to_https_except_by_address_and_for_acme_challenges(https_project):
    s = https_project
    assert http(s, "GET", f"/{s.project}/", HOST) == (301, f"{s.url_base}/{s.project}/")
    # A scheduler request or an upload keeps its method and body: BOINC's clients follow 308.
    assert http(s, "POST", f"/{s.project}_cgi/cgi", HOST) == (308, f"{s.url_base}/{s.project}_cgi/cgi")
    assert http(s, "GET", "/.well-known/acme-challenge/unknown-token", HOST)[0] == 404
    # By address (the health check, `up`'s own checks) the project still answers on HTTP.
    assert http(s, "GET", f"/{s.project}/", None)[0] == 200


def test_a_real_client_attaches_over_https_and_returns_a_job_while_the_certificate_is_renewed(https_project, tmp_path):
    s = https_project
    first = serial(served(s)[1])
    started_at = compose(s.dir, "ps", "--format", "{{.Name}}").stdout  # the container, not restarted
    apache = [n for n in started_at.split() if "apache" in n][0]
    apache_started = subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", apache],
                                    capture_output=True, text=True).stdout
    failures: list[str] = []
    serials: list[str] = [first]
    requests = [0]
    stop = threading.Event()

    def watch() -> None:
        """HTTPS requests every 0.3 s through the renewal: every one must be answered."""
        deadline = time.monotonic() + 2 * VALIDITY
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                status, cert, _ = served(s)
                requests[0] += 1
                if status != 200:
                    failures.append(f"HTTP {status}")
                if serial(cert) != serials[-1]:
                    serials.append(serial(cert))
            except (OSError, ssl.SSLError) as exc:
                failures.append(repr(exc))
            time.sleep(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        ensure_example_app(s, "uppercase")
        root = str(s.pebble.root_file)
        with debian_client(s, "https", url=f"{s.url_base}/{s.project}/",
                           docker_args=("--add-host", f"{HOST}:127.0.0.1",
                                        "-v", f"{root}:/etc/ssl/certs/ca-certificates.crt:ro")) as client:
            got = run_job(s, client, "uppercase", "https_upper", "sent over https\n", tmp_path)
            assert got == "SENT OVER HTTPS\n"
            assert f"{s.url_base}/{s.project}/" in client.cmd("--get_project_status")
        deadline = time.monotonic() + 2 * VALIDITY
        while len(serials) < 2 and time.monotonic() < deadline and watcher.is_alive():
            time.sleep(1)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert len(serials) >= 2, f"no renewal seen in {requests[0]} requests; pebble:\n{s.pebble.log()}"
    assert failures == [], f"{len(failures)} of {requests[0]} requests failed: {failures[:5]}"
    assert subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", apache],
                          capture_output=True, text=True).stdout == apache_started
    logs = compose(s.dir, "logs", "apache").stdout
    assert "reloading Apache gracefully" in logs


def test_a_ca_that_cannot_reach_a_new_host_leaves_the_project_serving_as_before(https_project):
    s = https_project
    before = (s.dir / "boincserver.toml").read_text()
    s.pebble.answer("other.test", "192.0.2.1")  # TEST-NET-1: nothing answers there
    done = run_cli("up", "--url-base", f"https://other.test:{s.https_port}", cwd=s.dir, check=False, timeout=900)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "no certificate for other.test" in said and "port 80" in said, said
    assert "keeps serving" in said
    assert (s.dir / "boincserver.toml").read_text() == before
    status, cert, _ = served(s)
    assert status == 200
    config = compose(s.dir, "exec", "-T", "apache", "cat", "config.xml").stdout
    assert f"<master_url>{s.url_base}/{s.project}/</master_url>" in config


def test_a_backup_holds_the_certificates_and_the_acme_account(https_project, tmp_path):
    import io
    import tarfile

    from boincserver import sealed
    s = https_project
    out = tmp_path / "tls.backup"
    run_cli("backup", out, cwd=s.dir, env={"BOINCSERVER_BACKUP_PASSPHRASE": "a passphrase for the test"})
    with open(out, "rb") as src:
        r = sealed.OpenedReader(src, "a passphrase for the test")
        sections = {}
        while (name := sealed.next_section(r)) is not None:
            sections[name] = b"".join(sealed.section_chunks(r))
    names = tarfile.open(fileobj=io.BytesIO(sections["tls"])).getnames()
    assert "./md/md_store.json" in names  # the key that decrypts the account key: kept with it
    assert f"./md/domains/{HOST}/pubcert.pem" in names
    assert any(n.startswith("./md/accounts/") and n.endswith("account.pem") for n in names)


def own_certificate(into: Path, name: str, names: tuple[str, ...], days: tuple[int, int]) -> tuple[Path, Path]:
    """A self-signed certificate and key, as files (their own root for the check)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days[0]))
            .not_valid_after(now + datetime.timedelta(days=days[1]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, pem_key = into / f"{name}.crt", into / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return crt, pem_key


def test_your_own_certificate_replaces_acmes_and_bad_files_change_nothing(https_project, tmp_path):
    s = https_project
    before = serial(served(s)[1])
    expired = own_certificate(tmp_path, "expired", (HOST,), (-30, -1))
    elsewhere = own_certificate(tmp_path, "elsewhere", ("other.test",), (-1, 30))
    good = own_certificate(tmp_path, "good", (HOST, f"www.{HOST}"), (-1, 30))
    for (crt, key), says in ((expired, "expired on"), (elsewhere, "is for other.test, not boinc.test"),
                             ((good[0], elsewhere[1]), "key does not belong")):
        done = run_cli("tls", "set", "--cert", crt, "--key", key, cwd=s.dir, check=False)
        assert done.returncode == 1 and says in done.stderr, done.stderr
        assert serial(served(s)[1]) == before  # still pebble's, still served
    done = json.loads(run_cli("tls", "set", "--cert", good[0], "--key", good[1], "--json", cwd=s.dir).stdout)
    assert done["names"] == [HOST, f"www.{HOST}"] and done["days_left"] == 29
    status, cert, _ = served(s, cafile=good[0])  # verified against the operator's own certificate
    assert status == 200 and dict(x[0] for x in cert["subject"])["commonName"] == HOST
    assert tomllib.loads((s.dir / "boincserver.toml").read_text())["project"]["tls"] == "files"
    assert http(s, "GET", f"/{s.project}/", HOST) == (301, f"{s.url_base}/{s.project}/")
    shown = json.loads(run_cli("tls", "show", "--json", cwd=s.dir).stdout)
    assert shown["mode"] == "files" and shown["served"]["serial"].lstrip("0") == serial(cert).lstrip("0")
