"""The batch life cycle: boinc/lifecycle.py's rules, and container/lifecycle.py (`retire`,
`clean-batches`) over a fake project folder whose database is SQLite behind a fake MySQLdb."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pytest
from container_fakes import install_mysqldb, project_folder

from boincserver.boinc import database
from boincserver.boinc import jobs as bj
from boincserver.boinc import lifecycle as bl
from boincserver.container import jobs, lifecycle

NOW = 1_800_000_000


def md5(i: int | str) -> str:
    return f"{i:0>32}"


def jf(i) -> str:
    return bj.staged_name(md5(i))


def wu_xml(*names: str, gzipped: bool = False) -> str:
    """A workunit's xml_doc as create_work writes it for --remote_file inputs."""
    out = []
    for name in names:
        url = f"http://example.org/demo/download/{bj.dir_hier_path(name)}"
        out.append(f"<file_info>\n    <name>{name}</name>\n    <url>{url}</url>\n"
                   + (f"    <gzipped_url>{url}.gz</gzipped_url>\n" if gzipped else "")
                   + f"    <md5_cksum>{name[3:]}</md5_cksum>\n    <nbytes>6</nbytes>\n</file_info>\n")
    out.append("<workunit>\n" + "".join(f"    <file_ref>\n        <file_name>{n}</file_name>\n"
                                         f"        <open_name>in</open_name>\n    </file_ref>\n" for n in names)
               + "</workunit>\n")
    return "".join(out)


# -- the rules ------------------------------------------------------------------------------
def test_staged_names_are_read_from_a_workunits_xml():
    assert bl.staged_names(wu_xml(jf(1), jf(2), gzipped=True)) == {jf(1), jf(2)}
    assert bl.staged_names("<name>input.txt</name><name>jf_short</name>") == set()
    assert bl.staged_names(None) == set()
    assert bl.staged_names(wu_xml(jf(3)).encode()) == {jf(3)}  # MySQLdb's bytes for the BLOB column


def test_a_staged_input_goes_with_its_gz_and_md5():
    path = "download/" + bj.dir_hier_path(jf(1), 16)
    assert bl.staged_files(jf(1), 16) == [path, path + ".gz", path + ".md5"]


def test_retire_is_refused_while_jobs_are_pending():
    assert bl.check_retirable(3, bj.BATCH_IN_PROGRESS, 0) is True
    assert bl.check_retirable(3, bl.BATCH_RETIRED, 5) is False  # retired already: nothing to do
    with pytest.raises(bl.LifecycleError, match=r"batch 3 has 2 job\(s\) not finished; nothing was changed.*"
                                                r"`boincserver batch abort 3`"):
        bl.check_retirable(3, bj.BATCH_IN_PROGRESS, 2)


@pytest.mark.parametrize("expire_time, state, expired", [
    (0, 1, False), (None, 1, False), (NOW - 1, 1, True), (NOW + 1, 1, False), (NOW - 1, 3, True),
    (NOW - 1, bl.BATCH_RETIRED, False)])
def test_expired_batches(expire_time, state, expired):
    assert bl.is_expired(expire_time, state, NOW) is expired


def test_files_to_delete_are_those_nothing_else_uses_or_keeps():
    assert bl.files_to_delete({"a", "b", "c", "d"}, {"b"}, ["c"]) == ["a", "d"]


@pytest.mark.parametrize("cmdline, running", [
    (["python3", "/usr/local/bin/boincserver-jobs", "submit", "--inputs", "1"], True),
    (["sh", "-c", 'n=$2 && shift 2 && exec boincserver-jobs submit --inputs "$n" "$@"', "sh", "up"], True),
    (["bin/create_work", "--appname", "up", "--stdin"], True),
    (["/home/boincadm/project/bin/create_work", "--appname", "up"], True),
    (["python3", "/usr/local/bin/boincserver-jobs", "clean-batches"], False),
    (["python3", "/usr/local/bin/boincserver-jobs", "status", "--batch", "submit"], False),
    (["vi", "notes/create_work"], False),
])
def test_a_submission_is_recognised_by_its_command_line(cmdline, running):
    assert bl.submission_running([["sleep", "1"], cmdline]) is running


