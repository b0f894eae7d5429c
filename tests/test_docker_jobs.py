"""Docker jobs: image references, the Dockerfile of `create-work --image`, docker_wrapper's limits,
and the use cases create-work --image and submit of a Docker app against the recording engine."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from container_fakes import install_mysqldb, project_folder
from test_use_cases import make_project
from typer.testing import CliRunner

from boincserver import apps, context, docker_jobs, jobs
from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import docker, docker_wrapper
from boincserver.boinc import jobs as bj
from boincserver.commands import cli
from boincserver.container import jobs as container_jobs
from boincserver.errors import InvalidInput

F64 = "f" * 64


# -- image references: the cases of Docker's reference tests (distribution/reference) -------------
@pytest.mark.parametrize("reference", [
    "test_com", "test.com:tag", "test.com:5000", "test.com/repo:tag", "test:5000/repo", "test:5000/repo:tag",
    f"test:5000/repo@sha256:{F64}", f"test:5000/repo:tag@sha256:{F64}", "a/" * 127 + "a:tag-puts-this-over-max",
    "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
    "b.gcr.io/test.example.com/my-app:test.example.com", "xn--n3h.com/myimage:xn--n3h.com",
    "xn--7o8h.com/myimage:xn--7o8h.com@sha512:" + "f" * 128, "foo_bar.com:8080", "foo/foo_bar.com:8080",
    "192.168.1.1", "192.168.1.1:tag", "192.168.1.1:5000", "192.168.1.1/repo", "192.168.1.1:5000/repo",
    "192.168.1.1:5000/repo:5050", "[2001:db8::1]/repo", "[2001:db8:1:2:3:4:5:6]/repo:tag",
    "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo:tag", "[2001:db8::]:5000/repo", "[::1]:5000/repo",
    "lowercase:Uppercase", "a__b", "a--b", "a.b-c_d", "localhost:5000/x", "debian:bookworm-20250811-slim",
    "python:3.12-alpine",
])
def test_valid_image_references(reference):
    assert docker.check_image_reference(reference) == reference


@pytest.mark.parametrize("reference, message", [
    ("", "no image given"),
    (":justtag", "not a Docker image reference"),
    (f"@sha256:{F64}", "not a Docker image reference"),
    (f"validname@invaliddigest:{F64}", "digest algorithm 'invaliddigest'"),
    ("repo@sha256:" + "f" * 63, "64 lowercase hex digits"),
    ("a/" * 128 + "a:tag", "is 257 characters long"),
    ("aa/asdf$$^/aa", "not a Docker image reference"),
    ("Uppercase:tag", "lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "lowercase"),
    ("[2001:db8::1]", "not a Docker image reference"),
    ("[2001:db8::1]:5000", "not a Docker image reference"),
    ("[2001:db8::1]:tag", "not a Docker image reference"),
    ("[fe80::1%eth0]:5000/repo", "not a Docker image reference"),
    ("[2001:db8:3:4::192.0.2.33]:5000/repo", "not a Docker image reference"),
    ("a___b", "not a Docker image reference"),
    ("a._b", "not a Docker image reference"),
    ("a-", "not a Docker image reference"),
    ("_a", "not a Docker image reference"),
    ("python :3", "white space"),
    (F64, "reads as an image id"),
])
def test_invalid_image_references(reference, message):
    with pytest.raises(docker.DockerJobError, match=message) as info:
        docker.check_image_reference(reference)
    assert info.value.advice


def test_an_uppercase_name_gets_its_lowercase_spelling_as_the_fix_and_the_tag_is_kept():
    with pytest.raises(docker.DockerJobError) as info:
        docker.check_image_reference("Python:3.12-Alpine")
    assert info.value.advice == "write 'python:3.12-Alpine'"


# -- the Dockerfile -------------------------------------------------------------------------------
def test_the_dockerfile_runs_the_command_as_docker_run_reads_it():
    text = docker.dockerfile("python:alpine", ["python", "-c", "print('Hello \"BOINC\"') # $HOME"])
    assert text == ('FROM python:alpine\nWORKDIR /app\n'
                    'CMD ["python", "-c", "print(\'Hello \\"BOINC\\"\') # $HOME"]\n')
    # JSON exec form: the words come back unchanged, no shell, no ENTRYPOINT of ours.
    cmd = text.splitlines()[2]
    assert json.loads(cmd[len("CMD "):]) == ["python", "-c", "print('Hello \"BOINC\"') # $HOME"]
    assert "ENTRYPOINT" not in text


def test_the_dockerfile_starts_where_docker_wrapper_mounts_the_job():
    docker_wrapper.check_workdir(docker.dockerfile("debian", ["true"]))  # WORKDIR /app after the FROM


def test_without_a_command_the_image_runs_its_own():
    assert docker.dockerfile("debian:bookworm-slim", []) == "FROM debian:bookworm-slim\nWORKDIR /app\n"


def test_a_bad_image_or_an_empty_program_makes_no_dockerfile():
    with pytest.raises(docker.DockerJobError, match="lowercase"):
        docker.dockerfile("Debian", ["true"])
    with pytest.raises(docker.DockerJobError, match="empty word"):
        docker.dockerfile("debian", ["", "x"])


# -- job names and arguments under docker_wrapper ----------------------------------------------------
PROJDIR = "127.0.0.1_8080_demo"


@pytest.mark.parametrize("name", ["run_1", "Job-7", "a.b", "a__b", "a--b", "x" * 10])
def test_job_names_docker_can_name_images_after(name):
    assert docker.check_job_name(name, PROJDIR) == name
    assert docker.image_name(PROJDIR, name) == f"boinc__{PROJDIR}__{name.lower()}"


@pytest.mark.parametrize("name", ["a_", "a___b", "a._b", "a-_b", "a..b", "a."])
def test_job_names_docker_would_refuse(name):
    with pytest.raises(docker.DockerJobError, match="cannot name a Docker image") as info:
        docker.check_job_name(name, PROJDIR)
    assert "letters and digits" in info.value.advice


def test_job_names_fit_docker_wrappers_build_command():
    longest = docker.BUILD_BUFFER - 1 - len('build "." -t  -f Dockerfile ') - len(f"boinc__{PROJDIR}__")
    fits = "j" * longest
    assert len(docker.build_command(docker.image_name(PROJDIR, fits))) == docker.BUILD_BUFFER - 1
    docker.check_job_name(fits, PROJDIR)
    with pytest.raises(docker.DockerJobError, match=f"at most {docker.BUILD_BUFFER - 1 - 28} fit") as info:
        docker.check_job_name(fits + "j", PROJDIR)
    assert info.value.advice == f"use a job name of at most {longest} characters"


@pytest.mark.parametrize("args", ['say "hi"', "it's", "$HOME", "`id`", "a\\b", "a\nb", "--config x.toml",
                                  "x --dockerfile D", "--verbose", "--sporadic"])
def test_arguments_docker_wrapper_would_not_pass_unchanged(args):
    with pytest.raises(docker.DockerJobError) as info:
        docker.check_args(args)
    assert info.value.advice


def test_arguments_within_the_limit():
    assert docker.check_args(None) is None and docker.check_args("") == ""
    assert docker.check_args("-n 3 --mode=fast a.txt; (x) & y | z") == "-n 3 --mode=fast a.txt; (x) & y | z"
    words = " ".join(["abcdefghi"] * (docker.ARGS_MAX // 10))  # " abcdefghi" is 10 characters in ARGS
    docker.check_args(words)
    with pytest.raises(docker.DockerJobError, match="characters long"):
        docker.check_args(words + " x")


def test_the_longest_names_and_arguments_fit_docker_wrappers_create_command():
    projdir = "p" * 100
    name = "n" * (docker.BUILD_BUFFER - 1 - len(docker.build_command(docker.image_name(projdir, ""))))
    docker.check_job_name(name, projdir)
    args = " ".join(["x" * 9] * (docker.ARGS_MAX // 10))
    assert docker.create_command_length(projdir, name, args) <= docker.CREATE_BUFFER - 1


@pytest.mark.parametrize("name", ["../x", "/tmp/x", "a/b", "..", ".", "", "a\\b"])
def test_outputs_stay_in_the_slot(name):
    with pytest.raises(docker.DockerJobError, match="outside the job's slot folder|not valid") as info:
        docker.check_output_name(name)
    assert info.value.advice


@pytest.mark.parametrize("name", ["stderr.txt", "Dockerfile", "init_data.xml", "job.toml", "boinc_lockfile"])
def test_outputs_and_inputs_cannot_take_the_slots_own_files(name):
    with pytest.raises(docker.DockerJobError, match="keeps"):
        docker.check_output_name(name)
    with pytest.raises(docker.DockerJobError, match="keeps"):
        docker.check_input_name(name)


def test_templates_are_named_by_content_within_the_workunit_rows_63_characters():
    a, b = boinc_apps.output_template(["a.txt"]), boinc_apps.output_template(["b.txt"])
    assert docker.template_name("out", a) == docker.template_name("out", a) != docker.template_name("out", b)
    assert len(docker.template_name("out", a)) <= bj.RESULT_TEMPLATE_PATH_MAX
    line = bj.stdin_line("j", ["jf_1"], None, None, docker.template_name("in", a), docker.template_name("out", a))
    assert line == f"--wu_name j --wu_template {docker.template_name('in', a)} " \
                   f"--result_template {docker.template_name('out', a)} jf_1"
    with pytest.raises(bj.JobsError, match="templates/"):
        bj.stdin_line("j", ["jf_1"], wu_template="../config.xml")
    with pytest.raises(bj.JobsError, match="63"):
        bj.stdin_line("j", ["jf_1"], result_template="templates/" + "t" * 54)


# -- the helper says which apps are Docker apps --------------------------------------------------
def test_check_app_says_a_docker_app_is_one(tmp_path, monkeypatch):
    db = install_mysqldb(tmp_path, monkeypatch)
    db.sql("INSERT INTO platform (id, name) VALUES (1, 'x86_64-pc-linux-gnu')")
    db.sql("INSERT INTO app (id, name, user_friendly_name) VALUES (1, 'up', 'Up'), (2, 'blast', 'Blast')")
    db.sql("INSERT INTO app_version (appid, version_num, platformid, plan_class) VALUES "
           "(1, 100, 1, ''), (2, 100, 1, 'docker')")
    root = project_folder(tmp_path / "project")
    for app in ("up", "blast"):
        (root / "templates" / f"{app}_in").write_text(boinc_apps.input_template(["in"]))

    def answer(*argv):
        out, err = io.BytesIO(), io.StringIO()
        assert container_jobs.main(["check-app", *argv], root=root, out=out, err=err) == 0, err.getvalue()
        return json.loads(out.getvalue())
    assert answer("blast", "1") == {"app": "blast", "inputs": 1, "docker": True}
    assert answer("up", "1") == {"app": "up", "inputs": 1}
    (root / "templates" / "blast_in").unlink()  # jobs that bring their own templates need none
    assert answer("blast", "") == {"app": "blast", "inputs": None, "docker": True}


# -- the use cases against the recording engine -----------------------------------------------------
@pytest.fixture
def demo(tmp_path) -> context.Project:
    p = make_project(tmp_path)
    p.engine.running |= {"mysql", "apache"}
    return p


@pytest.fixture
def ensured(monkeypatch) -> list:
    """D1's first-use install of the generic Docker app, recorded (its own tests are D1's)."""
    calls = []

    def ensure(p, name, **kwargs):
        calls.append((p, name))
    monkeypatch.setattr(apps, "ensure_docker_app", ensure)
    return calls


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def staged(data: bytes) -> str:
    return bj.staged_name(hashlib.md5(data).hexdigest())


def test_create_work_image_sends_the_dockerfile_first_and_the_jobs_own_templates(demo, tmp_path, ensured):
    (tmp_path / "x.txt").write_text("some text\n")
    demo.engine.on("exec", "boincserver-jobs submit", out={"batch": 0, "created": 1, "first": "shout"})
    command = ["sh", "-c", "tr a-z A-Z < x.txt > out.txt"]

    result = docker_jobs.create_work(demo, "debian:bookworm-20250811-slim", command, [tmp_path / "x.txt"],
                                     ["out.txt"], "shout", {"priority": 3, "delay_bound": 3600})

    assert ensured == [(demo, "docker_run")] and result.first == "shout"
    call = demo.engine.find("exec", "boincserver-jobs submit")
    assert call.command[4:6] == ["docker_run", ""]  # no input count: the job brings its templates
    assert call.command[7:] == ["docker_run", "-", "--delay_bound", "3600"]
    sent = members(call.args["stdin"])
    dockerfile = (b'FROM debian:bookworm-20250811-slim\nWORKDIR /app\n'
                  b'CMD ["sh", "-c", "tr a-z A-Z < x.txt > out.txt"]\n')
    assert sent[f"download/{bj.dir_hier_path(staged(dockerfile))}"] == dockerfile
    assert sent[f"download/{bj.dir_hier_path(staged(b'some text' + bytes([10])))}"] == b"some text\n"
    in_template = boinc_apps.input_template(["Dockerfile", "x.txt"])
    out_template = boinc_apps.output_template(["out.txt"])
    wu_template, result_template = docker.template_name("in", in_template), docker.template_name("out", out_template)
    assert sent[wu_template] == in_template.encode() and sent[result_template] == out_template.encode()
    assert in_template.count("<copy_file/>") == 2 and out_template.count("<copy_file/>") == 1
    assert sent[f"{call.command[6]}/jobs.txt"].decode().splitlines() == [
        f"--wu_name shout --priority 3 --wu_template {wu_template} --result_template {result_template} "
        f"{staged(dockerfile)} {staged(b'some text' + bytes([10]))}"]


def test_create_work_image_names_a_job_when_not_told(demo, ensured):
    demo.engine.on("exec", "boincserver-jobs submit", out={"batch": 0, "created": 1})
    result = docker_jobs.create_work(demo, "python:alpine", ["python", "-c", "print('Hello BOINC')"])
    assert result.first.startswith("docker_run_") and result.first.endswith("_1")
    docker.check_job_name(result.first, jobs.project_dir_on_clients(demo))
    sent = members(demo.engine.find("exec", "boincserver-jobs submit").args["stdin"])
    assert sent[docker.template_name("out", boinc_apps.output_template([]))] == \
        boinc_apps.output_template([]).encode()  # no --output: the job returns no file


@pytest.mark.parametrize("image, inputs, outputs, wu_name, message", [
    ("Debian:bookworm", [], [], None, "lowercase"),
    ("debian::x", [], [], None, "not a Docker image reference"),
    ("debian", [], ["../out.txt"], None, "outside the job's slot folder"),
    ("debian", [], ["/tmp/out.txt"], None, "outside the job's slot folder"),
    ("debian", [], ["sub/out.txt"], None, "outside the job's slot folder"),
    ("debian", [], ["a", "a"], None, "given twice"),
    ("debian", ["folder"], [], None, "is not a file"),
    ("debian", ["missing.txt"], [], None, "does not exist"),
    ("debian", ["x.txt", "other/x.txt"], [], None, "two inputs are named 'x.txt'"),
    ("debian", ["x.txt"], ["x.txt"], None, "also an input's name"),
    ("debian", [], [], "a._b", "cannot name a Docker image"),
    ("debian", [], [], "j" * 200, "too long for docker_wrapper"),
])
def test_create_work_image_refuses_bad_input_and_changes_nothing(demo, tmp_path, ensured, image, inputs, outputs,
                                                                 wu_name, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / "other" / "x.txt").write_text("y")
    with pytest.raises(InvalidInput, match=message) as info:
        docker_jobs.create_work(demo, image, ["true"], [tmp_path / f for f in inputs], outputs, wu_name)
    assert info.value.advice
    assert demo.engine.calls == [] and ensured == []


def test_create_work_image_on_a_project_without_the_docker_class_sends_nothing(demo, monkeypatch):
    def no_docker_class(p, name, **kwargs):
        raise InvalidInput("the project's plan_class_spec.xml has no docker class", advice="...")
    monkeypatch.setattr(apps, "ensure_docker_app", no_docker_class)
    with pytest.raises(InvalidInput, match="no docker class"):
        docker_jobs.create_work(demo, "debian", ["true"])
    assert demo.engine.calls == []


def write_jobs(tmp_path: Path, text: str) -> Path:
    (tmp_path / "in.txt").write_text("in\n")
    path = tmp_path / "jobs.txt"
    path.write_text(text)
    return path


def test_submit_to_a_docker_app_refuses_arguments_docker_wrapper_would_mangle(demo, tmp_path):
    path = write_jobs(tmp_path, 'in.txt\n--command-line "-n $HOME" in.txt\n--wu-name a._b in.txt\n')
    demo.engine.on("exec", "boincserver-jobs check-app blast", out={"app": "blast", "inputs": 1, "docker": True})
    with pytest.raises(InvalidInput, match="Docker app") as info:
        jobs.submit(demo, "blast", path)
    text = str(info.value)
    assert "cannot run 2 job(s)" in text and "line 2: " in text and "'$'" in text and "line 3: " in text
    assert [c.command for c in demo.engine.calls] == [["boincserver-jobs", "check-app", "blast", "1"]]


def test_submit_to_a_native_app_takes_the_same_arguments(demo, tmp_path):
    path = write_jobs(tmp_path, 'in.txt\n--command-line "-n $HOME" in.txt\n')
    demo.engine.on("exec", "boincserver-jobs check-app up", out={"app": "up", "inputs": 1})
    demo.engine.on("exec", "boincserver-jobs submit", out={"batch": 4, "created": 2, "first": "x"})
    assert jobs.submit(demo, "up", path).created == 2
    assert len(demo.engine.named("exec")) == 2


def test_submit_asks_nothing_more_when_every_job_suits_docker_wrapper(demo, tmp_path):
    path = write_jobs(tmp_path, "--wu-name first in.txt\n--command-line '-n 3' in.txt\n")
    demo.engine.on("exec", "boincserver-jobs submit", out={"batch": 4, "created": 2, "first": "first"})
    jobs.submit(demo, "blast", path)
    assert len(demo.engine.named("exec")) == 1  # the transfer itself, no question before it


def test_create_work_of_a_docker_app_checks_its_arguments(demo, tmp_path):
    (tmp_path / "in.txt").write_text("in\n")
    demo.engine.on("exec", "boincserver-jobs check-app blast", out={"app": "blast", "inputs": 1, "docker": True})
    with pytest.raises(InvalidInput, match="a backtick"):
        jobs.create_work(demo, "blast", [tmp_path / "in.txt"], command_line="`id`")
    assert len(demo.engine.calls) == 1


# -- the command line -----------------------------------------------------------------------------
runner = CliRunner()


def test_the_cli_hands_the_words_after_the_separator_to_the_image_job(monkeypatch, tmp_path):
    seen = {}

    def record(p, image, command, inputs, outputs, wu_name, options, sign_key):
        seen.update(image=image, command=command, inputs=inputs, outputs=outputs, options=options,
                    sign_key=sign_key)
        raise InvalidInput("recorded")
    monkeypatch.setattr(docker_jobs, "create_work", record)
    monkeypatch.setattr("boincserver.commands.jobs.open_project", lambda: "project")
    result = runner.invoke(cli.app, ["create-work", "--image", "python:alpine", "--input", "a.txt", "--output",
                                     "b.txt", "--priority", "2", "--keys-dir", "keys", "--", "python", "-c", "print('x')",
                                     "/tmp/"])
    assert isinstance(result.exception, InvalidInput), result.output
    assert seen == {"image": "python:alpine", "command": ["python", "-c", "print('x')", "/tmp/"],
                    "inputs": [Path("a.txt")], "outputs": ["b.txt"], "options": {"priority": 2},
                    "sign_key": Path("keys/code_sign_private")}


@pytest.mark.parametrize("argv, message", [
    (["create-work", "--image", "debian", "--command-line", "x", "--", "true"], "--command-line is for apps"),
    (["create-work", "up", "in.txt", "--output", "o"], "--input, --output and --keys-dir go with --image"),
    (["create-work"], "needs an app"),
])
def test_the_cli_refuses_mixed_forms(monkeypatch, argv, message):
    monkeypatch.setattr("boincserver.commands.jobs.open_project", lambda: "project")
    result = runner.invoke(cli.app, argv)
    assert isinstance(result.exception, InvalidInput) and message in str(result.exception)
    assert result.exception.advice.startswith("write: create-work")


def test_create_work_image_signs_the_generic_app_with_an_offline_key(demo, tmp_path, monkeypatch):
    """The offline key reaches the install of the generic app, the one step that signs."""
    seen = []
    monkeypatch.setattr(apps, "ensure_docker_app", lambda project, name, **kw: seen.append(kw.get("sign_key")))
    demo.engine.on("exec", "boincserver-jobs submit", out={"batch": 0, "created": 1, "first": "signed"})
    docker_jobs.create_work(demo, "debian:bookworm-20250811-slim", ["true"], wu_name="signed",
                            sign_key=tmp_path / "keys" / "code_sign_private")
    assert seen == [tmp_path / "keys" / "code_sign_private"]
