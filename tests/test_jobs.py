"""Jobs files, create_work's lines and the download hierarchy, without Docker."""

from __future__ import annotations

import hashlib
import io
import json
import itertools
import re
import tarfile
from pathlib import Path

import pytest

from boincserver import job_stream, jobs
from boincserver.boinc import jobs as bj
from boincserver.boinc import docker_wrapper
from boincserver.errors import InvalidInput


class NoProject:
    def __getattr__(self, name):
        raise AssertionError(f"the project was used ({name}) although the jobs file was bad")


@pytest.mark.parametrize("name, expected", [
    # What BOINC's own bin/dir_hier_path printed for these names (fanout 1024).
    ("jf_6f5902ac237024bdd0c176cb93063dc4", "26d/jf_6f5902ac237024bdd0c176cb93063dc4"),
    ("in.txt", "21b/in.txt"),
    ("hello_world_0", "10c/hello_world_0"),
])
def test_dir_hier_path_matches_boinc(name, expected):
    assert bj.dir_hier_path(name) == expected


def test_parse_line_options_and_files():
    job = bj.parse_line('--wu-name j1 --command-line "-n 3 x" --priority 5 a.txt b.txt', 7)
    assert (job.wu_name, job.command_line, job.priority, job.files, job.lineno) == ("j1", "-n 3 x", 5, ["a.txt", "b.txt"], 7)
    job = bj.parse_line("--wu_name=j2 --command_line='a b' in  # a comment")
    assert (job.wu_name, job.command_line, job.files) == ("j2", "a b", ["in"])
    assert bj.parse_line("   ") is None
    assert bj.parse_line("# only a comment") is None


@pytest.mark.parametrize("line, message", [
    ("--wu-name", "needs a value"),
    ("--bogus 1 a", "unknown option '--bogus'"),
    ("-x a", "unknown option"),
    ("--wu-name j1", "no input file"),
    ("--wu-name 'bad name' a", "job name"),
    ("--priority high a", "whole number"),
    ('--command-line "unclosed a', "close the quotes"),
    ("--command-line \"it's \\\"x\\\"\" a", "both ' and"),
])
def test_bad_lines(line, message):
    with pytest.raises(bj.JobsError, match=message):
        bj.parse_line(line)


def test_parse_jobs_numbers_lines_from_one_and_is_lazy():
    items = list(bj.parse_jobs(["# header\n", "\n", "a\n", "--bogus x\n", "b c\n"]))
    assert [(type(i).__name__, i.lineno) for i in items] == [("Job", 3), ("LineError", 4), ("Job", 5)]
    endless = (f"f{i}\n" for i in itertools.count())
    assert next(bj.parse_jobs(endless)).files == ["f0"]  # never reads the whole input


@pytest.mark.parametrize("line, plain", [
    ("a.txt b.txt", True), ("--wu-name j1 --priority 3 in\tsecond", True), ("--command-line=-n in", True),
    ("x#y", False), ("x # y", False), ("a\\ b", False), ("'a b' c", False), ('say "hi" x', False),
    ("a\xa0b c", False), ("a\x0bb c", False),
])
def test_lines_without_quotes_split_at_blanks_as_shlex_splits_them(line, plain, monkeypatch):
    assert bool(bj.PLAIN_LINE.fullmatch(line)) == plain
    fast = bj.parse_line(line, 1)
    monkeypatch.setattr(bj, "PLAIN_LINE", re.compile("(?!)"))  # every line through shlex
    assert fast == bj.parse_line(line, 1)


def test_staged_inputs_go_to_create_work_as_remote_files():
    a, b = bj.staged_name("a" * 32), bj.staged_name("b" * 32)
    known = {a: ("http://h/p/download/1f/" + a, 1024)}.get
    line = bj.stdin_line("j1", [a, b, "other"], "-n 3", 2)
    assert bj.with_remote_files(line, known) == (
        f'--wu_name j1 --command_line "-n 3" --priority 2 --remote_file http://h/p/download/1f/{a} 1024 {"a" * 32} '
        f"{b} other")
    assert bj.with_remote_files(f"--wu_name j1 --command_line {a} {a}", known).startswith(
        f"--wu_name j1 --command_line {a} --remote_file")  # a value is not an input
    for untouched in (f"--wu_name j1 --target_nresults 2 {a}", f"--wu_name j1 {a} --priority 1", f"-x {a}"):
        assert bj.with_remote_files(untouched, known) == untouched


