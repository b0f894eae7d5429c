"""HTTPS inputs (boincserver/tls.py): the checks made before anything is written, and what
mod_md's status says, turned into a verdict and advice."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from boincserver import tls
from boincserver.errors import InvalidInput
from boincserver.settings import Settings

NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc)


def make_certificate(names=("boinc.example.org",), days=(-1, 90), key=None, ca=False):
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "no name")])
    alt = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in names]
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW + datetime.timedelta(days=days[0]))
               .not_valid_after(NOW + datetime.timedelta(days=days[1])))
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


# -- the operator's own certificate ----------------------------------------------------------
def test_a_good_certificate_and_its_key_are_accepted_with_their_facts():
    chain, key = make_certificate(("boinc.example.org", "www.example.org"))
    facts = tls.check_certificate_files(chain, key, "boinc.example.org", now=NOW)
    assert facts.names == ("boinc.example.org", "www.example.org")
    assert facts.days_left == 90


def test_an_expired_certificate_is_refused_naming_the_date_and_the_fix():
    chain, key = make_certificate(days=(-90, -1))
    with pytest.raises(InvalidInput, match="expired on 2026-12-01") as err:
        tls.check_certificate_files(chain, key, "boinc.example.org", now=NOW)
    assert "tls set" in err.value.advice


def test_a_certificate_for_another_host_is_refused_naming_both():
    chain, key = make_certificate(("other.example.org",))
    with pytest.raises(InvalidInput, match="is for other.example.org, not boinc.example.org"):
        tls.check_certificate_files(chain, key, "boinc.example.org", now=NOW)


def test_a_key_of_another_certificate_is_refused():
    chain, _ = make_certificate()
    _, other_key = make_certificate()
    with pytest.raises(InvalidInput, match="key does not belong"):
        tls.check_certificate_files(chain, other_key, "boinc.example.org", now=NOW)


def test_files_that_are_not_pem_are_refused():
    chain, key = make_certificate()
    with pytest.raises(InvalidInput, match="no PEM certificate"):
        tls.check_certificate_files(b"not a certificate", key, "boinc.example.org", now=NOW)
    with pytest.raises(InvalidInput, match="not an unencrypted PEM private key"):
        tls.check_certificate_files(chain, b"not a key", "boinc.example.org", now=NOW)


def test_a_certificate_not_yet_valid_points_at_the_clock():
    chain, key = make_certificate(days=(2, 90))
    with pytest.raises(InvalidInput, match="valid only from") as err:
        tls.check_certificate_files(chain, key, "boinc.example.org", now=NOW)
    assert "clock" in err.value.advice


@pytest.mark.parametrize("names, host, ok", [
    (("*.example.org",), "boinc.example.org", True),
    (("*.example.org",), "a.boinc.example.org", False),  # one label only (RFC 6125)
    (("*.example.org",), "example.org", False),
    (("BOINC.Example.org",), "boinc.example.ORG", True),
    (("192.0.2.7",), "192.0.2.7", True),
    (("192.0.2.7",), "192.0.2.8", False),
])
def test_host_names_are_matched_as_rfc_6125_says(names, host, ok):
    chain, key = make_certificate(names)
    cert = x509.load_pem_x509_certificate(chain)
    assert tls.covers(tls.names_of(cert), host) is ok


# -- settings ---------------------------------------------------------------------------------
def test_an_https_url_serves_tls_by_acme_unless_a_proxy_ends_it():
    s = Settings(project="demo", url_base="https://boinc.example.org", acme_email="ops@example.org")
    assert s.serves_https and s.published_https_port == 443
    assert s.env()["TLS"] == "acme" and s.env()["ACME_EMAIL"] == "ops@example.org"
    assert not s.with_changes(tls="proxy").serves_https
    assert not s.with_changes(url_base="http://boinc.example.org").serves_https


@pytest.mark.parametrize("changes, message", [
    ({"tls": "certbot"}, "TLS mode 'certbot' is not known"),
    ({"acme_directory": "http://ca.example.org/dir"}, "give an https:// URL"),
    ({"acme_email": "not an address"}, "not an e-mail address"),
    ({"acme_ca_bundle": "junk"}, "holds no PEM certificate"),
    ({"https_port": 70000}, "HTTPS port 70000 is not valid"),
    ({"https_port": 8080, "http_port": 8080}, "cannot share port 8080"),
])
def test_bad_https_settings_are_refused_with_the_fix(changes, message):
    with pytest.raises(InvalidInput, match=message):
        Settings(project="demo", url_base="https://boinc.example.org", **changes)


def test_acme_needs_a_contact_and_a_dns_name_but_an_older_project_still_loads():
    s = Settings(project="demo", url_base="https://boinc.example.org")  # loads: no check on load
    with pytest.raises(InvalidInput, match="needs a contact address") as err:
        s.check_https()
    assert "--acme-email" in err.value.advice and "--tls proxy" in err.value.advice
    s.with_changes(mail_from="boinc@example.org").check_https()  # the project's sender will do
    with pytest.raises(InvalidInput, match="DNS names, not the address 192.0.2.7"):
        Settings(project="demo", url_base="https://192.0.2.7", acme_email="ops@example.org").check_https()
    Settings(project="demo", url_base="https://192.0.2.7", tls="proxy").check_https()


def test_a_private_cas_root_travels_to_apache_in_base64():
    pem, _ = make_certificate(("ca.example.org",), ca=True)
    s = Settings(project="demo", url_base="https://boinc.example.org", acme_email="ops@example.org",
                 acme_directory="https://ca.example.org/dir", acme_ca_bundle=pem.decode())
    import base64
    assert base64.b64decode(s.env()["ACME_CA_PEM_B64"]) == pem
    assert s.env()["ACME_DIRECTORY"] == "https://ca.example.org/dir"
    staging = s.with_changes(acme_directory="letsencrypt-staging")
    assert staging.env()["ACME_DIRECTORY"] == "https://acme-staging-v02.api.letsencrypt.org/directory"


# -- mod_md's status ----------------------------------------------------------------------------
# Shapes recorded from mod_md 2.6.10 (Debian bookworm's apache2) against pebble.
READY = {"name": "boinc.test", "state": 2, "cert": {
    "rsa": {"issuer-name": "/CN=Pebble Intermediate CA 235c74", "serial": "1A25665132BFB661",
            "valid": {"from": "Wed, 02 Dec 2026 06:05:06 GMT", "until": "Wed, 02 Dec 2026 06:10:05 GMT"}},
    "valid": {"from": "Wed, 02 Dec 2026 06:05:06 GMT", "until": "Wed, 02 Dec 2026 06:10:05 GMT"}}}
UNREACHABLE_CA = {"name": "boinc.test", "state": 1, "state-descr": "certificate(rsa) is missing", "cert": {},
                  "renewal": {"errors": 2, "last": {
                      "status": 111, "status-description": "Connection refused",
                      "detail": "Unsuccessful in contacting ACME server at <https://pebble:14000/dir>.",
                      "activity": "Contacting ACME server for boinc.test at https://pebble:14000/dir"}}}
CHALLENGE_FAILED = {"name": "boinc.test", "state": 1, "cert": {}, "renewal": {"errors": 4, "last": {
    "status": 22, "detail": "Error waiting on domain names to be validated",
    "activity": "Monitoring challenge status for boinc.test"}, "log": {"entries": [
        {"type": "renewal-error", "detail": "domain authorization for boinc.test failed, CA considers answer "
                                            "to challenge invalid."}]}}}


def test_a_complete_domain_is_ready_with_its_serial_and_expiry():
    state = tls.certificate_state(READY)
    assert state.ready and state.serial == "1A25665132BFB661" and state.problem == ""
    assert state.not_after == "Wed, 02 Dec 2026 06:10:05 GMT" and "Pebble" in state.issuer


def test_an_unreachable_ca_names_the_directory_option():
    state = tls.certificate_state(UNREACHABLE_CA, "https://pebble:14000/dir")
    assert not state.ready and state.errors == 2
    assert "Unsuccessful in contacting ACME server" in state.problem
    assert "cannot reach https://pebble:14000/dir" in state.advice and "--acme-directory" in state.advice


def test_a_failed_validation_points_at_dns_and_port_80():
    state = tls.certificate_state(CHALLENGE_FAILED)
    assert "CA considers answer to challenge invalid" in state.problem
    assert "port 80" in state.advice and "DNS" in state.advice


@pytest.mark.parametrize("problem, says", [
    ("urn:ietf:params:acme:error:rateLimited too many certificates", "letsencrypt-staging"),
    ("urn:ietf:params:acme:error:rejectedIdentifier", "will not issue"),
    ("SSL certificate problem: self-signed certificate in certificate chain", "--acme-ca-bundle"),
    ("something new", "logs apache"),
])
def test_each_kind_of_refusal_has_its_advice(problem, says):
    assert says in tls.advice_for(problem, "boinc.test", "https://ca.example.org/dir")
