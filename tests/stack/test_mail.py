"""The project's mail on the shared stack: an SMTP sink (aiosmtpd) on the host, reached by the
apache service through its network's gateway; `mail set`, `up`, the password through `secrets
rotate mail --stdin`, `mail test`, and the password-reset mail that BOINC's own page sends
(get_passwd.php's form, posted to mail_passwd.php), whose link logs the account in. A wrong password: a clear error naming the
fix, the server serving as before. The shared stack's mail is cleared afterwards."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from email import message_from_bytes

import pytest

from tests.stack.conftest import Stack, apache_sh, compose, free_port, run_cli

aiosmtpd = pytest.importorskip("aiosmtpd", reason="aiosmtpd (the test extra) is not installed")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
SINK_USER = "boinc-sink"
SINK_PASSWORD = "sink-password-4711"


class Sink:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK queued"

    def to(self, address: str, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rcpts, msg in self.messages:
                if address in rcpts:
                    return msg
            time.sleep(0.2)
        raise AssertionError(f"no mail to {address}; got {[r for r, _ in self.messages]}")


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SINK_USER \
        and auth_data.password.decode() == SINK_PASSWORD
    return AuthResult(success=ok, handled=False)


def _rotate_password(stack: Stack, value: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "boincserver", "secrets", "rotate", "mail", "--stdin"],
                          input=value + "\n", cwd=stack.dir, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _gateway(stack: Stack) -> str:
    container = compose(stack.dir, "ps", "-q", "apache").stdout.strip()
    out = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.Gateway}} {{end}}",
                          container], capture_output=True, text=True, check=True).stdout.split()
    assert out, "the apache container has no network gateway"
    return out[0]


def _serving(stack: Stack) -> bool:
    with urllib.request.urlopen(f"{stack.local}/{stack.project}/", timeout=10) as r:
        return r.status == 200


@pytest.fixture
def sink(stack: Stack):
    handler = Sink()
    port = free_port()
    controller = Controller(handler, hostname="0.0.0.0", port=port, server_hostname="sink",
                            authenticator=_authenticator, auth_require_tls=False, auth_required=True)
    controller.start()
    try:
        yield handler, _gateway(stack), port
    finally:
        controller.stop()
        run_cli("mail", "set", "--clear", cwd=stack.dir)
        run_cli("up", cwd=stack.dir)
        assert "boincserver mail: begin" not in apache_sh(stack.dir, "cat html/project/project.inc")


def test_mail_test_and_password_reset_reach_the_sink(stack: Stack, sink):
    handler, host, port = sink
    assert run_cli("mail", "test", "nobody@example.org", cwd=stack.dir, check=False).returncode == 1
    run_cli("mail", "set", "--host", host, "--port", port, "--tls", "none", "--user", SINK_USER,
            "--from", "boinc@example.org", cwd=stack.dir)
    run_cli("up", cwd=stack.dir)
    inc = apache_sh(stack.dir, "cat html/project/project.inc")
    assert "boincserver mail: begin" in inc and SINK_PASSWORD not in inc

    # A wrong password: a clear error with the server's answer and the fix; pages still served.
    _rotate_password(stack, "not-the-password")
    failed = run_cli("mail", "test", "ada@example.org", cwd=stack.dir, check=False)
    assert failed.returncode == 1
    assert "535" in failed.stderr and "secrets rotate mail --stdin" in failed.stderr, failed.stderr
    assert "not-the-password" not in failed.stderr + failed.stdout
    assert _serving(stack)

    _rotate_password(stack, SINK_PASSWORD)
    sent = json.loads(run_cli("mail", "test", "ada@example.org", "--json", cwd=stack.dir).stdout)
    assert sent["sent"] and sent["mailer"] == "phpmailer" and sent["smtp_answer"].startswith("250")
    msg = handler.to("ada@example.org")
    assert msg["Subject"].endswith("mail test") and "boinc@example.org" in msg["From"]

    # BOINC's own password-reset page, for an account made with `user add`.
    address = f"reset-{port}@example.org"
    run_cli("user", "add", address, "--name", "Reset Me", "--submit-all", cwd=stack.dir)
    with urllib.request.urlopen(f"{stack.local}/{stack.project}/get_passwd.php", timeout=20) as r:
        assert 'action="mail_passwd.php"' in r.read().decode()
    form = urllib.parse.urlencode({"email_addr": address}).encode()
    with urllib.request.urlopen(f"{stack.local}/{stack.project}/mail_passwd.php", data=form, timeout=60) as r:
        page = r.read().decode()
    assert "have been emailed to" in page, page[-2000:]
    reset = handler.to(address)
    body = reset.get_payload(decode=True).decode()
    link = re.search(r"(\S+/login_action\.php\?id=\d+&t=\d+&h=[0-9a-f]{16})", body)
    assert link and link.group(1).startswith(f"{stack.local}/{stack.project}/"), body
    assert "account information" in reset["Subject"]
    # The link logs the account in: login_action.php's login_via_link() answers a redirect
    # with the auth cookie (html/user/login_action.php:76-107, html/inc/consent.inc:97).
    parts = urllib.parse.urlsplit(link.group(1))
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", f"{parts.path}?{parts.query}")
    answer = conn.getresponse()
    assert answer.status == 302, answer.read()[-1500:]
    assert "auth=" in (answer.getheader("Set-Cookie") or "")
    conn.close()
    assert _serving(stack)