def test_stdin_lines_quote_for_create_work():
    assert bj.stdin_line("j", ["jf_1"]) == "--wu_name j jf_1"
    assert bj.stdin_line("j", ["jf_1", "jf_2"], "-n 3", 2) == '--wu_name j --command_line "-n 3" --priority 2 jf_1 jf_2'
    assert bj.stdin_line("j", ["f"], 'say "hi"') == "--wu_name j --command_line 'say \"hi\"' f"
    with pytest.raises(bj.JobsError, match="too long"):
        bj.stdin_line("j", ["f" * 100] * 50)


def test_create_work_options():
    option_args = bj.create_work_option_args({"max_error_results": 3, "target_nresults": 2, "min_quorum": None})
    args = bj.create_work_command("up", option_args, batch=7)
    assert args == ["bin/create_work", "--appname", "up", "--batch", "7", "--max_error_results", "3",
                    "--target_nresults", "2", "--max_total_results", "5", "--stdin"]
    assert bj.check_options({"max_error_results": 3}) == {"max_error_results": 3, "max_total_results": 4}
    assert bj.check_options({"max_error_results": 3, "max_total_results": 9})["max_total_results"] == 9
    with pytest.raises(bj.JobsError, match="cannot exceed --max-total-results"):
        bj.check_options({"max_error_results": 3, "max_total_results": 2})
    with pytest.raises(bj.JobsError, match="at least 1"):
        bj.check_options({"max_error_results": 0})
    with pytest.raises(bj.JobsError, match="cannot exceed"):
        bj.check_options({"min_quorum": 3, "target_nresults": 2})
    with pytest.raises(bj.JobsError, match="unknown"):
        bj.check_options({"nope": 1})


def test_states():
    assert bj.wu_state(0, 5, 2) == "done"
    assert bj.wu_state(0, 5, 1) == "pending"
    assert bj.wu_state(0, 0, 0) == "pending"
    assert bj.wu_state(16, 0, 0) == "failed"
    assert bj.error_reasons(2 | 16) == ["too many errors", "cancelled"]
    assert bj.output_name(3, "j1", "out") == "3/j1__file_out"


def test_create_work_command_and_the_names_of_its_lines():
    option_args = bj.create_work_option_args({"max_error_results": 3})
    assert option_args == ["--max_error_results", "3", "--max_total_results", "4"]
    assert bj.create_work_command("up", option_args, 7) == ["bin/create_work", "--appname", "up", "--batch", "7",
                                                            *option_args, "--stdin"]
    assert bj.create_work_command("up", [], 0) == ["bin/create_work", "--appname", "up", "--stdin"]
    line = bj.stdin_line("j1", ["jf_1"], "-n 3", 2)
    assert bj.stdin_line_wu_name(line + "\n") == "j1"
    with pytest.raises(bj.JobsError, match="not a create_work line"):
        bj.stdin_line_wu_name("jf_1 --wu_name j1")


def test_job_and_batch_reports():
    done = bj.job_report("j1", 3, 0, 9, bj.ASSIMILATE_DONE, None, None, 1, None)
    assert done == {"name": "j1", "batch": 3, "state": "done", "outputs": [],
                    "results": {"unsent": 0, "in_progress": 0, "success": 1, "error": 0}}
    failed = bj.job_report("j2", 3, 2 | 16, 0, 0, 0, 0, 0, 3)
    assert failed["state"] == "failed" and failed["errors"] == ["too many errors", "cancelled"]
    assert bj.jobs_summary([done, failed, failed]) == {"done": 1, "pending": 0, "failed": 2}
    assert bj.batch_report(3, "b", "up", 100, 5, bj.BATCH_ABORTED, 1, None) == {
        "id": 3, "name": "b", "app": "up", "created": 100, "jobs": 5, "done": 1, "failed": 0, "pending": 4,
        "state": "aborted"}
    assert bj.batch_state(9) == "9"


def test_outputs_of_a_job_among_its_batch_folder():
    entries = ["j1__file_out", "j10__file_out", "j1__file_log.txt", "j1_error", "j2__file_out"]
    assert bj.outputs_of("j1", entries) == [("j1__file_log.txt", "log.txt"), ("j1__file_out", "out")]
    assert bj.output_name(3, "j1", "out") == "3/" + bj.outputs_of("j1", entries)[1][0]


