"""The home page's long name and description (boinc/home_page.py), through settings, .env and
the makeproject job (container/home_page.py over fake volumes and SQLite)."""

from __future__ import annotations

import json
import sqlite3

import pytest
from container_fakes import install_mysqldb

from boincserver.boinc import home_page
from boincserver.container import home_page as job
from boincserver.container.common import Refused
from boincserver.errors import InvalidInput
from boincserver.settings import Settings, load, save

SAMPLE_INC = ('<?php\nrequire_once("../inc/util.inc");\n\ndefine("PROJECT", "demo");\n'
              'define("COPYRIGHT_HOLDER", "demo");\n\n// Comment this out when your project is public.\n'
              'display_errors();\n')


# -- checks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value, wanted", [("", ""), ("  Primes@Home ", "Primes@Home"), ("Tom's Grid", "Tom's Grid"),
                                           ("Grille de calcul – été", "Grille de calcul – été")])
def test_long_names_the_pages_can_show(value, wanted):
    assert home_page.check_long_name(value) == wanted


@pytest.mark.parametrize("value, says", [
    ("x" * 101, "101 characters long; at most 100"),
    ("Science & Co", "write 'and' for &"),
    ("<b>Grid</b>", "'<', '>'"),
    ('The "Grid"', "'\"'"),
    ("two\nlines", "control characters"),
    (42, "must be text, not int"),
])
def test_long_names_refused_say_why(value, says):
    with pytest.raises(home_page.HomePageError, match=None) as exc:
        home_page.check_long_name(value)
    assert says in str(exc.value)


def test_descriptions():
    assert home_page.check_description("  One.\r\n\r\nTwo <b>&</b>.\n") == "One.\n\nTwo <b>&</b>."
    assert home_page.check_description("") == ""
    with pytest.raises(home_page.HomePageError, match="at most 4000"):
        home_page.check_description("x" * 4001)
    with pytest.raises(home_page.HomePageError, match="must be text, not list"):
        home_page.check_description(["a"])
    with pytest.raises(home_page.HomePageError, match="control characters"):
        home_page.check_description("bell\x07")


def test_settings_refuse_bad_values_naming_the_fix(tmp_path):
    with pytest.raises(InvalidInput) as exc:
        Settings(project="demo", long_name="A & B")
    assert "long_name or description in boincserver.toml" in exc.value.advice
    save(tmp_path, Settings(project="demo"))
    path = tmp_path / "boincserver.toml"
    path.write_text(path.read_text().replace('description = ""', "description = 7"))
    with pytest.raises(InvalidInput, match="description must be text, not int"):
        load(tmp_path)


def test_settings_keep_any_text_through_toml_and_env(tmp_path):
    text = "It's $HOME ${X} # \\ a\n\nb <c> \"q\" – été"
    s = Settings(project="demo", long_name="Tom's Grid", description=text)
    save(tmp_path, s)
    assert load(tmp_path) == s
    env = s.env()
    for key, value in (("PROJECT_LONG_NAME", "Tom's Grid"), ("PROJECT_DESCRIPTION", text)):
        line = env[key]
        # One line in single quotes, where Compose reads everything literally (no ' inside).
        assert line[0] == line[-1] == "'" and "'" not in line[1:-1] and "\n" not in line and line.isascii()
        assert home_page.from_env(line[1:-1]) == value
    assert "PROJECT_LONG_NAME" not in Settings(project="demo").env()  # the defaults leave .env as it was


def test_from_env_refuses_what_boincserver_did_not_write():
    assert home_page.from_env("") == ""
    with pytest.raises(home_page.HomePageError, match="not a JSON string"):
        home_page.from_env("Primes@Home")
    with pytest.raises(home_page.HomePageError, match="not a JSON string"):
        home_page.from_env("42")


# -- files -----------------------------------------------------------------------------------
def test_project_inc_takes_the_long_name_and_the_holder_follows_while_the_same():
    text = home_page.project_inc_with_long_name(SAMPLE_INC, "Tom's Grid")
    assert "define(\"PROJECT\", 'Tom\\'s Grid');" in text
    assert "define(\"COPYRIGHT_HOLDER\", 'Tom\\'s Grid');" in text
    assert home_page.project_inc_with_long_name(text, "Tom's Grid") == text  # nothing to do twice
    again = home_page.project_inc_with_long_name(text, "Primes")
    assert "define(\"PROJECT\", 'Primes');" in again and "define(\"COPYRIGHT_HOLDER\", 'Primes');" in again
    own_holder = SAMPLE_INC.replace('define("COPYRIGHT_HOLDER", "demo");', "define('COPYRIGHT_HOLDER', 'Uni X');")
    assert "'Uni X'" in home_page.project_inc_with_long_name(own_holder, "Primes")
    code = SAMPLE_INC.replace('define("PROJECT", "demo");', 'define("PROJECT", tra("Demo"));')
    assert home_page.project_inc_with_long_name(code, "Primes") == code  # the operator's own code


def test_display_errors_off_in_a_new_project():
    text = home_page.project_inc_without_display_errors(SAMPLE_INC)
    assert "\ndisplay_errors();" not in text and "//display_errors();" in text


