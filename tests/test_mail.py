"""The project's mail: settings checks, project.inc's make_php_mailer() block (boinc/mail.py),
the makeproject job's part (container/mail.py) and `boincserver mail` (mail.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_users import demo  # noqa: F401 (fixture: a project whose apache runs)
from typer.testing import CliRunner

from boincserver import mail as host_mail
from boincserver.boinc import mail
from boincserver.commands import cli
from boincserver.commands import mail as mail_commands
from boincserver.container import mail as container_mail
from boincserver.container.common import Refused
from boincserver.errors import InvalidInput, ProjectError
from boincserver.settings import Settings, load

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


# -- from the host (tests/fakes.py's RecordingEngine) --------------------------------------------
SERVER_OK = ["SERVER -> CLIENT: 220 sink ESMTP", "SERVER -> CLIENT: 250 HELP",
             "SERVER -> CLIENT: 235 2.7.0 Authentication successful", "SERVER -> CLIENT: 250 OK queued",
             "SERVER -> CLIENT: 221 Bye"]
SERVER_535 = ["SERVER -> CLIENT: 220 sink ESMTP", "SERVER -> CLIENT: 535 5.7.8 Authentication credentials invalid",
              "SMTP ERROR: Password command failed: 535 5.7.8 Authentication credentials invalid",
              "SMTP Error: Could not authenticate.", "SMTP connect() failed. https://example.invalid/wiki"]


def _with_mail(demo):
    host_mail.set_mail(demo, host="smtp.example.org", user="ada", sender="boinc@example.org")
    return demo


def test_set_saves_checked_settings_and_clear_takes_them_away(demo):
    got = host_mail.set_mail(demo, host="smtp.example.org", tls="tls", sender="boinc@example.org")
    assert got == {"changed": True, "configured": True, "host": "smtp.example.org", "port": 465, "tls": "tls",
                   "user": "", "from": "boinc@example.org"}
    assert load(demo.dir).mail_host == "smtp.example.org"
    assert "MAIL_HOST=smtp.example.org" in (demo.dir / ".env").read_text()
    assert host_mail.set_mail(demo, host="smtp.example.org")["changed"] is False
    with pytest.raises(InvalidInput, match="mail_tls"):
        host_mail.set_mail(demo, tls="ssl")
    assert load(demo.dir).mail_tls == "tls"  # a refused change writes nothing
    assert host_mail.set_mail(demo, clear=True)["configured"] is False
    assert "MAIL_HOST" not in (demo.dir / ".env").read_text()
    assert not demo.engine.calls


def test_send_test_runs_boincs_send_email_in_apache(demo):
    _with_mail(demo)
    demo.engine.on("exec", "php", service="apache",
                   out={"sent": True, "mailer": "phpmailer", "error": "", "transcript": SERVER_OK})
    got = host_mail.send_test(demo, "Ada@Example.org")
    assert got["sent"] and got["smtp_answer"] == "250 OK queued" and got["address"] == "ada@example.org"
    call = demo.engine.find("exec", "php")
    assert call.command == ["php", "--", "ada@example.org"]
    assert call.args["user"] == demo.settings.boinc_user and call.args["workdir"] == demo.settings.project_root
    assert b'require_once("../inc/email.inc")' in call.args["stdin"] and b"send_email(" in call.args["stdin"]


def test_send_test_failure_names_the_servers_answer_and_the_fix(demo):
    _with_mail(demo)
    demo.engine.on("exec", "php", service="apache",
                   out={"sent": False, "mailer": "phpmailer", "error": "SMTP connect() failed.",
                        "transcript": SERVER_535})
    with pytest.raises(ProjectError) as caught:
        host_mail.send_test(demo, "ada@example.org")
    assert "535 5.7.8" in str(caught.value) and "Could not authenticate" in str(caught.value)
    assert "secrets rotate mail --stdin" in caught.value.advice


def test_send_test_refuses_without_settings_or_before_up(demo):
    with pytest.raises(ProjectError, match="no mail settings") as caught:
        host_mail.send_test(demo, "ada@example.org")
    assert "mail set" in caught.value.advice and not demo.engine.named("exec")
    _with_mail(demo)
    demo.engine.on("exec", "php", out={"sent": False, "mailer": "php mail()", "error": "", "transcript": []})
    with pytest.raises(ProjectError, match="php mail") as caught:
        host_mail.send_test(demo, "ada@example.org")
    assert "boincserver up" in caught.value.advice
    with pytest.raises(InvalidInput, match="not an e-mail address"):
        host_mail.send_test(demo, "ada")


def test_cli_mail_test_prints_json_and_exits_1_on_failure(demo, monkeypatch):
    _with_mail(demo)
    monkeypatch.setattr(mail_commands, "open_project", lambda: demo)
    demo.engine.on("exec", "php", out={"sent": True, "mailer": "phpmailer", "error": "", "transcript": SERVER_OK})
    runner = CliRunner()
    done = runner.invoke(cli.app, ["mail", "test", "ada@example.org", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["smtp_answer"] == "250 OK queued"
    demo.engine.on("exec", "php", out={"sent": False, "mailer": "phpmailer", "error": "SMTP connect() failed.",
                                       "transcript": ["SMTP ERROR: Failed to connect to server: Connection "
                                                      "refused (111)"]})
    done = runner.invoke(cli.app, ["mail", "test", "ada@example.org"])
    # cli.main prints our errors as "Error: ..." with exit 1 (tests/test_cli.py).
    assert isinstance(done.exception, ProjectError) and "Connection refused" in str(done.exception)
    assert "mail set --host" in done.exception.advice
    done = runner.invoke(cli.app, ["mail", "show"])
    assert "SMTP smtp.example.org:587 (starttls) as ada, from boinc@example.org" in done.output