def write_jobs(folder: Path, n: int, *, named: bool = True) -> Path:
    lines = []
    for i in range(n):
        (folder / f"in{i}.txt").write_text(f"input {i}\n")
        lines.append((f"--wu-name job{i} " if named else "") + f"in{i}.txt")
    path = folder / "jobs.txt"
    path.write_text("# test jobs\n" + "\n".join(lines) + "\n")
    return path


def test_check_jobs_file_counts(tmp_path):
    checked = jobs.check_jobs_file(write_jobs(tmp_path, 5))
    assert (checked.jobs, checked.files, checked.input_counts) == (5, 5, {1})
    assert len(checked.digest) == 64


def test_bad_lines_are_reported_with_numbers_and_nothing_is_created(tmp_path):
    path = write_jobs(tmp_path, 3)
    with path.open("a") as f:
        f.write("--wu-name job1 in0.txt\n")       # line 5: a name used twice
        f.write("missing.txt\n")                  # line 6
        f.write("--frobnicate in0.txt\n")         # line 7
    with pytest.raises(InvalidInput) as info:
        jobs.submit(NoProject(), "up", path)
    text = str(info.value)
    assert "3 bad line(s); nothing was created" in text
    assert "line 5: job name 'job1' is used twice" in text
    assert "line 6: input file missing.txt does not exist" in text
    assert "line 7: unknown option '--frobnicate'" in text


def test_many_bad_lines_are_capped(tmp_path):
    path = tmp_path / "jobs.txt"
    path.write_text("".join(f"nofile{i}\n" for i in range(50)))
    with pytest.raises(InvalidInput, match=r"and 30 more"):
        jobs.check_jobs_file(path)


def test_empty_and_missing_jobs_files(tmp_path):
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(InvalidInput, match="holds no jobs"):
        jobs.submit(NoProject(), "up", tmp_path / "empty")
    with pytest.raises(InvalidInput, match="does not exist"):
        jobs.submit(NoProject(), "up", tmp_path / "nope")
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        jobs.submit(NoProject(), "up", tmp_path / "binary")


def test_bad_app_name_and_options_are_refused_before_docker(tmp_path):
    path = write_jobs(tmp_path, 1)
    with pytest.raises(InvalidInput, match="app name"):
        jobs.submit(NoProject(), "Bad App", path)
    with pytest.raises(InvalidInput, match="at least 1"):
        jobs.submit(NoProject(), "up", path, {"max_error_results": 0})


