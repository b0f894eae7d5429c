"""The project's mail: settings checks, project.inc's make_php_mailer() block (boinc/mail.py),
the makeproject job's part (container/mail.py) and `boincserver mail` (mail.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boincserver.boinc import mail
from boincserver.container import mail as container_mail
from boincserver.container.common import Refused
from boincserver.errors import InvalidInput
from boincserver.settings import Settings

SAMPLE = Path("/tmp/bsrc/server/html/project.sample/project.inc")
INC = """<?php
require_once("../inc/util.inc");
define("PROJECT", "demo");
if (0) {
function make_php_mailer() {
    $mail = new PHPMailer();
}
}   // if(0)

?>
"""
SMTP = mail.Mail("smtp.example.org", 587, "starttls", "ada", "boinc@example.org")


def test_no_host_means_no_mail():
    assert mail.check_mail("", 0, "bogus", "", "") is None
    assert mail.mail_from_env({}) is None and mail.mail_from_env({"MAIL_HOST": " "}) is None


@pytest.mark.parametrize("args, words", [
    (("smtp x", 25, "none", "", "a@b.org"), "mail_host"),
    (("smtp.b.org", 25, "ssl", "", "a@b.org"), "none, starttls, tls"),
    (("smtp.b.org", 0, "none", "", "a@b.org"), "mail_port"),
    (("smtp.b.org", 70000, "none", "", "a@b.org"), "mail_port"),
    (("smtp.b.org", 25, "none", "a b", "a@b.org"), "mail_user"),
    (("smtp.b.org", 25, "none", "a$b", "a@b.org"), "mail_user"),
    (("smtp.b.org", 25, "none", "", ""), "mail_from"),
    (("smtp.b.org", 25, "none", "", "a@b@c"), "mail_from"),
])
def test_bad_settings_are_named(args, words):
    with pytest.raises(mail.MailError, match=words):
        mail.check_mail(*args)


def test_env_defaults_port_from_tls_mode():
    got = mail.mail_from_env({"MAIL_HOST": "smtp.b.org", "MAIL_TLS": "tls", "MAIL_FROM": "a@b.org"})
    assert got == mail.Mail("smtp.b.org", 465, "tls", "", "a@b.org")
    assert mail.mail_from_env({"MAIL_HOST": "h", "MAIL_FROM": "a@b.org"}).port == 587
    with pytest.raises(mail.MailError, match="mail_port"):
        mail.mail_from_env({"MAIL_HOST": "h", "MAIL_PORT": "x", "MAIL_FROM": "a@b.org"})


def test_block_renders_phpmailer_settings_and_reads_password_at_runtime():
    block = mail.mailer_block(SMTP)
    assert "$mail = new \\PHPMailer\\PHPMailer\\PHPMailer();" in block
    assert "$mail->Host = 'smtp.example.org';" in block and "$mail->Port = 587;" in block
    assert "$mail->SMTPSecure = 'tls';" in block and "$mail->SMTPAutoTLS = true;" in block
    assert "$mail->SMTPAuth = true;" in block and "$mail->Username = 'ada';" in block
    assert "file_get_contents('/run/boincserver/secrets/mail_password')" in block
    assert "require_once('../inc/PHPMailer/src/Exception.php');" in block
    assert "if (!function_exists('make_php_mailer'))" in block
    plain = mail.mailer_block(mail.Mail("sink", 2525, "none", "", "a@b.org"))
    assert "$mail->SMTPSecure = '';" in plain and "$mail->SMTPAutoTLS = false;" in plain
    assert "$mail->SMTPAuth = false;" in plain
    assert "$mail->SMTPSecure = 'ssl';" in mail.mailer_block(mail.Mail("h", 465, "tls", "", "a@b.org"))
    # Client lines of the transcript carry the credentials: never kept.
    assert "strpos($line, 'CLIENT -> SERVER') === false" in block


def test_php_string_escapes():
    assert mail.php_string("a'b\\c") == "'a\\'b\\\\c'"


def test_project_inc_block_is_idempotent_replaced_and_removed():
    once = mail.project_inc_with_mail(INC, SMTP)
    assert once.count(mail.BEGIN) == 1 and once.rstrip().endswith("?>")
    assert once.index("}   // if(0)") < once.index(mail.BEGIN) < once.index("?>")
    assert mail.project_inc_with_mail(once, SMTP) == once
    other = mail.project_inc_with_mail(once, mail.Mail("sink", 2525, "none", "", "a@b.org"))
    assert other.count(mail.BEGIN) == 1 and "'sink'" in other and "smtp.example.org" not in other
    assert mail.project_inc_with_mail(other, None) == INC
    assert mail.project_inc_with_mail(INC, None) == INC
    no_close = "<?php\ndefine('X', 1);\n"
    added = mail.project_inc_with_mail(no_close, SMTP)
    assert added.startswith(no_close) and mail.project_inc_with_mail(added, SMTP) == added


@pytest.mark.skipif(not SAMPLE.is_file(), reason="the pinned BOINC source is not extracted")
def test_pinned_sample_keeps_its_example_inert():
    text = SAMPLE.read_text()
    out = mail.project_inc_with_mail(text, SMTP)
    assert out.index("}   // if(0)") < out.index(mail.BEGIN)
    assert mail.project_inc_with_mail(out, None) == text


def test_settings_refuse_bad_mail_with_advice():
    assert Settings("demo").env().keys().isdisjoint({"MAIL_HOST", "MAIL_TLS"})
    s = Settings("demo", mail_host="sink", mail_port=2525, mail_tls="none", mail_from="a@b.org")
    assert s.env()["MAIL_HOST"] == "sink" and s.env()["MAIL_PORT"] == "2525"
    with pytest.raises(InvalidInput) as caught:
        Settings("demo", mail_host="sink", mail_tls="ssl", mail_from="a@b.org")
    assert "mail_tls" in str(caught.value) and "mail set" in caught.value.advice


def _project(tmp_path: Path) -> Path:
    (tmp_path / "html/project").mkdir(parents=True)
    (tmp_path / "html/inc").mkdir(parents=True)
    (tmp_path / "html/project/project.inc").write_text(INC)
    return tmp_path


def test_job_writes_block_and_link_then_takes_them_away(tmp_path):
    project = _project(tmp_path)
    done = container_mail.prepare_project(project, SMTP)
    assert len(done) == 2
    assert os.readlink(project / mail.PHPMAILER_LINK) == mail.PHPMAILER_DIR
    assert mail.BEGIN in (project / "html/project/project.inc").read_text()
    assert container_mail.prepare_project(project, SMTP) == []
    assert len(container_mail.prepare_project(project, None)) == 2
    assert (project / "html/project/project.inc").read_text() == INC
    assert not os.path.lexists(project / mail.PHPMAILER_LINK)
    assert container_mail.prepare_project(project, None) == []


def test_job_leaves_an_operators_phpmailer_folder(tmp_path):
    project = _project(tmp_path)
    (project / mail.PHPMAILER_LINK).mkdir()
    container_mail.prepare_project(project, SMTP)
    container_mail.prepare_project(project, None)
    assert (project / mail.PHPMAILER_LINK).is_dir()


def test_job_refuses_bad_env_before_changing_anything():
    with pytest.raises(Refused, match="mail_tls.*mail set"):
        container_mail.settings({"MAIL_HOST": "h", "MAIL_TLS": "ssl", "MAIL_FROM": "a@b.org"})
