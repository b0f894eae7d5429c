"""BOINC server releases: the supported ones (pins), a project's (settings), which one a volume
runs (boinc/releases.py), the schema's alignment with a fresh project's (boinc/schema.py) and
the makeproject job's refusal of a release it was not asked to install (container/release.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boincserver import images, pins
from boincserver.boinc import releases, schema
from boincserver.container import release
from boincserver.container.common import Refused
from boincserver.errors import InvalidInput
from boincserver.settings import Settings

OLD, NEW = "9" * 40, "6" * 40


# -- supported releases ---------------------------------------------------------------------------
def test_a_release_is_named_by_its_version_or_its_tag():
    assert pins.server_release("1.4.7") == pins.server_release("server_release/1.4/1.4.7")
    assert pins.server_release().commit == pins.BOINC_COMMIT
    assert list(pins.server_releases())[0] == pins.BOINC_VERSION
    with pytest.raises(KeyError):
        pins.server_release("1.5.0")


def test_settings_keep_the_version_and_refuse_an_unknown_release():
    assert Settings(project="demo", boinc_release="server_release/1.4/1.4.7").boinc_release == "1.4.7"
    assert Settings(project="demo").release == pins.server_release()
    with pytest.raises(InvalidInput) as refused:
        Settings(project="demo", boinc_release="1.2.3")
    assert "1.2.3" in str(refused.value) and "1.4.7" in refused.value.advice and pins.BOINC_VERSION in refused.value.advice


def test_base_images_of_each_release_have_their_own_tag_commit_and_inputs():
    old = pins.server_release("1.4.7")
    assert images.image_tag("makeproject", old).endswith("-boinc1.4.7")
    assert images.pinned_build_args("makeproject", old) == {"BOINC_COMMIT": old.commit, "BOINC_FCGI": "no"}
    assert images.pinned_build_args("makeproject") == {"BOINC_COMMIT": pins.BOINC_COMMIT}
    assert images.inputs_digest("makeproject", release=old) != images.inputs_digest("makeproject")
    assert images.labels_for("apache", "d", old)["org.boincserver.boinc-release"] == old.tag
    assert images.image_tag("volunteer", old) == pins.volunteer_image()  # the client is not the server's


# -- which release a volume runs ------------------------------------------------------------------
def test_the_newest_record_says_which_commit_a_volume_runs():
    created, upgraded, installed = {"boinc_commit": "a"}, {"boinc_commit": "b"}, {"boinc_commit": "c"}
    assert releases.volume_commit(created, None, None) == "a"
    assert releases.volume_commit(created, upgraded, None) == "b"
    assert releases.volume_commit(created, upgraded, installed) == "c"
    assert releases.volume_commit(None, None, None) == ""
    assert releases.volume_commit({"boinc_commit": ""}, None, None) == ""


def test_an_install_that_could_not_copy_a_file_is_found():
    out = "installed\nfailed to copy /usr/src/boinc/sched/feeder to /p/bin/feeder\n"
    assert releases.install_failures(out) == ["failed to copy /usr/src/boinc/sched/feeder to /p/bin/feeder"]
    assert releases.install_failures("installed the release's files into /p\n") == []
    assert releases.upgrade_db_failed(0, "Performing update 27029\nDatabase upgrade failed\n".lower())
    assert not releases.upgrade_db_failed(0, "db_revision 27030: no updates needed")
    assert releases.upgrade_db_failed(255, "")


# -- the schema against a fresh project's --------------------------------------------------------
USER_147 = """CREATE TABLE `user` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `name` varchar(254) DEFAULT NULL,
  `email_addr` varchar(254) NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `email_addr` (`email_addr`),
  KEY `user_name` (`name`)
) ENGINE=InnoDB AUTO_INCREMENT=12 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""
USER_162 = """CREATE TABLE `user` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `name` varchar(191) DEFAULT NULL,
  `email_addr` varchar(191) NOT NULL,
  `login_token` char(32) NOT NULL DEFAULT '',
  PRIMARY KEY (`id`),
  UNIQUE KEY `email_addr` (`email_addr`),
  UNIQUE KEY `user_name` (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""
NEW_TABLE = """CREATE TABLE `token` (
  `token` varchar(64) NOT NULL,
  PRIMARY KEY (`token`)
) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"""


def test_the_alignment_modifies_adds_and_rekeys_what_differs():
    statements, notes = schema.alignment({"user": USER_147}, {"user": USER_162, "token": NEW_TABLE})
    assert statements == [
        "ALTER TABLE `user` MODIFY COLUMN `name` varchar(191) DEFAULT NULL",
        "ALTER TABLE `user` MODIFY COLUMN `email_addr` varchar(191) NOT NULL",
        "ALTER TABLE `user` ADD COLUMN `login_token` char(32) NOT NULL DEFAULT '' AFTER `email_addr`",
        "ALTER TABLE `user` DROP KEY `user_name`",
        "ALTER TABLE `user` ADD UNIQUE KEY `user_name` (`name`)",
        NEW_TABLE.replace(" AUTO_INCREMENT=3", ""),
    ]
    assert notes == []


def test_equal_tables_need_nothing_whatever_their_next_id():
    assert schema.alignment({"user": USER_162.replace(") ENGINE", ") ENGINE").replace("InnoDB", "InnoDB AUTO_INCREMENT=99")},
                            {"user": USER_162}) == ([], [])
    assert schema.differences({"user": USER_162, "extra": NEW_TABLE}, {"user": USER_162}) == ["extra"]


def test_a_column_only_the_project_has_keeps_its_data_and_is_reported():
    extra = USER_162.replace("  PRIMARY KEY", "  `legacy` int(11) DEFAULT NULL,\n  PRIMARY KEY")
    statements, notes = schema.alignment({"user": extra}, {"user": USER_162})
    assert statements == [] and notes == ["user.legacy is not in a fresh project's schema; kept with its data"]


def test_a_text_that_is_not_show_create_table_is_refused():
    with pytest.raises(schema.SchemaError):
        schema.parse_table("SELECT 1")
    with pytest.raises(schema.SchemaError):
        schema.parse_table("CREATE TABLE `t` (\n  something odd\n) ENGINE=InnoDB")


def test_scripts_split_as_make_project_splits_them():
    assert schema.script_statements("create table a (x int);\n\n-- c\ncreate table b (y int);\n") == [
        "create table a (x int)", "-- c\ncreate table b (y int)"]


# -- the makeproject job -------------------------------------------------------------------------
def volume_at(tmp_path: Path, created: str, installed: str | None = None) -> Path:
    (tmp_path / ".boincserver").mkdir(parents=True)
    (tmp_path / releases.CREATED_RECORD).write_text(json.dumps({"boinc_commit": created}))
    if installed:
        (tmp_path / releases.RELEASE_RECORD).write_text(json.dumps({"boinc_commit": installed}))
    return tmp_path


def test_the_job_refuses_an_image_of_another_release_unless_upgrade_asks(tmp_path):
    volume = volume_at(tmp_path, OLD)
    with pytest.raises(Refused, match="boincserver upgrade"):
        release.check(volume, {"BOINC_COMMIT": NEW})
    with pytest.raises(Refused):  # asked for another commit than the image's
        release.check(volume, {"BOINC_COMMIT": NEW, "BOINC_UPGRADE": "7" * 40})
    assert release.check(volume, {"BOINC_COMMIT": NEW, "BOINC_UPGRADE": NEW}) == (OLD, NEW)


def test_the_job_goes_on_where_the_releases_agree_or_one_is_unknown(tmp_path):
    volume = volume_at(tmp_path, OLD, installed=NEW)
    assert release.check(volume, {"BOINC_COMMIT": NEW}) is None  # installed by an earlier upgrade
    assert release.check(volume, {"BOINC_COMMIT": ""}) is None
    assert release.check(volume_at(tmp_path / "old", ""), {"BOINC_COMMIT": NEW}) is None


class Commands:
    """What release.upgrade runs, recorded; each answered by the first rule whose word it holds."""

    def __init__(self, **answers):
        self.ran: list[list[str]] = []
        self.inputs: list[str | None] = []
        self.answers = answers  # word -> (returncode, stdout)

    def __call__(self, cmd, *, cwd=None, env=None, stdin=None, answers=None):
        import subprocess
        self.ran.append(list(cmd))
        self.inputs.append(answers)
        for word, (code, out) in self.answers.items():
            if any(word in part for part in cmd):
                return subprocess.CompletedProcess(cmd, code, out, "")
        return subprocess.CompletedProcess(cmd, 0, "", "")


def job_upgrade(tmp_path: Path, monkeypatch, commands: Commands) -> tuple[dict | None, Path, list[str]]:
    from boincserver.container import common
    from boincserver.container.common import Mounts, Owner
    import os
    mounts = Mounts(project=volume_at(tmp_path / "volume", OLD), boinc_src=tmp_path / "src",
                    overlay_aside=tmp_path / "aside")
    (mounts.project / "db_revision").write_text("27030\n")
    root = tmp_path / "home/boincadm/project"
    (root / "html/project").mkdir(parents=True)
    (root / "html/project/overlay.inc").write_text("mine")
    monkeypatch.setattr(common, "run_command", commands)
    owner = Owner("boincadm", os.getuid(), os.getgid())
    steps: list[str] = []
    try:
        record = release.upgrade(mounts, root, owner, {}, (OLD, NEW), steps.append, lambda: ["ALTER TABLE `user` x"],
                                 "db-password")
    except Refused as exc:
        steps.append(f"refused: {exc}")
        record = None
    assert (root / "html/project/overlay.inc").read_text() == "mine" and not root.is_symlink()
    return record, mounts.project, steps


def test_the_job_installs_then_updates_the_database_then_records(tmp_path, monkeypatch):
    commands = Commands()
    record, volume, steps = job_upgrade(tmp_path, monkeypatch, commands)
    assert [c[4:6] for c in commands.ran] == [["python3", "-c"], ["php", "update_translations.php"],
                                             ["php", "upgrade_db.php"]]
    assert commands.inputs[2] == "y\nboincadm\ndb-password\n"  # upgrade_db.php's questions
    install = commands.ran[0]
    assert install[:4] == ["runuser", "-u", "boincadm", "--"] and install[-1].endswith("home/boincadm/project")
    assert record["boinc_commit"] == NEW
    written = json.loads((volume / releases.RELEASE_RECORD).read_text())
    assert written["boinc_commit"] == NEW and written["from"] == OLD and written["db_revision"] == "27030"
    assert written["schema_aligned"] == ["ALTER TABLE `user` x"]


@pytest.mark.parametrize("failing", ["-c", "upgrade_db.php"])
def test_a_failed_step_records_nothing(tmp_path, monkeypatch, failing):
    answers = {"-c": (0, "failed to copy a to b\n")} if failing == "-c" else {"upgrade_db.php": (1, "error")}
    record, volume, steps = job_upgrade(tmp_path, monkeypatch, Commands(**answers))
    assert record is None and steps[-1].startswith("refused: ")
    assert not (volume / releases.RELEASE_RECORD).exists()


def test_the_scheduler_link_147_wrote_broken_is_repaired_and_a_good_one_kept():
    from boincserver.boinc import makeproject, protocol
    broken = ('\n<!-- <scheduler>http://h/p_cgi/cgi</scheduler> -->"\n'
              '<link rel="boinc_scheduler" href="url"">\n        ')
    repaired = makeproject.schedulers_txt_repaired(broken)
    assert protocol.scheduler_urls(repaired) == ["http://h/p_cgi/cgi"]
    assert makeproject.schedulers_txt_repaired(repaired) == repaired


def test_upgrade_db_is_answered_with_the_projects_database_user():
    assert releases.upgrade_db_answers("boincadm", "pw") == "y\nboincadm\npw\n"
    with pytest.raises(ValueError):
        releases.upgrade_db_answers("boincadm", "x" * 80)


def test_answers_reach_a_program_that_reads_them_through_two_streams(tmp_path):
    """As upgrade_db.php does: one line from a buffered stream, the next from a new one on fd 0."""
    import sys
    from boincserver.container import common
    script = ("import sys, os\nfirst = sys.stdin.readline()\n"
              "second = os.fdopen(os.dup(0)).readline()\nprint(repr(first), repr(second))\n")
    done = common.run_command([sys.executable, "-c", script], answers="y\nboincadm\n")
    assert done.stdout.strip() == "'y\\n' 'boincadm\\n'", done
