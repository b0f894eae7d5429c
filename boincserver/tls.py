"""HTTPS inputs checked on the operator's machine before anything is written: the ACME
directory, the private CA's root (`--acme-ca-bundle`), and a certificate of the operator's own
(`boincserver tls set`). Each refusal names the fix.

The certificates themselves are obtained and renewed inside the apache service by Apache's own
ACME client, mod_md (images/apache/tls-config): no ACME code of ours, and the reload after a
renewal needs no root because Apache runs as the BOINC user.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from boincserver.errors import InvalidInput

MODES = ("acme", "files", "proxy")
# mod_md's keyword, and Let's Encrypt's staging CA for trying a setup without its rate limits.
DIRECTORY_KEYWORDS = {"letsencrypt": "letsencrypt",
                      "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory"}
EXPIRY_WARNING_DAYS = 14


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidInput(f"TLS mode {mode!r} is not known: use acme (a certificate from an ACME CA), "
                           "files (your own, `boincserver tls set`) or proxy (a proxy in front terminates TLS)")
    return mode


def check_directory(url: str) -> str:
    """An ACME directory as mod_md's MDCertificateAuthority takes it."""
    if url in DIRECTORY_KEYWORDS:
        return url
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() or c in "\"'<>\\" for c in url):
        raise InvalidInput(f"ACME directory {url!r} is not valid: give an https:// URL such as "
                           "https://acme-v02.api.letsencrypt.org/directory, or letsencrypt / letsencrypt-staging")
    return url


def directory_for_apache(directory: str) -> str:
    return DIRECTORY_KEYWORDS.get(directory, directory)


def check_email(address: str) -> str:
    if address and (address.count("@") != 1 or not all(c.isalnum() or c in "._%+-@" for c in address)):
        raise InvalidInput(f"ACME contact {address!r} is not an e-mail address: give one such as ops@example.org")
    return address


def read_pem_file(path, what: str, option: str) -> bytes:
    """The bytes of a PEM file the operator named with `option`; InvalidInput naming it if unreadable."""
    try:
        return path.expanduser().read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} {path} ({exc.strerror or exc})",
                           advice=f"give a readable PEM file with {option}") from None


def read_certificates(pem: bytes | str, what: str) -> list[x509.Certificate]:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise InvalidInput(f"{what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                           advice="give the CA's root certificate in PEM form")
    return certs


def check_ca_bundle(pem: str) -> str:
    """The private ACME CA's TLS root, as mod_md's MDCACertificateFile reads it."""
    read_certificates(pem, "the ACME CA bundle")
    return pem


def ca_bundle_b64(pem: str) -> str:
    return base64.b64encode(pem.encode()).decode()


# -- a certificate of the operator's own ---------------------------------------------------------
@dataclass(frozen=True)
class CertificateFacts:
    serial: str
    subject: str
    names: tuple[str, ...]
    not_after: datetime.datetime
    days_left: int


def names_of(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple([n.lower() for n in san.get_values_for_type(x509.DNSName)]
                 + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)])


