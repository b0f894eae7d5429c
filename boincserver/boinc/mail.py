"""The project's mail (password resets, account e-mails): SMTP settings rendered where BOINC's
web code reads them.

Facts from the pinned server source (server_release 1.6.2):
- Every page sends mail through send_email() (html/inc/email.inc:29-86). It uses PHPMailer when
  project.inc defines a function make_php_mailer() (email.inc:45); otherwise the `mail` command
  when EMAIL_USE_CMD is defined (33-44), otherwise PHP's mail() with EMAIL_FROM (71-84), which
  needs a local sendmail our images do not have.
- PHPMailer is not in BOINC's tree: email.inc requires ../inc/PHPMailer/src/PHPMailer.php and
  ../inc/PHPMailer/src/SMTP.php (46-48, relative to html/user or html/ops), or the old
  ../inc/phpmailer/class.phpmailer.php (49-50), and otherwise prints "PHPMailer not installed"
  and fails (52-53). It does not require src/Exception.php, which PHPMailer 6 throws (and catches
  itself) on any failure, so make_php_mailer() must load it.
- send_email() calls make_php_mailer(), then AddAddress, Subject, Body and Send(); on failure it
  echoes $mail->ErrorInfo into the page and returns false (55-69). All SMTP settings (host,
  port, encryption, user, password, sender) are the function's own: the sample project.inc
  shows one inside `if (0) { ... }` (html/project.sample/project.inc:82-109).
- The password-reset page: get_passwd.php's form posts email_addr to mail_passwd.php
  (html/user/get_passwd.php:29-31), which looks the account up and calls send_auth_email()
  (mail_passwd.php:45-71), whose body holds a login link
  secure_url_base()."login_action.php?id=ID&t=TIME&h=HASH" (email.inc:98-119). When
  send_email() fails the page says "Email failed" / "Can't send email" (mail_passwd.php:66-69)
  and the site goes on serving.

boincserver installs PHPMailer 6 from Debian (libphp-phpmailer, /usr/share/php/libphp-phpmailer)
in the apache image and links html/inc/PHPMailer to it; project.inc gets a marked block that
defines make_php_mailer() from boincserver.toml's mail_* settings. The password is read from the
secrets volume when a mail is sent, never written into the web tree: a rotation (`secrets rotate
mail --stdin`) takes effect without rewriting project.inc, and the file is not in backups of the
web tree nor readable through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from boincserver.boinc.makeproject import php_string

TLS_MODES = ("none", "starttls", "tls")
DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}
# email.inc:46 checks this path (relative to html/user); the link points at Debian's package.
PHPMAILER_LINK = "html/inc/PHPMailer"
PHPMAILER_DIR = "/usr/share/php/libphp-phpmailer"
PASSWORD_FILE = "/run/boincserver/secrets/mail_password"
BEGIN = "// boincserver mail: begin"
END = "// boincserver mail: end"
# The PHP test script collects the SMTP server's answers here (client lines, which carry the
# credentials, are never kept).
TRANSCRIPT = "boincserver_mail_transcript"

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$|^\[[0-9A-Fa-f:.]+\]$")
_ADDRESS = re.compile(r"^[^@\s<>\"'\\]+@[A-Za-z0-9.-]+$")


class MailError(ValueError):
    """A mail setting that cannot work; the message names it and the fix."""


@dataclass(frozen=True)
class Mail:
    host: str
    port: int
    tls: str
    user: str
    sender: str


def check_mail(host: str, port: int, tls: str, user: str, sender: str) -> Mail | None:
    """The settings, checked; None when no host is set (the project sends no mail)."""
    if not host:
        return None
    if not _HOST.match(host):
        raise MailError(f"mail_host {host!r} is not a host name or address")
    if tls not in TLS_MODES:
        raise MailError(f"mail_tls {tls!r} is not one of {', '.join(TLS_MODES)}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise MailError(f"mail_port {port!r} is not a port number (1-65535)")
    if any(c.isspace() or c in "$'\"\\\0" for c in user):
        raise MailError(f"mail_user {user!r} may not hold spaces, quotes, backslashes or $")
    if not sender or not _ADDRESS.match(sender):
        raise MailError(f"mail_from {sender!r} is not an e-mail address: set the project's sender address")
    return Mail(host, port, tls, user, sender)


def mail_from_env(environ: dict[str, str]) -> Mail | None:
    """The settings as Compose passes them to the makeproject job (settings.py env())."""
    host = environ.get("MAIL_HOST", "").strip()
    if not host:
        return None
    tls = environ.get("MAIL_TLS", "") or "starttls"
    raw = environ.get("MAIL_PORT", "") or str(DEFAULT_PORTS.get(tls, 587))
    try:
        port = int(raw)
    except ValueError:
        raise MailError(f"mail_port {raw!r} is not a port number (1-65535)") from None
    return check_mail(host, port, tls, environ.get("MAIL_USER", ""), environ.get("MAIL_FROM", ""))


def mailer_block(mail: Mail, password_file: str = PASSWORD_FILE) -> str:
    """project.inc's make_php_mailer() for these settings (PHPMailer 6's names)."""
    secure = {"none": "''", "starttls": "'tls'", "tls": "'ssl'"}[mail.tls]
    auth = "true" if mail.user else "false"
    return f"""{BEGIN} (boincserver.toml's mail_* settings; rewritten at every start)
if (!function_exists('make_php_mailer')) {{
function make_php_mailer() {{
    require_once('../inc/PHPMailer/src/Exception.php');
    $mail = new \\PHPMailer\\PHPMailer\\PHPMailer();
    $mail->isSMTP();
    $mail->Host = {php_string(mail.host)};
    $mail->Port = {mail.port};
    $mail->SMTPSecure = {secure};
    $mail->SMTPAutoTLS = {'true' if mail.tls == 'starttls' else 'false'};
    $mail->SMTPAuth = {auth};
    $mail->Username = {php_string(mail.user)};
    $mail->Password = trim((string)@file_get_contents({php_string(password_file)}));
    $mail->CharSet = 'UTF-8';
    $mail->setFrom({php_string(mail.sender)}, PROJECT);
    if (isset($GLOBALS['{TRANSCRIPT}'])) {{
        $mail->SMTPDebug = 2;
        $mail->Debugoutput = function ($line, $level) {{
            if (strpos($line, 'CLIENT -> SERVER') === false) {{
                $GLOBALS['{TRANSCRIPT}'][] = rtrim($line);
            }}
        }};
    }}
    return $mail;
}}
}}
{END}
"""


def project_inc_with_mail(text: str, mail: Mail | None) -> str:
    """project.inc with boincserver's make_php_mailer() block for `mail` (replacing an earlier
    one), or without it when mail is None. Placed before the closing `?>`, after the sample's
    `if (0)` example; a make_php_mailer() the operator wrote at the top level wins (PHP declares
    it before ours runs, and ours is declared only if none exists)."""
    start, stop = text.find(BEGIN), text.find(END)
    if start != -1 and stop > start:
        text = text[:start] + text[stop + len(END):].removeprefix("\n")
    if mail is None:
        return text
    block = mailer_block(mail)
    close = text.rstrip().rfind("?>")
    if close != -1 and text.rstrip().endswith("?>"):
        return text[:close] + block + text[close:]
    return text + ("" if text.endswith("\n") else "\n") + block