CONFIG = """<boinc>
  <config>
  </config>
  <tasks>
    <task>
      <cmd>
        antique_file_deleter -d 2
      </cmd>
      <period>
        24 hours
      </period>
    </task>
  </tasks>
</boinc>
"""


def test_the_task_is_added_once_and_never_turned_back_on():
    text = bl.config_with_tasks(CONFIG)
    assert bl.task_commands(text) == ["antique_file_deleter -d 2", bl.TASK_COMMAND]
    assert text.endswith(bl.TASKS[0].xml() + "  </tasks>\n</boinc>\n")
    assert bl.config_with_tasks(text) == text
    disabled = text.replace("<disabled>0</disabled>", "<disabled>1</disabled>")
    assert bl.config_with_tasks(disabled) == disabled
    bare = bl.config_with_tasks("<boinc>\n  <config>\n  </config>\n</boinc>\n")
    assert bare.endswith(f"    <tasks>\n{bl.TASKS[0].xml()}    </tasks>\n</boinc>\n")
    with pytest.raises(ValueError, match="no </boinc>"):
        bl.config_with_tasks("<config/>")


def test_the_task_runs_at_each_run_of_bin_start_cron():
    # sched/start interpret_period: "4 min" is 240 s; bin/start --cron runs every 300 s.
    number, unit = bl.TASK_PERIOD.split()
    assert unit == "min" and 60 * int(number) < 300 and bl.TASK_OUTPUT.endswith(".out")


# -- in the apache service ------------------------------------------------------------------
EXTRA_SCHEMA = """
ALTER TABLE workunit ADD COLUMN file_delete_state INTEGER DEFAULT 0;
ALTER TABLE result ADD COLUMN file_delete_state INTEGER DEFAULT 0;
CREATE TABLE job_file (id INTEGER PRIMARY KEY, name TEXT UNIQUE, create_time REAL, delete_time REAL);
CREATE TABLE assignment (id INTEGER PRIMARY KEY, workunitid INTEGER);
"""


@pytest.fixture
def db(tmp_path, monkeypatch):
    fake = install_mysqldb(tmp_path, monkeypatch)
    with __import__("sqlite3").connect(fake.path) as conn:
        conn.executescript(EXTRA_SCHEMA)
        conn.execute(database.CREATE_BATCH_FILE_ASSOC)
    return fake


@pytest.fixture
def root(tmp_path):
    return project_folder(tmp_path / "project")


def call(root, *argv):
    out, err = io.BytesIO(), io.StringIO()
    code = jobs.main(list(argv), root=root, out=out, err=err)
    return code, json.loads(out.getvalue() or "null"), err.getvalue()


def answer(root, *argv):
    code, got, err = call(root, *argv)
    assert code == 0, err
    return got