def covers(names: tuple[str, ...], host: str) -> bool:
    """RFC 6125: an exact name, or a wildcard for exactly one leftmost label; IPs exactly."""
    host = host.lower().strip("[]")
    try:
        ip = str(ipaddress.ip_address(host))
        return ip in names
    except ValueError:
        pass
    for name in names:
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def check_certificate_files(chain_pem: bytes, key_pem: bytes, host: str,
                            now: datetime.datetime | None = None) -> CertificateFacts:
    """A certificate chain and key that Apache can serve for `host` now, or InvalidInput."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    chain = read_certificates(chain_pem, "the certificate file")
    leaf = chain[0]
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"the key file is not an unencrypted PEM private key ({exc})",
                           advice="give the key as PEM without a passphrase (openssl pkey -in KEY -out KEY.pem)") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        raise InvalidInput("the key does not belong to the certificate (the first one in the certificate file)",
                           advice="give the key that was made with this certificate's request")
    not_after = leaf.not_valid_after_utc
    if not_after <= now:
        raise InvalidInput(f"the certificate expired on {not_after:%Y-%m-%d %H:%M} UTC",
                           advice="renew it with your CA, then run `boincserver tls set` with the new files")
    if leaf.not_valid_before_utc > now:
        raise InvalidInput(f"the certificate is valid only from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                           advice="check this machine's clock, or wait until then")
    names = names_of(leaf)
    if not covers(names, host):
        shown = ", ".join(names) or "no subjectAltName"
        raise InvalidInput(f"the certificate is for {shown}, not {host}",
                           advice=f"give a certificate whose subjectAltName names {host}, or change the URL base")
    return CertificateFacts(f"{leaf.serial_number:X}", leaf.subject.rfc4514_string(), names, not_after,
                            (not_after - now).days)


# -- what mod_md says about the certificate (its md-status handler's JSON) ----------------------
MD_COMPLETE = 2  # mod_md's MD_S_COMPLETE: a certificate is installed and served


@dataclass(frozen=True)
class CertificateState:
    ready: bool
    serial: str = ""
    not_after: str = ""
    issuer: str = ""
    errors: int = 0
    problem: str = ""  # mod_md's last error, as it says it
    advice: str = ""


def certificate_state(md_status: dict, directory: str = "") -> CertificateState:
    """mod_md's status of one domain (tls-config's /.boincserver/md-status/HOST) as facts and,
    after a failed attempt, what to do about it."""
    cert = md_status.get("cert") or {}
    leaf = next((v for v in cert.values() if isinstance(v, dict) and "serial" in v), {})
    renewal = md_status.get("renewal") or {}
    last = renewal.get("last") or {}
    ready = md_status.get("state") == MD_COMPLETE and bool(leaf)
    problem = " ".join(str(last.get(k, "")) for k in ("problem", "detail") if last.get(k)).strip()
    # The CA's own verdict on a failed validation is in the log, not in `last`.
    for entry in (renewal.get("log") or {}).get("entries", []):
        if entry.get("type") in ("renewal-error", "message-errored") and "challenge" in str(entry.get("detail", "")):
            problem = f"{problem} ({entry['detail']})" if problem else str(entry["detail"])
            break
    return CertificateState(ready=ready, serial=leaf.get("serial", ""),
                            not_after=(cert.get("valid") or {}).get("until", ""), issuer=leaf.get("issuer-name", ""),
                            errors=int(renewal.get("errors") or 0), problem=problem,
                            advice=advice_for(problem, md_status.get("name", ""), directory) if problem else "")


def advice_for(problem: str, host: str, directory: str) -> str:
    """What an operator does about mod_md's last error."""
    text = problem.lower()
    where = directory or "the ACME directory"
    if "ratelimited" in text or "rate limit" in text:
        return "the CA limits how often it issues: wait, and try setups with --acme-directory letsencrypt-staging"
    if "rejectedidentifier" in text or "policy forbids" in text:
        return f"the CA will not issue for {host}: use a public DNS name, or your own certificate (`boincserver tls set`)"
    if "certificate verify" in text or "ssl" in text or "self-signed" in text or "self signed" in text:
        return f"Apache does not trust {where}'s TLS certificate: give its CA with --acme-ca-bundle FILE"
    if "contacting acme server" in text or "connection refused" in text or "could not resolve" in text:
        return (f"Apache cannot reach {where}: check --acme-directory and that the apache container "
                "reaches it (DNS, firewall, proxy)")
    if "challenge" in text or "validat" in text or "authorization" in text or "connection" in text or "dns" in text:
        return (f"the CA could not fetch http://{host}/.well-known/acme-challenge/ from this server: point "
                f"{host}'s DNS at this machine and make port 80 reach the project (`--http-port 80`, firewall)")
    if "contact" in text:
        return "give the ACME account a contact address: --acme-email ADDR"
    return "see `boincserver logs apache`; Apache retries by itself"


@dataclass(frozen=True)
class Served:
    serial: str
    not_after: datetime.datetime
    issuer: str


def served_certificate(address: str, port: int, host: str, timeout: float = 5.0) -> Served | None:
    """The certificate a TLS server at address:port shows for `host` (SNI), unverified: the
    CA may be private. None when nothing answers or the answer is mod_md's stand-in."""
    import socket
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls_sock:
                der = tls_sock.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    cert = x509.load_der_x509_certificate(der)
    issuer = cert.issuer.rfc4514_string()
    if "Fallback" in issuer:  # mod_md's "Apache Managed Domain Fallback", served until the real one
        return None
    return Served(f"{cert.serial_number:X}", cert.not_valid_after_utc, issuer)
