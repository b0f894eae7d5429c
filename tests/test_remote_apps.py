"""html/project/remote_apps.inc and submitters.inc for BOINC's submit.php and show_apps.php: the
PHP text (boinc/remote_apps.py) and the files the services write (container/remote_apps.py,
over a fake project). No Docker, no PHP: the stack test has BOINC's pages read them."""

from __future__ import annotations

import io
import json
import os

import pytest
from container_fakes import install_mysqldb, project_folder

from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import remote_apps as br
from boincserver.container import remote_apps
from boincserver.container.common import ProjectFolder


def test_an_app_moves_its_outputs_when_sample_assimilator_serves_it():
    commands = ["feeder -d 3", "sample_trivial_validator --app up", "sample_assimilator --app up",
                "sample_assimilator --app other --outdir /elsewhere", "my_assimilator --app mine",
                "sample_assimilator --app upper"]
    assert br.moves_outputs(commands, "up") and br.moves_outputs(commands, "upper")
    assert not br.moves_outputs(commands, "other")  # results/ is not where it writes
    assert not br.moves_outputs(commands, "mine") and not br.moves_outputs(commands, "none")
    assert br.moves_outputs(["../bin/sample_assimilator -d 3 --app up"], "up")


def test_the_listed_apps_are_the_rows_not_deprecated_by_name():
    rows = [("zeta", "Zeta", 0), ("alpha", None, 0), ("old", "Old", 1)]
    assert br.remote_apps(rows, ["sample_assimilator --app zeta"]) == [
        br.RemoteApp("alpha", "alpha", False), br.RemoteApp("zeta", "Zeta", True)]


def test_php_strings_escape_what_single_quotes_need():
    assert br.php_string("plain") == "'plain'"
    assert br.php_string("it's a \\ path") == "'it\\'s a \\\\ path'"
    assert br.php_string("\\'") == "'\\\\\\''"


def test_remote_apps_inc_defines_what_submit_php_reads():
    text = br.remote_apps_inc([br.RemoteApp("uppercase", "Upper <b>'case'</b>", True),
                               br.RemoteApp("plain", "Plain", False)])
    assert text.startswith("<?php\n") and "?>" not in text  # no closing tag: no stray output
    assert "$remote_apps = [\n    'Applications' => [\n" in text and text.endswith("    ],\n];\n")
    assert ("(object)['app_name' => 'uppercase', 'long_name' => 'Upper &lt;b&gt;&#x27;case&#x27;&lt;/b&gt;', "
            "'form' => '', 'logo' => '', 'is_assim_move' => true, 'description' => '', 'sci_kw' => [], "
            "'url' => 'apps.php'],\n") in text
    assert "'app_name' => 'plain', 'long_name' => 'Plain', " in text and "'is_assim_move' => false" in text
    assert "Docker" not in br.CATEGORY  # show_apps.php would list BUDA's apps in its place
    assert br.remote_apps_inc([]).endswith("\n$remote_apps = [];\n")
    assert br.SUBMITTERS_TEXT.startswith("<?php\n") and "$submitters = [];\n" in br.SUBMITTERS_TEXT



def test_the_buda_app_gets_its_form_and_a_docker_category():
    """submit.php links buda_submit.php (the BUDA apps the user may submit to); show_apps.php
    lists the BUDA science apps in place of a category named with "Docker"."""
    text = br.remote_apps_inc([br.RemoteApp("buda", "BUDA", True), br.RemoteApp("up", "Up", True)])
    assert text.index("'Applications' => [\n        (object)['app_name' => 'up'") < \
        text.index("    'Docker apps (BUDA)' => [\n        (object)['app_name' => 'buda', 'long_name' => 'BUDA', "
                   "'form' => 'buda_submit.php', 'logo' => '', 'is_assim_move' => true, ")
    assert "Docker" in br.BUDA_CATEGORY and text.endswith("    ],\n];\n")
    only = br.remote_apps_inc([br.RemoteApp("buda", "BUDA", True)])
    assert "'Applications'" not in only and "'form' => 'buda_submit.php'" in only

# -- the files, over a fake project ---------------------------------------------------------------
@pytest.fixture
def project(tmp_path, monkeypatch):
    db = install_mysqldb(tmp_path, monkeypatch)
    root = project_folder(tmp_path / "project")
    (root / "html" / "project").mkdir(parents=True)
    db.sql("INSERT INTO app (name, user_friendly_name) VALUES ('up', 'Uppercase')")
    config = root / "config.xml"
    config.write_text(boinc_apps.config_xml_with_daemons(config.read_text(), boinc_apps.app_daemons("up")))
    return root, db


def test_the_files_are_written_from_the_apps_and_their_daemons(project):
    root, db = project
    folder = ProjectFolder(root, io.BytesIO())
    assert remote_apps.write_files(root, folder.cursor()) == [br.REMOTE_APPS_INC, br.SUBMITTERS_INC]
    inc = root / br.REMOTE_APPS_INC
    assert inc.read_text() == br.remote_apps_inc([br.RemoteApp("up", "Uppercase", True)])
    assert oct(inc.stat().st_mode & 0o777) == "0o644"
    assert (root / br.SUBMITTERS_INC).read_text() == br.SUBMITTERS_TEXT
    assert remote_apps.write_files(root, folder.cursor()) == []  # the same text: nothing written
    # The project's own researchers stay; a new app is listed.
    (root / br.SUBMITTERS_INC).write_text("<?php\n$submitters = [(object)['name' => 'Ada']];\n")
    db.sql("INSERT INTO app (name, user_friendly_name) VALUES ('count', 'Word count')")
    assert remote_apps.write_files(root, folder.cursor()) == [br.REMOTE_APPS_INC]
    assert "'app_name' => 'count'" in inc.read_text() and "Ada" in (root / br.SUBMITTERS_INC).read_text()
    assert not [p for p in (root / "html" / "project").iterdir() if "tmp" in p.name]


def test_a_project_without_boincs_web_pages_gets_no_files(project):
    root, _ = project
    os.rmdir(root / "html" / "project")
    assert remote_apps.write_files(root, ProjectFolder(root, io.BytesIO()).cursor()) == []


def test_every_start_writes_them_over_a_connection_of_its_own(project):
    root, db = project
    settings = {"db_host": "mysql", "db_user": "u", "db_passwd": "p", "db_name": "demo"}
    assert remote_apps.prepare_project(root, settings) == [br.REMOTE_APPS_INC, br.SUBMITTERS_INC]
    assert db.connects[-1]["host"] == "mysql"
    assert remote_apps.prepare_project(root, settings) == []


def test_app_install_writes_them(project, monkeypatch):
    """container/apps.py: app-install lists the app at once (submit.php reads the file at every request)."""
    from container_fakes import on_path

    from boincserver.container import apps
    root, db = project
    on_path(monkeypatch, root)
    vdir = "apps/up/1.00/x86_64-pc-linux-gnu"
    daemons = json.dumps([{"cmd": d.cmd, "xml": d.xml()} for d in boinc_apps.app_daemons("up")])
    got = apps.app_install(ProjectFolder(root, io.BytesIO()), ["up", daemons, vdir])
    assert got["submission_pages"] == [br.REMOTE_APPS_INC, br.SUBMITTERS_INC]
    assert "'app_name' => 'up'" in (root / br.REMOTE_APPS_INC).read_text()