class Project:
    """Rows and files of a project, made the way BOINC's programs leave them."""

    def __init__(self, db, root):
        self.db, self.root = db, root

    def batch(self, batch: int, state: int = bj.BATCH_IN_PROGRESS, expire_time: float = 0) -> None:
        self.db.sql("INSERT INTO batch (id, name, state, expire_time, njobs) VALUES (?, ?, ?, ?, 0)",
                    (batch, f"b{batch}", state, expire_time))

    def job(self, name: str, batch: int, inputs=(), state: str = "finished") -> int:
        """A workunit with one result. finished: done, assimilated, the file_deleter through
        it; assimilated: not yet through the file_deleter; running: its result in progress;
        unsent: its result not sent."""
        wu = {"finished": (1, 2, 2), "assimilated": (1, 2, 1), "running": (0, 0, 0), "unsent": (0, 0, 0)}[state]
        result = {"finished": (5, 1, 2), "assimilated": (5, 1, 1), "running": (4, 0, 0), "unsent": (2, 0, 0)}[state]
        self.db.sql("INSERT INTO workunit (name, batch, canonical_resultid, assimilate_state, file_delete_state, "
                    "xml_doc) VALUES (?, ?, ?, ?, ?, ?)", (name, batch, *wu, wu_xml(*inputs).encode()))
        (wu_id,), = self.db.sql("SELECT id FROM workunit WHERE name=?", (name,))
        self.db.sql("INSERT INTO result (workunitid, batch, server_state, outcome, file_delete_state) "
                    "VALUES (?, ?, ?, ?, ?)", (wu_id, batch, *result))
        self.db.sql("INSERT INTO assignment (workunitid) VALUES (?)", (wu_id,))
        if state in ("finished", "assimilated"):
            self.output(batch, f"{name}__file_out")
        return wu_id

    def output(self, batch: int, name: str) -> None:
        folder = self.root / "results" / str(batch)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("OUT\n")

    def stage(self, *names: str) -> None:
        for name in names:
            for i, path in enumerate(bl.staged_files(name)):
                if i != 1:  # no .gz
                    (self.root / path).parent.mkdir(parents=True, exist_ok=True)
                    (self.root / path).write_text(name)

    def staged(self, name: str) -> bool:
        return (self.root / bl.staged_files(name)[0]).exists()

    def job_file(self, name: str, batch: int, delete_time: float = 0) -> None:
        self.db.sql("INSERT INTO job_file (name, create_time, delete_time) VALUES (?, 0, ?)", (name, delete_time))
        (file_id,), = self.db.sql("SELECT id FROM job_file WHERE name=?", (name,))
        self.db.sql("INSERT INTO batch_file_assoc (job_file_id, batch_id) VALUES (?, ?)", (file_id, batch))

    def count(self, table: str, where: str = "1", params: tuple = ()) -> int:
        return self.db.sql(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)[0][0]


@pytest.fixture
def project(db, root):
    return Project(db, root)


def test_retire_marks_a_finished_batch_and_refuses_one_with_pending_jobs(root, project):
    project.batch(1)
    project.job("a1", 1, [jf(1)])
    project.db.sql("INSERT INTO workunit (name, batch, error_mask) VALUES ('a2', 1, 16)")  # failed: cancelled
    assert answer(root, "retire", "1") == {"batch": 1, "state": "retired", "was_retired": False}
    assert answer(root, "retire", "1") == {"batch": 1, "state": "retired", "was_retired": True}
    assert answer(root, "batches")[0]["state"] == "retired"
    project.batch(2)
    project.job("b1", 2, state="running")
    project.job("b2", 2, state="assimilated")  # done and assimilated
    project.db.sql("UPDATE workunit SET canonical_resultid=7 WHERE name='b1'")  # validated, not assimilated
    code, got, err = call(root, "retire", "2")
    assert (code, got) == (3, None)
    assert "batch 2 has 1 job(s) not finished; nothing was changed" in err and "batch abort 2" in err
    assert project.db.sql("SELECT state FROM batch WHERE id=2") == [(bj.BATCH_IN_PROGRESS,)]
    assert "no batch 9" in call(root, "retire", "9")[2]


@pytest.fixture
def three_batches(project):
    """1: retired, finished, its inputs jf 1 (shared with batch 2), 2 (its own, a job_file
    row), 3 (a job_file row kept until later); 2: in progress, uses jf 1; 3: retired, a job
    still running (jf 4); 4: in progress and expired, one job done, one unsent (jf 5)."""
    project.batch(1, bl.BATCH_RETIRED)
    project.job("a1", 1, [jf(1), jf(2)])
    project.job("a2", 1, [jf(2)])
    project.db.sql("INSERT INTO workunit (name, batch, error_mask, assimilate_state, file_delete_state) "
                   "VALUES ('a3', 1, 16, 2, 2)")  # cancelled, assimilated
    project.output(1, "a3_error")
    project.job_file(jf(2), 1)
    project.job_file(jf(3), 1, delete_time=NOW + 3600)
    project.batch(2)
    project.job("b1", 2, [jf(1)], state="running")
    project.batch(3, bl.BATCH_RETIRED)
    project.job("c1", 3, [jf(4)])
    project.job("c2", 3, [jf(4)], state="running")
    project.batch(4, expire_time=NOW - 10)
    project.job("d1", 4, [jf(5)])
    project.job("d2", 4, [jf(5)], state="unsent")
    project.stage(*(jf(i) for i in range(1, 6)))
    return project


