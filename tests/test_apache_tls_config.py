"""images/apache/tls-config: the Apache configuration each start writes for HTTPS, rendered
here by the real script with the environment compose.yaml passes (the stack test serves it)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "images" / "apache" / "tls-config"


def render(tmp_path: Path, host: str = "boinc.example.org", **env) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(SCRIPT), host], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "TLS_STORE": str(tmp_path), **env})


ACME = {"TLS": "acme", "URL_BASE": "https://boinc.example.org", "TLS_URL_BASE": "https://boinc.example.org",
        "ACME_DIRECTORY": "letsencrypt", "ACME_EMAIL": "ops@example.org"}


def test_no_tls_writes_nothing(tmp_path):
    done = render(tmp_path, URL_BASE="http://boinc.example.org")
    assert done.returncode == 0 and done.stdout == ""


def test_acme_manages_the_host_with_mod_md_and_redirects_once_a_certificate_exists(tmp_path):
    done = render(tmp_path, **ACME)
    assert done.returncode == 0, done.stderr
    conf = done.stdout
    assert conf.startswith("Listen 443\n")
    for line in ("  LoadModule md_module /usr/lib/apache2/modules/mod_md.so", f"MDStoreDir {tmp_path}/md", "MDCertificateAuthority letsencrypt", "MDCertificateAgreement accepted",
                 "MDContactEmail ops@example.org", "MDCAChallenges http-01", "MDomain boinc.example.org",
                 f"<IfFile {tmp_path}/md/domains/boinc.example.org/pubcert.pem>"):
        assert line in conf.splitlines(), line
    assert "MDCACertificateFile" not in conf
    # The default vhost (first on port 80) never redirects; the named one does, when ready.
    assert conf.index("ServerName localhost") < conf.index("ServerName boinc.example.org")
    assert "RewriteRule ^ https://boinc.example.org%{REQUEST_URI} [R=301,L]" in conf
    assert "RewriteRule ^ https://boinc.example.org%{REQUEST_URI} [R=308,L]" in conf
    assert "!^/\\.well-known/acme-challenge/" in conf


def test_a_private_cas_root_is_written_for_mod_md_to_trust(tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    done = render(tmp_path, **{**ACME, "ACME_CA_PEM_B64": base64.b64encode(pem.encode()).decode(),
                               "ACME_DIRECTORY": "https://pebble:14000/dir"})
    assert f"MDCACertificateFile {tmp_path}/acme-ca.pem" in done.stdout.splitlines()
    assert "MDCertificateAuthority https://pebble:14000/dir" in done.stdout.splitlines()
    assert (tmp_path / "acme-ca.pem").read_text() == pem


def test_while_moving_to_https_the_certificate_is_obtained_without_redirecting(tmp_path):
    done = render(tmp_path, **{**ACME, "URL_BASE": "http://boinc.example.org:8080"})
    assert "MDomain boinc.example.org" in done.stdout and "Rewrite" not in done.stdout


def test_own_files_are_served_only_once_they_exist(tmp_path):
    """Apache evaluates <IfFile> at each (graceful) start: files that `tls set` puts in the tls
    volume later switch HTTPS on at the reload that follows, with no new tls-config run."""
    done = render(tmp_path, **{**ACME, "TLS": "files"})
    assert done.returncode == 0 and "tls set" in done.stderr
    conf = done.stdout
    gate = (f"<IfFile {tmp_path}/files/fullchain.pem>\n  <IfFile {tmp_path}/files/privkey.pem>\n"
            "    Define BOINCSERVER_TLS_READY\n")
    assert conf.startswith(gate)
    assert "<IfDefine BOINCSERVER_TLS_READY>\n  Listen 443\n</IfDefine>" in conf
    assert f"<IfDefine BOINCSERVER_TLS_READY>\n<VirtualHost *:443>" in conf
    assert f"  SSLCertificateFile {tmp_path}/files/fullchain.pem" in conf
    assert "MDomain" not in conf and "md_module" not in conf


@pytest.mark.parametrize("env", [
    {"ACME_DIRECTORY": "ftp://ca.example.org/dir"},
    {"ACME_DIRECTORY": "https://ca.example.org/dir\nInclude /etc/passwd"},
    {"ACME_EMAIL": "ops@example.org\nInclude /x"},
    {"TLS_URL_BASE": "https://boinc.example.org\nInclude /x"},
])
def test_no_value_can_add_a_directive(tmp_path, env):
    done = render(tmp_path, **{**ACME, **env})
    assert done.returncode != 0 and "Include" not in done.stdout