def test_create_work_missing_input_is_refused_before_docker(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist; no job was created"):
        jobs.create_work(NoProject(), "up", [tmp_path / "nope"])


def test_dry_run_stages_each_content_once(tmp_path):
    path = write_jobs(tmp_path, 4, named=False)
    (tmp_path / "in3.txt").write_text("input 0\n")  # same content as in0.txt
    result = jobs.submit(None, "up", path, dry_run=True)
    assert result.dry_run and result.created == 4
    assert result.files_sent == 3
    assert result.first.startswith("up_") and result.first.endswith("_1")


def test_names_follow_the_file_so_a_second_submission_is_caught(tmp_path):
    path = write_jobs(tmp_path, 2, named=False)
    first = jobs.submit(None, "up", path, dry_run=True).first
    assert jobs.submit(None, "up", path, dry_run=True).first == first
    assert jobs.submit(None, "up", path, wu_prefix="again", dry_run=True).first == "again_1"


def sent_stream(path: Path, prefix: str = "p", folder: str = "tmp_boincserver/s1", **kwargs) -> bytes:
    """What submit sends for a jobs file (checked first, as submit does)."""
    sink = io.BytesIO()
    with (path.parent / "recorded").open("w+b") as recorded:
        checked = jobs.check_jobs_file(path, recorded)
        parsed = (j for j in bj.parse_jobs(path.read_text().splitlines(True)) if isinstance(j, bj.Job))
        feed = job_stream.jobs_to_stream(parsed, path.parent, prefix, folder, recorded=recorded, njobs=checked.jobs,
                                         **kwargs)
        feed(sink)
    return sink.getvalue()


def tar_members(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def test_the_stream_has_the_names_then_inputs_before_the_lines_that_name_them(tmp_path, monkeypatch):
    monkeypatch.setattr(job_stream, "PIECE", 2)
    path = write_jobs(tmp_path, 5, named=False)
    with path.open("a") as f:
        f.write("--wu-name mine in0.txt\n")  # in0.txt again: sent once
    members = tar_members(sent_stream(path, files={"templates/t_in": b"<t/>"}))
    names = [n for n, _ in members]
    assert names[:2] == ["templates/t_in", "tmp_boincserver/s1/names.txt"]
    assert members[1][1].decode().splitlines() == ["p_2", "p_3", "p_4", "p_5", "p_6", "mine"]  # line numbers
    assert [n.rsplit("/", 1)[1] for n in names if n.startswith("tmp_boincserver/s1/jobs")] == \
        ["jobs-1.txt", "jobs-2.txt", "jobs.txt"]
    staged = {n: data for n, data in members if n.startswith("download/")}
    assert len(staged) == 5
    seen = set()
    for name, data in members:
        if name.startswith("download/"):
            staged_name = name.split("/")[-1]
            assert name == "download/" + bj.dir_hier_path(staged_name)
            assert staged_name == bj.staged_name(hashlib.md5(data).hexdigest())
            seen.add(staged_name)
        elif "/jobs" in name:
            for line in data.decode().splitlines():  # every input named is on its way already
                assert set(line.split()[2:]) <= seen
    lines = b"".join(data for name, data in members if "/jobs" in name).decode().splitlines()
    assert lines[0] == f"--wu_name p_2 {bj.staged_name(hashlib.md5(b'input 0' + bytes([10])).hexdigest())}"
    assert lines[-1].startswith("--wu_name mine jf_") and len(lines) == 6


def test_the_tar_writer_writes_what_tar_reads(tmp_path):
    out = io.BytesIO()
    writer = job_stream.TarWriter(out)
    long_name = "templates/" + "x" * 120
    writer.add("download/26d/jf_1", b"a" * 1000)
    writer.add(long_name, b"")
    with (tmp_path / "f").open("w+b") as f:
        f.write(b"streamed")
        f.seek(0)
        writer.add_stream("tmp/s", f, 8)
    writer.close()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:") as tar:
        got = [(m.name, m.size, m.mode, tar.extractfile(m).read()) for m in tar.getmembers()]
    assert got == [("download/26d/jf_1", 1000, 0o644, b"a" * 1000), (long_name, 0, 0o644, b""),
                   ("tmp/s", 8, 0o644, b"streamed")]
    info = tarfile.TarInfo("download/26d/jf_1")
    info.size, info.mode, info.mtime = 1000, 0o644, int(writer.after_size[:11], 8)
    assert writer.header("download/26d/jf_1", 1000) == info.tobuf(tarfile.GNU_FORMAT)


def test_results_refuse_unsafe_member_names():
    assert jobs._safe_member("job1/out") == ("job1", "out")
    for bad in ("../x", "a/../b", "/etc/passwd", "a/b/c", "a/.hidden", "x"):
        assert jobs._safe_member(bad) is None


def test_results_need_a_selection():
    with pytest.raises(InvalidInput, match="--wu NAME"):
        jobs.results(NoProject())
    with pytest.raises(InvalidInput, match="--wu NAME"):
        jobs.results(NoProject(), ["a"], 3)


# -- failed results, as `results` shows them ----------------------------------------------------
# What the 8.2 client reports for a Docker job whose container exited 3 (client/app_control.cpp:
# the message, then the tail of the slot's stderr.txt; docker_wrapper logs every docker command).
# A real failed Docker job's stderr_out, as BOINC 8.2.15 with docker_wrapper 17 reported it for
# a container that wrote to its stderr and exited 3 (the engine's image list cut to 3 lines).
DOCKER_JOB_STDERR = (Path(__file__).parent / "fixtures/docker_wrapper_17/stderr_out_exit3.txt").read_text()


def test_a_failed_result_shows_its_exit_status_message_and_stderr_tail():
    report = bj.failure_report("dk_exit3_0", 3, 3, DOCKER_JOB_STDERR, lines=2)
    assert report == {"result": "dk_exit3_0", "outcome": "client error", "exit_status": 3,
                      "message": "process exited with code 3 (0x3, -253)",
                      "stderr_tail": "Deleted: sha256:de0427174ad40a60a0ea776ee065847454d88aa05e1dc2fa2bcceff14deaf374\n"
                                     "2026-11-25 18:21:56 (77): called boinc_finish(3)",
                      "container_output": "giving up on purpose"}
    cut = bj.failure_report("j_1", 4, 0, None)
    assert (cut["outcome"], cut["message"], cut["stderr_tail"]) == ("no reply", "", "")
    assert "container_output" not in cut
    # stderr_out cut short by the client's size limit: the tail is what there is.
    assert bj.failure_report("j_2", 3, 1, "<stderr_txt>\na\nb")["stderr_tail"] == "a\nb"


def test_a_containers_stdout_and_stderr_are_picked_out_of_the_wrappers_log():
    log = ("running docker command: start c\nprogram: docker\ncommand output:\nc\n"
           "running docker command: logs c\nprogram: docker\nan error line\ncommand output:\n"
           "stderr from container:\nfirst printed\nsecond printed\nstderr end\n"
           "running docker command: container rm c\n")
    assert docker_wrapper.container_output(log) == "an error line\nfirst printed\nsecond printed"
    # Build or create failed: the wrapper never read the container's log.
    assert docker_wrapper.container_output("running docker command: build \".\"\nprogram: docker\n") == ""


def test_status_reports_the_failed_results_of_a_job(tmp_path, monkeypatch):
    from container_fakes import install_mysqldb, project_folder

    from boincserver.container import jobs as container_jobs
    db = install_mysqldb(tmp_path, monkeypatch)
    # The real table's columns status reads; stderr_out is a MEDIUMBLOB, which MySQLdb returns as bytes.
    for column in ("name TEXT", "exit_status INTEGER DEFAULT 0", "stderr_out BLOB"):
        db.sql(f"ALTER TABLE result ADD COLUMN {column}")
    db.sql("INSERT INTO workunit (id, name, error_mask) VALUES (1, 'ok', 0), (2, 'bad', 2)")
    db.sql("INSERT INTO result (workunitid, name, server_state, outcome, exit_status, stderr_out) VALUES "
           "(1, 'ok_0', 2, 0, 0, ''), (2, 'bad_0', 5, 3, 3, ?), (2, 'bad_1', 5, 5, 0, '')", (DOCKER_JOB_STDERR.encode(),))
    root = project_folder(tmp_path / "project")
    out, err = io.BytesIO(), io.StringIO()
    assert container_jobs.main(["status", "--wu", "ok", "bad"], root=root, out=out, err=err) == 0, err.getvalue()
    by_name = {j["name"]: j for j in json.loads(out.getvalue())["jobs"]}
    assert "failures" not in by_name["ok"]
    assert [(f["result"], f["exit_status"], f["message"]) for f in by_name["bad"]["failures"]] == [
        ("bad_0", 3, "process exited with code 3 (0x3, -253)")]
    assert by_name["bad"]["failures"][0]["stderr_tail"].endswith("called boinc_finish(3)")
    assert by_name["bad"]["failures"][0]["container_output"] == "giving up on purpose"


def test_results_prints_a_failed_jobs_exit_status_and_stderr_tail(monkeypatch):
    from typer.testing import CliRunner

    from boincserver.commands import cli
    from boincserver.commands import jobs as job_commands
    failure = bj.failure_report("bad_0", 3, 3, DOCKER_JOB_STDERR, lines=2)
    report = {"batch": None, "summary": {"done": 0, "pending": 0, "failed": 1},
              "jobs": [{**bj.job_report("bad", 0, 2, 0, 0, 0, 0, 0, 1), "failures": [failure]}]}
    monkeypatch.setattr(jobs, "results", lambda *args: report)
    monkeypatch.setattr(job_commands, "open_project", lambda: "project")
    result = CliRunner().invoke(cli.app, ["results", "--wu", "bad"])
    assert result.exit_code == 2
    # A Docker job: the container's own words, not the wrapper's clean-up lines after them.
    assert result.output.splitlines()[:3] == [
        f"{'bad':40} failed   too many errors, client error (exit 3)",
        "    process exited with code 3 (0x3, -253)",
        "    giving up on purpose"]
