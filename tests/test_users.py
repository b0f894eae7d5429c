"""`boincserver user`: submitters made and changed in the apache service (container/accounts.py
over a fake MySQLdb, BOINC's make_user played by a fake `php`), and what the host side sends
there (tests/fakes.py's RecordingEngine)."""

from __future__ import annotations

import json

import pytest
from container_fakes import fake_make_user, helper_json, install_mysqldb, project_folder, script
from test_use_cases import make_project

from boincserver import context, users
from boincserver.boinc import submitters
from boincserver.container import jobs
from boincserver.errors import InvalidInput

TABLES = """
CREATE TABLE user (id INTEGER PRIMARY KEY, email_addr TEXT UNIQUE, name TEXT, authenticator TEXT, passwd_hash TEXT);
CREATE TABLE user_submit (user_id INTEGER PRIMARY KEY, quota REAL, logical_start_time REAL, submit_all INTEGER,
                          manage_all INTEGER, max_jobs_in_progress INTEGER);
CREATE TABLE user_submit_app (user_id INTEGER, app_id INTEGER, manage INTEGER, PRIMARY KEY (user_id, app_id));
"""


def accounts_project(tmp_path, monkeypatch, apps: tuple[str, ...]):
    """A project folder and database with these BOINC apps (ids from 1), whose `php` plays
    BOINC's make_user (its calls logged to php.log)."""
    db = install_mysqldb(tmp_path, monkeypatch)
    for statement in TABLES.strip().split(";\n"):
        db.sql(statement)
    for app_id, name in enumerate(apps, 1):
        db.sql("INSERT INTO app (id, name) VALUES (?, ?)", (app_id, name))
    root = project_folder(tmp_path / "project")
    (root / "html" / "ops").mkdir(parents=True)
    fake_make_user(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_PHP_LOG", str(tmp_path / "php.log"))
    return root, db


@pytest.fixture
def apache_project(tmp_path, monkeypatch):
    """A project with apps uppercase and wordcount."""
    root, db = accounts_project(tmp_path, monkeypatch, ("uppercase", "wordcount"))
    return root, db, tmp_path / "php.log"


helper = helper_json


def rights(db):
    return (db.sql("SELECT user_id, submit_all, manage_all, max_jobs_in_progress FROM user_submit ORDER BY user_id"),
            db.sql("SELECT user_id, app_id, manage FROM user_submit_app ORDER BY user_id, app_id"))


# -- in the apache service ------------------------------------------------------------------------
def test_a_new_submitter_is_made_by_make_user_and_its_authenticator_answered_once(apache_project):
    root, db, php_log = apache_project
    code, made, err = helper(root, "user-add", "Ada@Example.org", "Ada Lovelace", "--app", "uppercase")
    assert code == 0, err
    (auth,) = db.sql("SELECT authenticator FROM user WHERE email_addr='ada@example.org'")[0]
    assert made == {"user_id": 1, "email": "ada@example.org", "name": "Ada Lovelace", "submit_all": False,
                    "apps": ["uppercase"], "batches": 0, "may_submit": True, "buda_apps": [], "created": True,
                    "authenticator": auth}
    assert rights(db) == ([(1, 0, 0, 0)], [(1, 1, 0)])  # no manager rights, no job limit
    assert "make_user" in eval(php_log.read_text().splitlines()[0].split(" ", 1)[1])[1]
    # Granted more later: the same account, no new authenticator, nothing made twice.
    code, again, err = helper(root, "user-add", "ada@example.org", "Ada", "--app", "wordcount", "--app", "uppercase")
    assert code == 0, err
    assert again["created"] is False and "authenticator" not in again and again["apps"] == ["uppercase", "wordcount"]
    assert len(php_log.read_text().splitlines()) == 1 and rights(db)[1] == [(1, 1, 0), (1, 2, 0)]
    assert auth not in json.dumps(helper(root, "user-list")[1])


def test_submit_all_and_the_list_of_submitters(apache_project):
    root, db, _ = apache_project
    assert helper(root, "user-add", "ada@example.org", "Ada", "--all")[0] == 0
    assert helper(root, "user-add", "bob@example.org", "Bob", "--app", "wordcount")[0] == 0
    db.sql("INSERT INTO batch (id, user_id, name) VALUES (1, 2, 'b1'), (2, 2, 'b2')")
    code, listed, err = helper(root, "user-list")
    assert code == 0, err
    assert listed == [
        {"user_id": 1, "email": "ada@example.org", "name": "Ada", "submit_all": True, "apps": [], "batches": 0},
        {"user_id": 2, "email": "bob@example.org", "name": "Bob", "submit_all": False, "apps": ["wordcount"],
         "batches": 2}]


def test_revoking_one_app_or_every_right(apache_project):
    root, db, _ = apache_project
    helper(root, "user-add", "ada@example.org", "Ada", "--all")
    helper(root, "user-add", "ada@example.org", "Ada", "--app", "uppercase", "--app", "wordcount")
    code, left, err = helper(root, "user-revoke", "ada@example.org", "--app", "wordcount")
    assert code == 0, err
    # submit_all would still let it submit to wordcount: revoking an app clears it.
    assert left["submit_all"] is False and left["apps"] == ["uppercase"] and left["may_submit"]
    code, left, err = helper(root, "user-revoke", "ada@example.org")
    assert code == 0, err
    assert left["may_submit"] is False and left["apps"] == [] and rights(db) == ([], [])
    assert db.sql("SELECT email_addr FROM user") == [("ada@example.org",)]  # the account stays


@pytest.mark.parametrize("argv, says", [
    (["user-add", "ada@example.org", "Ada", "--app", "nosuch"], "no app 'nosuch'"),
    (["user-add", "ada@example.org", "Ada", "--app", "uppercase", "--app", "nosuch"], "no app 'nosuch'"),
    (["user-add", "not-an-address", "Ada", "--all"], "not an e-mail address"),
    (["user-add", "ada@example.org", "  ", "--all"], "not a usable name"),
    (["user-add", "ada@example.org", "Ada"], "--submit APP"),
    (["user-add", "ada@example.org", "Ada", "--app"], "--app needs a value"),
    (["user-revoke", "nobody@example.org"], "no account nobody@example.org"),
])
def test_bad_input_is_refused_and_changes_nothing(apache_project, argv, says):
    root, db, php_log = apache_project
    code, _, err = helper(root, *argv)
    assert code == jobs.USER_MISTAKE and says in err
    assert db.sql("SELECT COUNT(*) FROM user") == [(0,)] and rights(db) == ([], [])
    assert not php_log.exists()  # make_user never ran


def test_a_make_user_refusal_is_the_users_to_see(apache_project):
    root, db, _ = apache_project
    script(root.parent / "bin" / "php", """
        #!/bin/sh
        echo "make_user refused the account" >&2
        exit 1
        """)
    code, _, err = helper(root, "user-add", "ada@example.org", "Ada", "--all")
    assert code == jobs.USER_MISTAKE and "refused" in err and rights(db) == ([], [])


# -- the rules ------------------------------------------------------------------------------------
def test_grant_adds_only_what_is_missing_and_revoke_of_an_app_clears_submit_all():
    assert submitters.grant(3, [1, 2, 2], False, True, {1}) == [
        ("INSERT INTO user_submit_app (user_id, app_id, manage) VALUES (%s, %s, 0)", (3, 2))]
    assert submitters.grant(3, [], True, True, set()) == [("UPDATE user_submit SET submit_all=1 WHERE user_id=%s", (3,))]
    assert [s for s, _ in submitters.revoke(3, [2])][0].startswith("UPDATE user_submit SET submit_all=0")
    assert all(s.startswith("DELETE") for s, _ in submitters.revoke(3, None))


@pytest.mark.parametrize("address", ["a@b", "a b@example.org", "a@@example.org", "<a@example.org>", "",
                                     "a@example.org\n"])
def test_addresses_refused(address):
    if address == "a@example.org\n":  # surrounding white space is dropped, not refused
        assert submitters.check_email(address) == "a@example.org"
        return
    with pytest.raises(submitters.SubmitterError):
        submitters.check_email(address)


# -- from the host --------------------------------------------------------------------------------
@pytest.fixture
def demo(tmp_path) -> context.Project:
    p = make_project(tmp_path)
    p.engine.running.add("apache")
    return p


def test_add_sends_the_checked_address_name_and_apps(demo):
    demo.engine.on("exec", "boincserver-jobs", "user-add", service="apache", out={"user_id": 4})
    assert users.add(demo, " Ada@Example.org", None, ["uppercase", "wordcount"], False) == {"user_id": 4}
    call = demo.engine.find("exec", "boincserver-jobs", "user-add")
    assert call.command[-7:] == ["user-add", "ada@example.org", "ada", "--app", "uppercase", "--app", "wordcount"]


@pytest.mark.parametrize("email, apps, submit_all, says", [
    ("ada", ["uppercase"], False, "not an e-mail address"),
    ("ada@example.org", [], False, "say what the account may submit to"),
])
def test_add_refuses_before_asking_the_service(demo, email, apps, submit_all, says):
    with pytest.raises(InvalidInput, match=says):
        users.add(demo, email, "Ada", apps, submit_all)
    assert not demo.engine.named("exec")
