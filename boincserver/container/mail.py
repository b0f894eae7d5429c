"""The project's mail at every start (makeproject job): boinc/mail.py's make_php_mailer() block
in html/project/project.inc and html/inc/PHPMailer linked to the apache image's PHPMailer, or
both taken away when boincserver.toml sets no mail host (a project as BOINC's sample makes it)."""

from __future__ import annotations

import os
from pathlib import Path

from boincserver.boinc import mail, makeproject
from boincserver.container import common
from boincserver.container.common import Refused


def settings(environ: dict[str, str]) -> mail.Mail | None:
    """MAIL_* from Compose, checked before anything is changed."""
    try:
        return mail.mail_from_env(environ)
    except mail.MailError as exc:
        raise Refused(f"{exc} (set it with `boincserver mail set`, or fix .env)") from None


def prepare_project(project: Path, settings: mail.Mail | None) -> list[str]:
    """What changed, for the job's log."""
    changed = []
    inc = project / makeproject.PROJECT_INC
    if inc.is_file() and common.replace_file(inc, mail.project_inc_with_mail(inc.read_text(), settings)):
        changed.append(f"{makeproject.PROJECT_INC} ({'mail through ' + settings.host if settings else 'no mail'})")
    link = project / mail.PHPMAILER_LINK
    if settings is not None and link.parent.is_dir() and not os.path.lexists(link):
        link.symlink_to(mail.PHPMAILER_DIR)
        changed.append(f"{mail.PHPMAILER_LINK} -> {mail.PHPMAILER_DIR}")
    elif settings is None and link.is_symlink() and os.readlink(link) == mail.PHPMAILER_DIR:
        link.unlink()
        changed.append(f"{mail.PHPMAILER_LINK} removed")
    return changed
