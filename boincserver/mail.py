"""The project's mail: `boincserver mail set|show|test`.

The settings live in boincserver.toml (mail_*; boinc/mail.py checks them and writes them into
project.inc at every start); the password is the secret `mail` (`secrets rotate mail --stdin`).
`mail test` sends through BOINC's own send_email() in the apache service (php/mail_test.php),
so it proves what the password-reset page will do.
"""

from __future__ import annotations

import json

from boincserver import paths
from boincserver.boinc import mail, submitters
from boincserver.context import Project
from boincserver.errors import InvalidInput, ProjectError
from boincserver.inproject import in_apache

TEST_SCRIPT = paths.PACKAGE_DIR / "php" / "mail_test.php"
ADVICE_SET = "set the SMTP server with `boincserver mail set --host HOST --from ADDRESS`, then `boincserver up`"


def _shown(settings) -> dict:
    return {"host": settings.mail_host, "port": settings.mail_port or mail.DEFAULT_PORTS.get(settings.mail_tls, 587),
            "tls": settings.mail_tls, "user": settings.mail_user, "from": settings.mail_from}


def show(project: Project) -> dict:
    s = project.settings
    return {"configured": bool(s.mail_host), **_shown(s)}


def set_mail(project: Project, *, host: str | None = None, port: int | None = None, tls: str | None = None,
             user: str | None = None, sender: str | None = None, clear: bool = False) -> dict:
    """New mail settings, checked and saved in boincserver.toml (the server takes them at the next
    `boincserver up`); clear: no mail (the project as BOINC's sample makes it)."""
    from boincserver.project import write_settings
    if clear:
        new = project.settings.with_changes(mail_host="", mail_port=0, mail_tls="starttls", mail_user="",
                                            mail_from="")
    else:
        new = project.settings.with_changes(mail_host=host, mail_port=port, mail_tls=tls, mail_user=user,
                                            mail_from=sender)
    changed = new != project.settings
    write_settings(project, new)
    return {"changed": changed, **show(project)}


def _smtp_answer(transcript: list[str]) -> tuple[str, list[str]]:
    """The SMTP server's telling answer (its last refusal, else its last line) and PHPMailer's
    own reasons (connection and authentication errors), from the kept transcript. PHPMailer's
    ErrorInfo alone says "SMTP connect() failed" even when the server refused the login."""
    said = [line.split("SERVER -> CLIENT:", 1)[1].strip() for line in transcript if "SERVER -> CLIENT:" in line]
    reasons = [line.strip() for line in transcript if "SERVER -> CLIENT:" not in line and line.strip()
               and "SMTP connect() failed" not in line]
    refusals = [line for line in said if line[:1] in ("4", "5")]
    accepted = [line for line in said if line.startswith("250")]  # the last: the message taken
    return (refusals or accepted or said or [""])[-1], reasons


def send_test(project: Project, address: str) -> dict:
    """One message to ADDRESS through the project's own mail path; our error if it fails."""
    try:
        address = submitters.check_email(address)
    except submitters.SubmitterError as exc:
        raise InvalidInput(str(exc), advice="give the address to send the test message to") from None
    s = project.settings
    if not s.mail_host:
        raise ProjectError("the project has no mail settings: BOINC's pages would try a local sendmail, "
                           "which the apache image does not have", advice=ADVICE_SET)
    script = TEST_SCRIPT.read_bytes()
    ran = in_apache(project, ["php", "--", address], stdin=script)
    try:
        answer = json.loads(ran.out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ProjectError(f"the mail test did not run in the apache service (exit {ran.code}): "
                           f"{(ran.err or ran.out.decode(errors='replace')).strip()[-1500:]}",
                           advice="see `boincserver logs apache`; `boincserver up` applies the mail settings") from None
    result = {"address": address, "sent": answer["sent"], "mailer": answer["mailer"], "server": _shown(s),
              "smtp_answer": ""}
    result["smtp_answer"], reasons = _smtp_answer(answer.get("transcript") or [])
    if answer["mailer"] != "phpmailer":
        raise ProjectError(f"the running project does not send through SMTP yet (BOINC's send_email() "
                           f"chose {answer['mailer']})", advice="`boincserver up` writes the mail settings into "
                                                                "project.inc")
    if not answer["sent"]:
        error = "; ".join([answer.get("error") or "no reason given"] + reasons[:2])
        said = f"; the server said: {result['smtp_answer']}" if result["smtp_answer"] else ""
        raise ProjectError(f"mail to {address} through {s.mail_host}:{result['server']['port']} "
                           f"({s.mail_tls}) failed: {error}{said}", advice=_advice(error, result["smtp_answer"]))
    return result


def _advice(error: str, said: str) -> str:
    text = f"{error} {said}".lower()
    if "authenticat" in text or said.startswith("535"):
        return ("check the password (`boincserver secrets rotate mail --stdin`; taken at the next "
                "message) and mail_user (`boincserver mail set --user`, then `boincserver up`)")
    if "connect" in text:
        return ("check mail_host and mail_port (`boincserver mail set --host --port`) and that the "
                "apache service can reach them, then `boincserver up`")
    if "tls" in text or "ssl" in text or "crypto" in text or "certificate" in text:
        return ("check mail_tls: starttls for port 587, tls for 465, none for a local relay "
                "(`boincserver mail set --tls`), then `boincserver up`")
    if "sender" in text or "from" in text:
        return "check mail_from (`boincserver mail set --from`), then `boincserver up`"
    return "check the settings (`boincserver mail show`) against the SMTP server's documentation"