def test_description_is_escaped_static_html_in_paragraphs():
    php = home_page.description_php("One <?php system('x'); ?> & \"two\".\n\nSecond\nparagraph.")
    assert home_page.is_ours(php)
    body = php.split("\n", 2)[2]
    assert body == "One &lt;?php system('x'); ?&gt; &amp; \"two\".\n<p>\nSecond paragraph.\n"
    assert "<?" not in body


def test_about_and_motd_are_php_of_ours():
    about = home_page.about_php()
    assert home_page.is_ours(about) and 'include("../project/project_description.php")' in about
    motd = home_page.welcome_motd(1764655000)
    assert "news_item(1764655000, PROJECT.' is open', 'The project" in motd and not home_page.is_ours(motd)


def test_forum_statements_make_create_forums_set_once(tmp_path):
    conn = sqlite3.connect(tmp_path / "db")
    conn.executescript("""
        CREATE TABLE category (id INTEGER PRIMARY KEY, orderID INTEGER, lang INTEGER, name TEXT,
                               is_helpdesk INTEGER, UNIQUE (name, is_helpdesk));
        CREATE TABLE forum (id INTEGER PRIMARY KEY, category INTEGER, orderID INTEGER, title TEXT, description TEXT,
                            is_dev_blog INTEGER DEFAULT 0, parent_type INTEGER DEFAULT 0,
                            UNIQUE (parent_type, category, title));""")
    for _ in range(2):
        for sql, params in home_page.forum_statements():
            conn.execute(sql.replace("INSERT IGNORE", "INSERT OR IGNORE").replace("%s", "?"), params)
    assert conn.execute("SELECT COUNT(*) FROM category").fetchone() == (3,)
    assert conn.execute("SELECT COUNT(*) FROM forum").fetchone() == (10,)
    news = conn.execute("SELECT c.name, c.is_helpdesk, f.is_dev_blog FROM forum f JOIN category c "
                        "ON f.category = c.id WHERE f.title = 'News'").fetchall()
    assert news == [("", 0, 1)]  # what news.inc's news_forum() looks for


# -- the makeproject job's part ----------------------------------------------------------------
@pytest.fixture
def volume(tmp_path):
    project = tmp_path / "project"
    (project / "html/project").mkdir(parents=True)
    (project / "html/user").mkdir(parents=True)
    (project / "html/project/project.inc").write_text(SAMPLE_INC)
    (project / "html/user/motd.php").write_text("<?php // BOINC's sample ?>\n")
    (project / "config.xml").write_text("<boinc>\n  <config>\n    <long_name>demo</long_name>\n  </config>\n</boinc>\n")
    return project


DB = {"db_host": "mysql", "db_user": "boincadm", "db_passwd": "pw", "db_name": "demo"}


def test_job_settings_from_env_with_defaults():
    assert job.settings({}, "demo") == ("demo", home_page.default_description("demo"))
    env = Settings(project="demo", long_name="Tom's Grid", description="Primes.").home_page_env()
    assert job.settings({k: v[1:-1] for k, v in env.items()}, "demo") == ("Tom's Grid", "Primes.")
    with pytest.raises(Refused, match="set long_name and description in boincserver.toml"):
        job.settings({"PROJECT_LONG_NAME": json.dumps("A & B")}, "demo")


def test_job_writes_the_pages_and_forums_and_leaves_the_projects_own(volume, tmp_path, monkeypatch):
    db = install_mysqldb(tmp_path, monkeypatch)
    changed = job.prepare_project(volume, "Primes@Home", "Primes & more.", DB)
    assert changed == ["html/project/project.inc (PROJECT 'Primes@Home')", "config.xml (long_name 'Primes@Home')",
                       home_page.DESCRIPTION_PHP, home_page.ABOUT_PHP,
                       "forums: 13 categories and forums added (BOINC's create_forums.php set)"]
    assert "<long_name>Primes@Home</long_name>" in (volume / "config.xml").read_text()
    assert "Primes &amp; more." in (volume / home_page.DESCRIPTION_PHP).read_text()
    assert db.sql("SELECT COUNT(*) FROM forum") == [(10,)]
    assert job.prepare_project(volume, "Primes@Home", "Primes & more.", DB) == []  # a second start: nothing
    (volume / home_page.ABOUT_PHP).write_text("<?php // my own about page ?>\n")
    assert job.prepare_project(volume, "Primes@Home", "Other.", DB) == [home_page.DESCRIPTION_PHP]
    assert (volume / home_page.ABOUT_PHP).read_text() == "<?php // my own about page ?>\n"


def test_job_welcome_replaces_the_sample_motd(volume):
    job.welcome(volume, 1764655000)
    assert "news_item(1764655000, PROJECT.' is open'" in (volume / home_page.MOTD_PHP).read_text()


def test_job_write_keeps_the_volume_owner(volume, tmp_path, monkeypatch):
    install_mysqldb(tmp_path, monkeypatch)
    owners = []
    monkeypatch.setattr(job.os, "chown", lambda path, uid, gid: owners.append((str(path), uid, gid)))
    job.prepare_project(volume, "demo", "x", DB)
    stat = (volume / "config.xml").stat()
    assert (str(volume / home_page.ABOUT_PHP), stat.st_uid, stat.st_gid) in owners