def clean(root, busy=lambda: False, now=NOW) -> dict:
    return lifecycle.clean_batches(jobs.ProjectFolder(root, io.BytesIO()), [], now=now, busy=busy)


def test_clean_up_removes_only_what_finished_retired_batches_alone_use(root, three_batches):
    p = three_batches
    got = clean(root)
    assert got["expired"] == [4]
    assert got["batches"] == [{"batch": 1, "jobs_purged": 3, "results_purged": 2, "outputs_deleted": 3,
                               "batch_deleted": True}]
    assert got["inputs_deleted"] == 1 and got["inputs_kept"] == 2
    assert [w["batch"] for w in got["waiting"]] == [3, 4]
    assert got["waiting"][0] == {"batch": 3, "jobs": 2, "jobs_unfinished": 1, "results_unfinished": 1}
    # Batch 1: rows, outputs, its own input and its job_file row are gone.
    assert p.count("batch", "id=1") == 0 and p.count("workunit", "batch=1") == 0
    assert p.count("result", "batch=1") == 0 and p.count("assignment", "workunitid<=3") == 0
    assert not (root / "results" / "1").exists()
    assert not p.staged(jf(2)) and not (root / bl.staged_files(jf(2))[2]).exists()  # the .md5 too
    assert p.count("job_file", "name=?", (jf(2),)) == 0 and p.count("batch_file_assoc", "batch_id=1") == 0
    # Kept: the input batch 2 uses, the one its job_file row keeps for an hour, all of batch 3.
    assert p.staged(jf(1)) and p.staged(jf(3)) and p.count("job_file", "name=?", (jf(3),)) == 1
    assert p.staged(jf(4)) and p.count("workunit", "batch=3") == 2 and (root / "results" / "3").is_dir()
    # Batch 4 expired: its unsent job cancelled, the batch retired, nothing removed yet.
    assert p.db.sql("SELECT state FROM batch WHERE id=4") == [(bl.BATCH_RETIRED,)]
    assert p.db.sql("SELECT name, error_mask FROM workunit WHERE batch=4 ORDER BY id") == [("d1", 0), ("d2", 16)]
    assert p.db.sql("SELECT r.server_state, r.outcome FROM result r JOIN workunit w ON w.id=r.workunitid "
                    "WHERE w.name='d2'") == [(5, bj.RESULT_OUTCOME_DIDNT_NEED)]
    assert p.staged(jf(5)) and (root / "results" / "4").is_dir()
    # Nothing more to do until batch 3 and 4 finish; then each goes, and its inputs with it.
    again = clean(root)
    assert again["expired"] == [] and again["batches"] == [] and len(again["waiting"]) == 2
    p.db.sql("UPDATE workunit SET canonical_resultid=1, assimilate_state=2, file_delete_state=2")
    p.db.sql("UPDATE result SET server_state=5, outcome=1, file_delete_state=2 WHERE server_state<>5")
    last = clean(root)
    assert [b["batch"] for b in last["batches"]] == [3, 4] and last["inputs_deleted"] == 2
    assert not p.staged(jf(4)) and not p.staged(jf(5)) and p.staged(jf(1))
    assert p.count("batch") == 1 and p.count("workunit") == 1  # batch 2's


