"""config.xml read and edited as text (boincserver.boinc.configxml), and the files make_project
writes (boincserver.boinc.makeproject): the one implementation the makeproject job runs."""

from __future__ import annotations

import pytest

from boincserver.boinc import configxml, makeproject

# As make_project writes them: an empty element spans lines, some are self-closing.
CONFIG = """<?xml version="1.0" ?>
<boinc>
  <config>
    <db_host>mysql</db_host>
    <db_user>boincadm</db_user>
    <db_passwd>
    </db_passwd>
    <db_name>demo</db_name>
    <key_dir>/run/boincserver/secrets/keys/</key_dir>
    <disable_account_creation/>
  </config>
</boinc>
"""


def test_get_element():
    assert configxml.get_element(CONFIG, "db_host") == "mysql"
    assert configxml.get_element(CONFIG, "db_passwd") == ""
    assert configxml.get_element(CONFIG, "disable_account_creation") == ""
    assert configxml.get_element(CONFIG, "absent") is None


def test_set_element_in_place_or_at_the_end_of_config():
    text = configxml.set_element(CONFIG, "db_passwd", "s3cret")
    assert "<db_passwd>s3cret</db_passwd>" in text and text.count("db_passwd") == 2
    text = configxml.set_element(text, "recaptcha_public_key", "pub")
    assert text.index("<recaptcha_public_key>pub</recaptcha_public_key>") < text.index("</config>")
    with pytest.raises(ValueError, match="cannot be written"):
        configxml.set_element(CONFIG, "db_passwd", "a<b")
    with pytest.raises(ValueError, match="no <config>"):
        configxml.set_element("<boinc/>", "x", "y")


def test_database_settings_and_key_dir():
    assert configxml.database_settings(CONFIG) == {"db_host": "mysql", "db_user": "boincadm", "db_passwd": "",
                                                   "db_name": "demo"}
    assert configxml.database_settings("<boinc/>") == dict.fromkeys(configxml.DATABASE_ELEMENTS, "")
    assert configxml.key_dir(CONFIG) == "/run/boincserver/secrets/keys"
    assert configxml.key_dir("<boinc/>") is None


def test_recaptcha_keys():
    text = configxml.with_recaptcha_keys(CONFIG, "pub", "priv")
    assert configxml.get_element(text, "recaptcha_public_key") == "pub"
    assert configxml.get_element(text, "recaptcha_private_key") == "priv"
    assert configxml.with_recaptcha_keys(text, "pub", "priv") == text


def test_make_project_command():
    cmd = makeproject.make_project_command("/usr/src/boinc", "demo", "http://boinc.example.org",
                                           "/home/boincadm/project", "boincserver", "/keys", "boincadm",
                                           "mysql", "pw")
    assert cmd[0] == "/usr/src/boinc/tools/make_project"
    options = dict(zip(cmd[2:-2:2], cmd[3:-2:2]))
    assert cmd[1] == "--no_query" and cmd[-2:] == ["demo", "demo"]
    assert options == {"--srcdir": "/usr/src/boinc", "--url_base": "http://boinc.example.org/",
                       "--project_root": "/home/boincadm/project", "--project_host": "boincserver",
                       "--key_dir": "/keys/", "--user_name": "boincadm", "--db_host": "mysql",
                       "--db_user": "boincadm", "--db_passwd": "pw", "--db_name": "demo"}


def test_project_inc_defaults():
    sample = ('define("USE_STOPFORUMSPAM", true);\ndefine("PROJECT", "REPLACE WITH PROJECT NAME");\n'
              'define("COPYRIGHT_HOLDER", "REPLACE WITH COPYRIGHT HOLDER");\n')
    assert makeproject.project_inc_defaults(sample, "demo") == (
        'define("USE_STOPFORUMSPAM", false);\ndefine("PROJECT", "demo");\ndefine("COPYRIGHT_HOLDER", "demo");\n')


def test_ops_htaccess_reads_the_password_file_named():
    text = "AuthName \"Project Management\"\nAuthType Basic\nAuthUserFile /home/x/html/ops/.htpasswd\nrequire valid-user"
    assert makeproject.ops_htaccess_with_password_file(text, "/run/boincserver/secrets/ops.htpasswd") == (
        "AuthName \"Project Management\"\nAuthType Basic\nAuthUserFile /run/boincserver/secrets/ops.htpasswd\n"
        "require valid-user\n")
