"""boincserver-jobs (boincserver.container.jobs and .apps) over a fake project folder: its
database is SQLite behind a fake MySQLdb, its bin/ programs are small scripts."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import xml.etree.ElementTree as ET

import pytest
from container_fakes import on_path, fake_create_work, install_mysqldb, project_folder, script

from boincserver import job_stream
from boincserver import jobs as host_jobs
from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import jobs as bj
from boincserver.container import apps as container_apps
from boincserver.container import jobs


@pytest.fixture
def db(tmp_path, monkeypatch):
    fake = install_mysqldb(tmp_path, monkeypatch)
    fake.sql("INSERT INTO platform (id, name) VALUES (1, 'x86_64-pc-linux-gnu')")
    fake.sql("INSERT INTO app (id, name, user_friendly_name) VALUES (1, 'up', 'Upper case')")
    return fake


@pytest.fixture
def root(tmp_path, monkeypatch):
    folder = project_folder(tmp_path / "project")
    fake_create_work(folder)
    (folder / "templates" / "up_in").write_text(boinc_apps.input_template(["in"]))
    on_path(monkeypatch, folder)
    monkeypatch.chdir(folder)  # the bin/ scripts log to ./calls.log, as exec's workdir is PROJECT_ROOT
    return folder


def call(root, *argv):
    out, err = io.BytesIO(), io.StringIO()
    code = jobs.main(list(argv), root=root, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def answer(root, *argv):
    code, out, err = call(root, *argv)
    assert code == 0, err
    return json.loads(out)


def refused(root, *argv) -> str:
    code, out, err = call(root, *argv)
    assert (code, out) == (3, b""), err
    assert err.startswith("boincserver-jobs: ")
    return err


def calls(root) -> list[str]:
    log = root / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_an_unknown_command_prints_the_usage(root):
    code, out, err = call(root, "nope")
    assert code == 2 and out == b"" and "usage: boincserver-jobs" in err and "submit" in err


# -- check-app and submit ---------------------------------------------------------------------
def test_check_app_knows_the_app_and_its_input_count(root, db):
    assert answer(root, "check-app", "up", "1") == {"app": "up", "inputs": 1}
    assert "unknown app 'nope' (apps: up); nothing was created" in refused(root, "check-app", "nope", "1")
    assert "takes 1 input file(s) a job, but job(s) have 2" in refused(root, "check-app", "up", "1,2")
    (root / "templates" / "up_in").unlink()
    assert "no input template templates/up_in" in refused(root, "check-app", "up", "1")


FOLDER = "tmp_boincserver/boincserver-submit-1"
URL = "http://example.org/demo/download"


def staged(data: bytes) -> tuple[str, str]:
    """(path in the project, name) of a staged input."""
    name = bj.staged_name(hashlib.md5(data).hexdigest())
    return "download/" + bj.dir_hier_path(name), name


def stream(names, inputs=(), pieces=None, extra=(), end=True) -> bytes:
    """What boincserver sends `submit` (as Python's tarfile writes it): the names, the inputs,
    the create_work lines (default: one line per name, input i % len(inputs), all in jobs.txt)."""
    inputs = [staged(data) + (data,) for data in inputs]
    if pieces is None:
        pieces = {"jobs.txt": [bj.stdin_line(n, [inputs[i % len(inputs)][1]] if inputs else ["jf_0"])
                               for i, n in enumerate(names)]}
    members = [(f"{FOLDER}/names.txt", "".join(n + "\n" for n in names).encode())]
    members += [(path, data) for path, _, data in inputs] + list(extra)
    members += [(f"{FOLDER}/{piece}", "".join(line + "\n" for line in lines).encode())
                for piece, lines in pieces.items()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    return data if end else data[:data.rindex(f"{FOLDER}/".encode()) + 520]  # in the last piece's data


def submit(root, data: bytes, app="up", batch="b", *options, counts="1"):
    out, err = io.BytesIO(), io.StringIO()
    code = jobs.main(["submit", "--inputs", counts, FOLDER, app, batch, *options], root=root, out=out, err=err,
                     inp=io.BytesIO(data))
    return code, json.loads(out.getvalue() or "null"), err.getvalue()


def submitted(root, data: bytes, *args, **kwargs) -> dict:
    code, got, err = submit(root, data, *args, **kwargs)
    assert code == 0, err
    return got


def not_submitted(root, data: bytes, *args, **kwargs) -> str:
    code, got, err = submit(root, data, *args, **kwargs)
    assert (code, got) == (3, None), err
    return err


def recording_create_work(root):
    """bin/create_work keeping the lines it reads in lines.log, then doing as the fake does."""
    fake = root / "bin" / "create_work"
    fake.rename(root / "bin" / "create_work_fake")
    script(fake, f"""
        #!{sys.executable}
        import subprocess, sys
        data = sys.stdin.buffer.read()
        open("lines.log", "wb").write(data)
        sys.exit(subprocess.run([sys.argv[0] + "_fake", *sys.argv[1:]], input=data).returncode)
        """)
    return root / "lines.log"


def test_submit_makes_one_batch_and_one_create_work_run(root, db):
    got = submitted(root, stream(["j1", "j2"], [b"one\n"]), "up", "my batch", "--target_nresults", "2")
    assert got["created"] == 2 and got["first"] == "j1" and got["batch"] == 1
    assert db.sql("SELECT name, njobs, state, app_id, description FROM batch") == \
        [("my batch", 2, bj.BATCH_IN_PROGRESS, 1, "boincserver submit")]
    assert calls(root) == ["create_work --appname up --batch 1 --target_nresults 2 --stdin"]
    assert db.sql("SELECT name, batch FROM workunit ORDER BY id") == [("j1", 1), ("j2", 1)]
    path, _ = staged(b"one\n")
    assert (root / path).read_bytes() == b"one\n"
    assert not (root / FOLDER).exists()  # names and lines go to create_work, never to a file


def test_submit_without_a_batch(root, db):
    got = submitted(root, stream(["j1"]), "up", "-")
    assert got["batch"] == 0 and db.sql("SELECT count(*) FROM batch") == [(0,)]
    assert calls(root) == ["create_work --appname up --stdin"]


def test_a_second_submission_of_the_same_names_creates_nothing(root, db):
    submitted(root, stream(["j1", "j2"]), "up", "first")
    err = not_submitted(root, stream(["j2", "j3"], [b"new\n"]), "up", "second")
    assert "1 job name(s) exist already, e.g. 'j2'" in err
    assert db.sql("SELECT name FROM batch") == [("first",)]
    assert db.sql("SELECT count(*) FROM workunit") == [(2,)]
    assert len(calls(root)) == 1 and not (root / staged(b"new\n")[0]).exists()  # refused before the inputs


def test_a_failed_create_work_is_undone_whole(root, db, monkeypatch):
    monkeypatch.setenv("FAKE_CREATE_WORK_FAIL_AFTER", "2")
    err = not_submitted(root, stream(["j1", "j2", "j3"]), "up", "broken")
    assert "create_work failed (exit 1): create_work: can't find input file jf_x; nothing was created" in err
    assert db.sql("SELECT count(*) FROM workunit") == [(0,)]
    assert db.sql("SELECT count(*) FROM result") == [(0,)]
    assert db.sql("SELECT count(*) FROM batch") == [(0,)]


def test_submit_to_an_unknown_app_creates_nothing(root, db):
    assert "unknown app 'nope'" in not_submitted(root, stream(["j1"], [b"x"]), "nope", "b")
    assert calls(root) == [] and db.sql("SELECT count(*) FROM batch") == [(0,)]
    assert not (root / "download").exists()


@pytest.mark.parametrize("data, message", [
    (stream(["j1", "j2"], [b"x"], end=False), "cut short"),
    (stream(["j1", "j2"], [b"x"], pieces={"jobs-1.txt": [bj.stdin_line("j1", ["jf_0"])]}), "1 job line(s) came for 2"),
    (stream(["j1"], [b"x"], pieces={"jobs.txt": [bj.stdin_line("j1", ["jf_0"]), bj.stdin_line("j9", ["jf_0"])]}),
     "job 'j9' was not among the names checked"),
    (stream(["j1"], extra=[("bin/create_work", b"#!/bin/sh\n")]), "unexpected member 'bin/create_work'"),
    (stream(["j1"], extra=[("download/../config.xml", b"x")]), "unexpected member"),
])
def test_a_broken_or_changed_stream_creates_nothing(root, db, data, message):
    assert message in not_submitted(root, data, "up", "b")
    assert db.sql("SELECT count(*) FROM workunit") == [(0,)] and db.sql("SELECT count(*) FROM batch") == [(0,)]
    assert db.sql("SELECT count(*) FROM result") == [(0,)]
    assert (root / "bin" / "create_work").read_text().startswith("#!" + sys.executable)


def test_create_work_is_given_each_received_input_as_a_remote_file(root, db):
    lines = recording_create_work(root)
    config = root / "config.xml"
    config.write_text(config.read_text().replace("<uldl_dir_fanout>", f"<download_url>{URL}</download_url>\n"
                                                 "    <uldl_dir_fanout>"))
    (root / "download" / "3").mkdir(parents=True)
    old = root / "download" / bj.dir_hier_path(bj.staged_name("0" * 32))  # staged by an earlier submission
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"12345")
    path, name = staged(b"first\n")
    pieces = {"jobs-1.txt": [bj.stdin_line("j1", [name], "-n 3", 2)],
              "jobs.txt": [bj.stdin_line("j2", [name, bj.staged_name("0" * 32)]), bj.stdin_line("j3", ["jf_missing"])]}
    got = submitted(root, stream(["j1", "j2", "j3"], [b"first\n"], pieces), "up", "b", counts="")
    assert got["created"] == 3
    remote = f"--remote_file {URL}/{bj.dir_hier_path(name)} 6 {name[3:]}"
    assert lines.read_text().splitlines() == [
        f'--wu_name j1 --command_line "-n 3" --priority 2 {remote}',
        f"--wu_name j2 {remote} --remote_file {URL}/{bj.dir_hier_path(old.name)} 5 {'0' * 32}",
        "--wu_name j3 jf_missing"]  # not staged: create_work says so
    assert (root / path).read_bytes() == b"first\n"


def test_an_input_staged_before_is_left_alone_and_gzip_templates_keep_plain_names(root, db):
    lines = recording_create_work(root)
    config = root / "config.xml"
    config.write_text(config.read_text().replace("<uldl_dir_fanout>", f"<download_url>{URL}</download_url>"
                                                 "<uldl_dir_fanout>"))
    (root / "templates" / "up_in").write_text("<file_info>\n<gzip/>\n</file_info>\n")
    path, name = staged(b"data\n")
    (root / path).parent.mkdir(parents=True)
    (root / path).write_bytes(b"kept")
    submitted(root, stream(["j1"], [b"data\n"]), "up", "b", counts="")
    assert (root / path).read_bytes() == b"kept"
    assert lines.read_text() == f"--wu_name j1 {name}\n"


def test_what_boincserver_sends_is_what_submit_reads(root, db, tmp_path, monkeypatch):
    monkeypatch.setattr(job_stream, "PIECE", 2)
    lines = recording_create_work(root)
    for i in range(5):
        (tmp_path / f"in{i}.txt").write_text(f"input {i}\n")
    (tmp_path / "jobs.txt").write_text("".join(f"in{i % 4}.txt\n" for i in range(5)))
    template = "templates/" + "t" * 120  # a long name: a GNU long-name member of its own
    sent = io.BytesIO()
    with (tmp_path / "recorded").open("w+b") as recorded:
        checked = host_jobs.check_jobs_file(tmp_path / "jobs.txt", recorded)
        parsed = bj.parse_jobs((tmp_path / "jobs.txt").read_text().splitlines(True))
        job_stream.jobs_to_stream(parsed, tmp_path, "p", FOLDER, {template: b"<t/>"}, recorded, checked.jobs)(sent)
    got = submitted(root, sent.getvalue(), "up", "b")
    assert got["created"] == 5 and db.sql("SELECT name FROM workunit ORDER BY id") == [(f"p_{i}",) for i in range(1, 6)]
    assert (root / template).read_bytes() == b"<t/>"
    for i in range(4):
        path, name = staged(f"input {i}\n".encode())
        assert (root / path).read_text() == f"input {i}\n"
    assert [line.split()[1] for line in lines.read_text().splitlines()] == [f"p_{i}" for i in range(1, 6)]


# -- status, batches, abort ---------------------------------------------------------------------
@pytest.fixture
def batch_of_three(root, db):
    """Batch 1: j1 done (an output on the results volume), j2 failed (cancelled), j3 pending."""
    submitted(root, stream(["j1", "j2", "j3"]), "up", "three")
    db.sql("UPDATE workunit SET canonical_resultid=1, assimilate_state=2 WHERE name='j1'")
    db.sql("UPDATE result SET server_state=5, outcome=1 WHERE workunitid=1")
    db.sql("UPDATE workunit SET error_mask=16 WHERE name='j2'")
    (root / "results" / "1").mkdir()
    (root / "results" / "1" / "j1__file_out").write_text("HELLO\n")
    (root / "results" / "1" / "j10__file_out").write_text("another job's\n")
    return 1


def test_status_by_batch(root, batch_of_three):
    got = answer(root, "status", "--batch", "1")
    by_name = {j["name"]: j for j in got["jobs"]}
    assert got["summary"] == {"done": 1, "pending": 1, "failed": 1}
    assert by_name["j1"]["outputs"] == ["out"] and by_name["j1"]["results"]["success"] == 1
    assert by_name["j2"]["state"] == "failed" and by_name["j2"]["errors"] == ["cancelled"]
    assert by_name["j3"] == {"name": "j3", "batch": 1, "state": "pending", "outputs": [],
                             "results": {"unsent": 1, "in_progress": 0, "success": 0, "error": 0}}


def test_status_by_name_and_unknown_names(root, batch_of_three):
    got = answer(root, "status", "--wu", "j3", "j1")
    assert [j["name"] for j in got["jobs"]] == ["j1", "j3"] and got["batch"] is None
    assert "no job named 'x' (and 1 more)" in refused(root, "status", "--wu", "j1", "x", "y")
    assert "no batch 9" in refused(root, "status", "--batch", "9")


def test_status_as_a_tar_stream_ends_with_the_report(root, batch_of_three):
    code, out, err = call(root, "status", "--batch", "1", "--tar")
    assert code == 0, err
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tar:
        names = tar.getnames()
        assert names == ["j1/out", jobs.STATUS_MEMBER]
        assert tar.extractfile("j1/out").read() == b"HELLO\n"
        report = json.loads(tar.extractfile(jobs.STATUS_MEMBER).read())
    assert report["summary"]["done"] == 1


def test_batches_list_counts_and_state_names(root, batch_of_three):
    (row,) = answer(root, "batches")
    assert {k: row[k] for k in ("id", "name", "app", "jobs", "done", "failed", "pending", "state")} == \
        {"id": 1, "name": "three", "app": "up", "jobs": 3, "done": 1, "failed": 1, "pending": 1, "state": "in progress"}


def test_abort_cancels_what_is_unfinished_only(root, db, batch_of_three):
    got = answer(root, "abort", "1")
    assert got == {"batch": 1, "jobs_cancelled": 1, "results_cancelled": 2}
    # j3 cancelled; j1 (done) and j2 (failed already) keep their state.
    assert db.sql("SELECT name, error_mask FROM workunit ORDER BY id") == [("j1", 0), ("j2", 16), ("j3", 16)]
    assert db.sql("SELECT server_state, outcome FROM result WHERE workunitid=3") == [(5, bj.RESULT_OUTCOME_DIDNT_NEED)]
    assert db.sql("SELECT state FROM batch") == [(bj.BATCH_ABORTED,)]
    assert answer(root, "batches")[0]["state"] == "aborted"
    assert "no batch 7" in refused(root, "abort", "7")


# -- apps ---------------------------------------------------------------------------------------
def test_app_state(root, db):
    got = answer(root, "app-state", "up")
    assert got == {"project_xml": (root / "project.xml").read_text(), "version_dirs": ["1.00"],
                   "daemons": ["feeder -d 3"], "registered": True,
                   "plan_classes": [], "plan_class_spec": None}
    assert answer(root, "app-state", "new")["version_dirs"] == [] and not answer(root, "app-state", "new")["registered"]


def daemons_json(app="up") -> str:
    return json.dumps([{"cmd": d.cmd, "xml": d.xml()} for d in boinc_apps.app_daemons(app)])


def unpack_version(root, vdir="apps/up/1.01/x86_64-pc-linux-gnu"):
    """What the host's tar leaves: the new version and project.xml, the old one kept aside."""
    (root / container_apps.PROJECT_XML_BEFORE).write_text((root / "project.xml").read_text())
    (root / "project.xml").write_text("<boinc><app><name>up</name></app><app><name>new</name></app></boinc>\n")
    (root / vdir).mkdir(parents=True)
    (root / vdir / "up_main").write_text("#!/bin/sh\n")
    return vdir


def test_app_install_registers_adds_the_daemons_and_restarts_them(root, db):
    vdir = unpack_version(root)
    got = answer(root, "app-install", "up", daemons_json(), vdir)
    assert got["app"] == 1 and got["daemons_added"] == [d.cmd for d in boinc_apps.app_daemons("up")]
    assert calls(root) == ["xadd ", "update_versions --noconfirm", "stop ", "start ", "apache2ctl graceful"]
    config = ET.parse(root / "config.xml").getroot()
    assert [d.findtext("cmd").strip() for d in config.find("daemons")] == \
        ["feeder -d 3", "sample_trivial_validator --app up", "sample_assimilator --app up"]
    assert not (root / container_apps.PROJECT_XML_BEFORE).exists() and (root / vdir).is_dir()
    # Once there, the daemons are neither added again nor restarted.
    (root / "calls.log").unlink()
    assert answer(root, "app-install", "up", daemons_json(), vdir)["daemons_added"] == []
    assert calls(root) == ["xadd ", "update_versions --noconfirm", "apache2ctl graceful"]


def test_app_install_into_a_config_without_daemons_makes_the_section(root, db):
    (root / "config.xml").write_text("<boinc>\n  <config>\n  </config>\n</boinc>\n")
    answer(root, "app-install", "up", daemons_json(), unpack_version(root))
    config = ET.parse(root / "config.xml").getroot()
    assert len(config.find("daemons")) == 2 and config.find("daemon") is None


def test_a_refused_version_is_rolled_back(root, db):
    script(root / "bin" / "update_versions", """
        #!/bin/sh
        echo "Found a version"
        echo "skipping: up_main is not present in download/"
        """)
    before = (root / "project.xml").read_text()
    vdir = unpack_version(root)
    err = refused(root, "app-install", "up", daemons_json(), vdir)
    assert "update_versions did not add the version: Found a version | skipping" in err
    assert not (root / vdir).exists()
    assert (root / "project.xml").read_text() == before
    assert "sample_assimilator" not in (root / "config.xml").read_text()


def test_a_failing_xadd_is_rolled_back_with_its_output(root, db):
    script(root / "bin" / "xadd", "#!/bin/sh\necho 'bad project.xml' >&2\nexit 1\n")
    vdir = unpack_version(root)
    assert "`bin/xadd` failed (exit 1): bad project.xml" in refused(root, "app-install", "up", daemons_json(), vdir)
    assert not (root / vdir).exists()


def test_the_restart_waits_while_another_start_holds_the_lock(root, db, monkeypatch):
    script(root / "bin" / "start", """
        #!/bin/sh
        echo "start $*" >> calls.log
        if [ ! -e started-once ]; then touch started-once; echo "start is currently running!"; exit 1; fi
        """)
    project = jobs.ProjectFolder(root, io.BytesIO())
    container_apps.restart_daemons(project, wait=10, pause=0.01)
    assert calls(root) == ["stop ", "start ", "start "]
    (root / "started-once").unlink()
    with pytest.raises(jobs.Refused, match="start is currently running"):
        container_apps.restart_daemons(project, wait=0, pause=0.01)


def test_apps_lists_versions_and_each_apps_own_daemons(root, db):
    db.sql("INSERT INTO app (id, name, user_friendly_name) VALUES (2, 'wc', 'Word count')")
    db.sql("INSERT INTO app_version (appid, version_num, platformid, deprecated) VALUES (1, 101, 1, 0), (1, 100, 1, 1)")
    answer(root, "app-install", "up", daemons_json("up"), unpack_version(root))
    got = answer(root, "apps")
    assert [a["name"] for a in got] == ["up", "wc"]
    assert got[0]["versions"] == [
        {"version": 100, "platform": "x86_64-pc-linux-gnu", "plan_class": "", "deprecated": True},
        {"version": 101, "platform": "x86_64-pc-linux-gnu", "plan_class": "", "deprecated": False}]
    assert got[0]["daemons"] == ["sample_trivial_validator --app up", "sample_assimilator --app up"]
    assert got[1] == {"name": "wc", "friendly_name": "Word count", "versions": [], "daemons": []}


# -- after a crash: results reported but never handed to the transitioner -----------------------
def test_nudge_stalled_hands_the_transitioner_only_workunits_with_a_report_it_has_not_seen(root, db):
    names = ["stuck", "stuck_error", "seen", "running", "validated", "due", "finished"]
    submitted(root, stream(names), "up", "seven")
    far, past, finished = 2_000_000_000, 1_000, 2**31 - 1
    written, reported = 1_700_000_000, 1_700_000_100
    # Each workunit last written (mod_time) when its result was sent, before the report ...
    db.sql(f"UPDATE workunit SET transition_time={far}, mod_time={written}")
    db.sql(f"UPDATE workunit SET transition_time={past} WHERE name='due'")
    db.sql(f"UPDATE workunit SET transition_time={finished} WHERE name='finished'")
    db.sql("UPDATE workunit SET canonical_resultid=3 WHERE name='validated'")
    # ... but for the one the transitioner has handled since (a quorum of 2 waiting).
    db.sql(f"UPDATE workunit SET mod_time={reported + 5} WHERE name='seen'")
    # The scheduler stored these reports, then lost the database before it set transition_time.
    db.sql(f"UPDATE result SET server_state=5, outcome=1, received_time={reported} WHERE workunitid IN "
           "(SELECT id FROM workunit WHERE name NOT IN ('running', 'stuck_error'))")
    db.sql(f"UPDATE result SET server_state=5, outcome=3, received_time={reported} "
           "WHERE workunitid=(SELECT id FROM workunit WHERE name='stuck_error')")
    db.sql("UPDATE result SET server_state=4 WHERE workunitid=(SELECT id FROM workunit WHERE name='running')")
    assert answer(root, "nudge-stalled") == {"workunits_nudged": 2}
    times = dict(db.sql("SELECT name, transition_time FROM workunit"))
    assert all(times[n] == far for n in ("seen", "running", "validated"))
    assert (times["due"], times["finished"]) == (past, finished)
    assert past < times["stuck"] < far and past < times["stuck_error"] < far