def test_results_still_owed_to_the_file_deleter_hold_a_batch_back(root, project):
    project.batch(1, bl.BATCH_RETIRED)
    project.job("a1", 1, [jf(1)])
    project.db.sql("UPDATE result SET file_delete_state=1")  # READY: its upload still there
    project.stage(jf(1))
    got = clean(root)
    assert got["batches"] == [] and got["waiting"][0]["results_unfinished"] == 1 and project.staged(jf(1))


def test_a_running_submission_postpones_the_clean_up(root, three_batches):
    p = three_batches
    got = clean(root, busy=lambda: True)
    assert got["postponed"].startswith("a submission is running") and got["expired"] == [4]
    assert p.staged(jf(2)) and p.count("workunit", "batch=1") == 3 and (root / "results" / "1").is_dir()
    assert clean(root)["batches"][0]["batch"] == 1 and not p.staged(jf(2))


def test_an_input_named_by_a_job_made_during_the_clean_up_stays(root, three_batches):
    p = three_batches

    def busy():  # a submission that ended between the scan and the deletion
        if not p.count("workunit", "name='late'"):
            p.job("late", 2, [jf(2)], state="unsent")
        return False
    got = clean(root, busy=busy)
    assert got["inputs_deleted"] == 0 and p.staged(jf(2)) and p.count("job_file", "name=?", (jf(2),)) == 1
    assert got["batches"][0]["batch_deleted"] is True


def test_outputs_that_cannot_be_deleted_keep_the_batchs_rows(root, three_batches, monkeypatch):
    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(lifecycle.shutil, "rmtree", refuse)
    got = clean(root)
    assert got["batches"] == [{"batch": 1, "error": "outputs not deleted: [Errno 13] Permission denied: "
                               f"'{root / 'results' / '1'}'"}]
    assert three_batches.count("workunit", "batch=1") == 3 and three_batches.count("batch", "id=1") == 1


def test_many_jobs_are_read_and_purged_a_page_at_a_time(root, project, monkeypatch):
    monkeypatch.setattr(bl, "PAGE", 3)
    project.batch(1, bl.BATCH_RETIRED)
    for i in range(8):
        project.job(f"a{i}", 1, [jf(i)])
    project.batch(2)
    for i in range(7):
        project.job(f"b{i}", 2, [jf(i + 6)], state="running")
    project.stage(*(jf(i) for i in range(13)))
    got = clean(root)
    assert got["batches"][0]["jobs_purged"] == 8 and got["inputs_deleted"] == 6
    assert [i for i in range(13) if project.staged(jf(i))] == list(range(6, 13))


def test_the_task_is_a_command_of_boincserver_jobs(root, three_batches):
    got = answer(root, "clean-batches")
    assert got["batches"][0]["batch"] == 1 and got["time"].endswith("Z")
    assert "retire" in jobs.COMMANDS and "clean-batches" in jobs.COMMANDS


def test_a_create_work_of_this_machine_is_seen_in_proc():
    # A process whose argv[0] is create_work, as bin/create_work's is.
    child = subprocess.Popen(["create_work", "-c", "import time; time.sleep(30)"], executable=sys.executable)
    try:
        deadline = time.monotonic() + 10
        while not lifecycle.submission_running():
            assert time.monotonic() < deadline, lifecycle.running_commands()
            time.sleep(0.05)
        assert ["create_work", "-c", "import time; time.sleep(30)"] in lifecycle.running_commands()
    finally:
        child.kill()
        child.wait()


def test_prepare_project_adds_the_table_and_the_task_once(tmp_path, monkeypatch):
    fake = install_mysqldb(tmp_path, monkeypatch)
    root = project_folder(tmp_path / "project")
    settings = {"db_host": "mysql", "db_user": "u", "db_passwd": "p", "db_name": "demo"}
    assert lifecycle.prepare_project(root, settings) == [f"config.xml (task {bl.TASK_COMMAND!r})"]
    assert bl.TASK_COMMAND in bl.task_commands((root / "config.xml").read_text())
    assert lifecycle.prepare_project(root, settings) == []
    fake.sql("INSERT INTO batch_file_assoc (job_file_id, batch_id) VALUES (1, 2)")
    assert fake.sql("SELECT * FROM batch_file_assoc") == [(1, 2)]


def test_every_start_of_the_makeproject_job_prepares_the_life_cycle(tmp_path, monkeypatch, capsys):
    from container_fakes import fake_mounts, this_user
    from test_container_setup import Machine, started

    from boincserver.container import common
    from boincserver.container.common import Owner
    fake = install_mysqldb(tmp_path, monkeypatch)
    monkeypatch.setattr(common, "run_command", Machine().run_command)
    monkeypatch.setattr(Owner, "named", staticmethod(this_user))
    monkeypatch.setattr(Owner, "give", lambda self, path: None)
    mounts = fake_mounts(tmp_path)
    (tmp_path / "image/project").mkdir(parents=True)
    environ = {"PROJECT": "demo", "BOINC_USER": "boincadm", "PROJECT_ROOT": str(tmp_path / "image/project"),
               "URL_BASE": "http://boinc.example.org"}
    for _ in range(2):
        started(mounts, environ)
    assert bl.task_commands((mounts.project / "config.xml").read_text()).count(bl.TASK_COMMAND) == 1
    assert capsys.readouterr().out.count(f"batch clean-up: config.xml (task {bl.TASK_COMMAND!r})") == 1
    assert fake.sql("SELECT COUNT(*) FROM batch_file_assoc") == [(0,)]


# -- on the host ------------------------------------------------------------------------------
def test_batch_retire_asks_the_apache_service_and_says_when_the_batch_goes(monkeypatch, capsys):
    from typer.testing import CliRunner

    from boincserver import jobs as host_jobs
    from boincserver.commands import cli
    from boincserver.commands import jobs as commands_jobs
    from boincserver.errors import InvalidInput
    asked = []

    def helper(project, args):
        asked.append((project, args))
        if args[1] == "2":
            raise InvalidInput("batch 2 has 1 job(s) not finished; nothing was changed")
        return {"batch": int(args[1]), "state": "retired", "was_retired": args[1] == "4"}
    monkeypatch.setattr(host_jobs, "jobs_helper", helper)
    monkeypatch.setattr(commands_jobs, "open_project", lambda: "the project")
    runner = CliRunner()
    done = runner.invoke(cli.app, ["batch", "retire", "3"])
    assert done.exit_code == 0 and asked == [("the project", ["retire", "3"])]
    assert "batch 3 retired: its jobs, outputs and inputs are deleted at the project's next clean-up" in done.output
    assert "was retired already" in runner.invoke(cli.app, ["batch", "retire", "4"]).output
    assert json.loads(runner.invoke(cli.app, ["batch", "retire", "3", "--json"]).output)["state"] == "retired"
    monkeypatch.setattr(sys, "argv", ["boincserver", "batch", "retire", "2"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    assert capsys.readouterr().err.startswith("Error: batch 2 has 1 job(s) not finished; nothing was changed")


def test_a_clean_up_by_hand_skips_while_another_holds_the_tasks_lock(root, three_batches):
    folder = jobs.ProjectFolder(root, io.BytesIO())
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys
sys.path[:0] = {sys.path!r}
from pathlib import Path
from boincserver.container import lifecycle
with lifecycle.task_lock(Path({str(root)!r})) as locked:
    print(locked, flush=True)
    sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        got = lifecycle.clean_batches(folder, [], now=NOW, busy=lambda: False)
        assert got["skipped"] == "another clean-up is running" and three_batches.count("batch", "id=1") == 1
    finally:
        holder.communicate("")
    assert clean(root)["batches"][0]["batch_deleted"] is True
    with lifecycle.task_lock(root) as first, lifecycle.task_lock(root) as again:
        assert first and again  # one process may take it again (bin/start's run holds it through exec)
