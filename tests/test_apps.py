"""Apps as files (boincserver.boinc.apps) and the checks `app add` makes before Docker; Docker
apps: docker_wrapper's inputs (boinc.docker_wrapper), the use case against the recording engine,
the command's exit code, and the install step of boincserver-jobs over a fake project."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from container_fakes import on_path, install_mysqldb, project_folder
from fakes import RecordingEngine

from boincserver import apps, context, pins, project
from boincserver.boinc import apps as ba
from boincserver.boinc import docker_wrapper as dw
from boincserver.boinc import plan_classes
from boincserver.container import apps as container_apps
from boincserver.container import jobs as container_jobs
from boincserver.errors import InvalidInput, ProjectError
from boincserver.settings import Settings, load


class NoProject:
    """A project that fails the test if anything touches it."""

    def __getattr__(self, name):
        raise AssertionError(f"the project was used ({name}) although the input was bad")


@pytest.mark.parametrize("name", ["uppercase", "a", "app_2"])
def test_good_app_names(name):
    assert ba.check_app_name(name) == name


@pytest.mark.parametrize("name", ["", "Upper", "2app", "a-b", "a b", "x" * 64, "a'b"])
def test_bad_app_names(name):
    with pytest.raises(ba.AppError, match="app name"):
        ba.check_app_name(name)


def test_version_numbers_follow_update_versions():
    assert ba.version_dir(100) == "1.00"
    assert ba.version_dir(712) == "7.12"
    assert ba.parse_version_dir("1.00") == 100
    assert ba.parse_version_dir("7.12") == 712
    assert ba.parse_version_dir("3") == 3
    assert ba.parse_version_dir("x.1") is None
    assert ba.next_version([]) == 100
    assert ba.next_version(["1.00", "1.01", "notes"]) == 102


def test_version_xml_native():
    files, entries = ba.version_layout(ba.AppSpec(name="up", exe="/x/uc2"), 100)
    assert files == [("up_1.00_x86_64-pc-linux-gnu_main", "/x/uc2", True)]
    root = ET.fromstring(ba.version_xml(entries, api="8.3.0"))
    (f,) = root.findall("file")
    assert f.findtext("physical_name") == "up_1.00_x86_64-pc-linux-gnu_main"
    assert f.find("main_program") is not None
    assert root.findtext("api_version") == "8.3.0"
    assert root.find("is_wrapper") is None


def test_version_xml_wrapper_carries_worker_job_and_libraries():
    spec = ba.AppSpec(name="wc", exe="worker.sh", wrapper=True, libraries={"libzip.so.4": "image:/lib/z"})
    files, entries = ba.version_layout(spec, 101)
    names = {f[0]: f[1] for f in files}
    assert names == {"wc_1.01_x86_64-pc-linux-gnu_wrapper": "wrapper:", "wc_1.01_x86_64-pc-linux-gnu_worker": "worker.sh",
                     "wc_1.01_x86_64-pc-linux-gnu_job.xml": "job.xml:",
                     "wc_1.01_x86_64-pc-linux-gnu_libzip.so.4": "image:/lib/z"}
    root = ET.fromstring(ba.version_xml(entries, is_wrapper=True))
    by_logical = {f.findtext("logical_name"): f for f in root.findall("file")}
    assert by_logical[None].find("main_program") is not None
    assert set(by_logical) == {None, "worker", "job.xml", "libzip.so.4"}
    assert by_logical["libzip.so.4"].find("copy_file") is not None
    assert root.find("is_wrapper") is not None


def test_job_xml():
    root = ET.fromstring(ba.job_xml("worker", "in", "out", "-n 3 <x>"))
    task = root.find("task")
    assert task.findtext("application") == "worker"
    assert task.findtext("stdin_filename") == "in"
    assert task.findtext("stdout_filename") == "out"
    assert task.findtext("command_line") == "-n 3 <x>"


def test_templates_number_the_files_and_carry_no_job_options():
    tin = ba.input_template(["a", "b"])
    root = ET.fromstring(tin)
    assert [f.findtext("number") for f in root.findall("file_info")] == ["0", "1"]
    refs = root.find("workunit").findall("file_ref")
    assert [(r.findtext("file_number"), r.findtext("open_name")) for r in refs] == [("0", "a"), ("1", "b")]
    # Values in a template override create_work's options: none here.
    assert "max_error_results" not in tin and "target_nresults" not in tin
    assert ba.template_input_count(tin) == 2
    tout = ba.output_template(["out"])
    assert "<OUTFILE_0/>" in tout and "<UPLOAD_URL/>" in tout and "<open_name>out</open_name>" in tout


def test_project_xml_gets_the_app_once():
    base = "<boinc>\n    <platform><name>x</name></platform>\n</boinc>\n"
    once = ba.project_xml_with_app(base, "up", "Upper case")
    assert ba.project_xml_apps(once) == ["up"]
    assert ba.project_xml_with_app(once, "up", "Upper case") == once
    ET.fromstring(once)
    with pytest.raises(ba.AppError):
        ba.project_xml_with_app("<nope/>", "up", "x")


CONFIG = """<boinc>
    <config>
        <host>boincserver</host>
    </config>
    <daemons>
        <daemon>
            <cmd>feeder -d 3 </cmd>
        </daemon>
    </daemons>
</boinc>
"""


def test_daemons_per_app_with_their_own_log_and_pid_files():
    d1 = ba.app_daemons("up")
    d2 = ba.app_daemons("wc")
    assert [d.cmd for d in d1] == ["sample_trivial_validator --app up", "sample_assimilator --app up"]
    files = {d.output for d in d1 + d2} | {d.pid_file for d in d1 + d2}
    assert len(files) == 8
    new = ba.config_xml_with_daemons(CONFIG, d1)
    assert ba.config_daemon_commands(new) == ["feeder -d 3", *[d.cmd for d in d1]]
    assert ba.config_xml_with_daemons(new, d1) == new
    ET.fromstring(new)
    assert ba.app_daemons("up", validator="", assimilator="sample_assimilator")[0].cmd == "sample_assimilator --app up"


def test_config_without_daemons_section():
    """bin/start reads daemons inside <daemons> only: the section is made, not bare <daemon>s."""
    new = ba.config_xml_with_daemons("<boinc>\n</boinc>\n", ba.app_daemons("up"))
    assert len(ET.fromstring(new).find("daemons")) == 2
    assert ET.fromstring(new).find("daemon") is None
    with pytest.raises(ba.AppError, match="no </boinc>"):
        ba.config_xml_with_daemons("<config/>", ba.app_daemons("up"))


def test_daemons_travel_as_json_and_are_missing_once():
    daemons = ba.app_daemons("up", validator="sample_bitwise_validator -x 'a&b'")
    back = [ba.daemon_from_json({"cmd": d.cmd, "xml": d.xml()}) for d in daemons]
    assert back == daemons
    assert ba.missing_daemons(CONFIG, daemons) == daemons
    added = ba.config_xml_with_daemons(CONFIG, daemons)
    assert ba.missing_daemons(added, daemons) == []
    # An escaped <cmd> in config.xml counts as the same command.
    assert "a&amp;b" in added


def test_each_app_has_its_own_daemon_commands():
    commands = ["feeder -d 3", "sample_assimilator --app up", "sample_assimilator --app upper",
                "v --app up -d 2", "v --app=up"]
    assert ba.app_daemon_commands(commands, "up") == ["sample_assimilator --app up", "v --app up -d 2"]
    assert ba.app_daemon_commands(commands, "upper") == ["sample_assimilator --app upper"]


@pytest.mark.parametrize("output, refused", [
    ("Found app version ...\nCommitting\n", False),
    ("Error: no files found\n", True),
    ("up_main is not present in download/\n", True),
    ("skipping version: signature is missing\n", True),
])
def test_update_versions_output(output, refused):
    assert ba.update_versions_refused(output) is refused


def test_apps_from_rows_keep_apps_without_versions():
    rows = [("up", "Upper", 100, "x86_64-pc-linux-gnu", "", 1), ("up", "Upper", 101, "x86_64-pc-linux-gnu", "mt", 0),
            ("wc", "Words", None, None, None, None)]
    assert ba.apps_from_rows(rows) == [
        {"name": "up", "friendly_name": "Upper", "versions": [
            {"version": 100, "platform": "x86_64-pc-linux-gnu", "plan_class": "", "deprecated": True},
            {"version": 101, "platform": "x86_64-pc-linux-gnu", "plan_class": "mt", "deprecated": False}]},
        {"name": "wc", "friendly_name": "Words", "versions": []}]


def test_api_version_is_found_like_update_versions_does():
    assert ba.api_version(b"\x00junk API_VERSION_8.3.0\x00more") == "8.3.0"
    assert ba.api_version(b"no version here") is None


def test_examples_are_valid_specs():
    assert {"uppercase", "wordcount"} <= set(apps.example_names())
    up = apps.load_example("uppercase").check()
    assert up.exe.startswith("image:") and up.inputs == ["in"] and up.outputs == ["out"] and not up.wrapper
    wc = apps.load_example("wordcount").check()
    assert wc.wrapper and wc.exe.endswith("worker.sh")
    with pytest.raises(InvalidInput, match="no example app"):
        apps.load_example("nope")


@pytest.mark.parametrize("spec, message", [
    (ba.AppSpec(name="Bad", exe="x"), "app name"),
    (ba.AppSpec(name="ok", exe=""), "no executable"),
    (ba.AppSpec(name="ok", exe="x", friendly_name="it's"), "friendly name"),
    (ba.AppSpec(name="ok", exe="x", inputs=["a", "a"]), "distinct"),
    (ba.AppSpec(name="ok", exe="x", outputs=["../x"]), "reaches outside the job's slot"),
    (ba.AppSpec(name="ok", exe="x", inputs=["a b"]), "file name"),
    (ba.AppSpec(name="ok", exe="x", platform="bad platform"), "platform"),
])
def test_bad_specs_are_refused_before_docker(spec, message):
    with pytest.raises(InvalidInput, match=message):
        apps.add(NoProject(), spec)


def test_a_missing_executable_is_refused_before_docker(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist; nothing was installed"):
        apps.add(NoProject(), ba.AppSpec(name="ok", exe=str(tmp_path / "missing")))


def test_helper_results_become_one_line_errors():
    from boincserver.engine import Ran
    from boincserver.inproject import helper_answer
    cmd = ["docker", "compose", "exec", "-T", "apache", "boincserver-jobs", "apps"]
    with pytest.raises(InvalidInput, match="unknown app 'x'"):
        helper_answer(Ran(cmd, 3, b"", "boincserver-jobs: unknown app 'x' (apps: up); nothing was created\n"))
    with pytest.raises(ProjectError, match="predates"):
        helper_answer(Ran(cmd, 127, b"", "sh: 1: exec: boincserver-jobs: not found"))
    with pytest.raises(ProjectError, match="exit 1"):
        helper_answer(Ran(cmd, 1, b"", "boom"))
    assert helper_answer(Ran(cmd, 0, b'{"a": 1}', "")) == {"a": 1}


def test_offline_key_signs_like_crypt_prog(tmp_path):
    """--keys-dir: signed on this machine, the signature crypt_prog made for the same file."""
    import hashlib
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures" / "keys"
    md5 = hashlib.md5((fixtures / "message.txt").read_bytes()).hexdigest()
    sigs, how = apps.sign(NoProject(), [md5], fixtures / "test_only_private_key")
    assert sigs[md5].split() == (fixtures / "message.txt.sig").read_text().split()
    assert "key file" in how
    with pytest.raises(InvalidInput, match="cannot use"):
        apps.sign(NoProject(), [md5], tmp_path / "missing")


def test_a_stopped_project_is_named_not_a_docker_failure():
    from types import SimpleNamespace

    from boincserver.errors import ServiceNotRunning

    class Engine:
        def exec(self, *args, **kwargs):
            raise ServiceNotRunning(["docker", "compose", "exec"], 1, 'service "apache" is not running')

    project = SimpleNamespace(engine=Engine(), settings=SimpleNamespace(boinc_user="b", project_root="/p", project="demo"))
    with pytest.raises(ProjectError, match="project 'demo' is not running") as info:
        apps.list_apps(project)
    assert info.value.advice == "start it with `boincserver up`"


# -- Docker apps: docker_wrapper's job.toml and Dockerfile ------------------------------------


def test_job_toml_keys_and_types_as_docker_wrapper_reads_them():
    assert dw.check_job_config({}) == "/app"
    assert dw.check_job_config({"workdir": "/job/", "image_name": "mine", "use_gpu": False, "verbose": 1,
                                "mount": ["./data:/data:ro"], "portmap": ["8080:80"], "build_args": "--pull=false",
                                "create_args": "--memory 1g", "web_graphics_guest_port": 80}) == "/job"
    with pytest.raises(ba.AppError, match="key 'copy_to_container'") as info:
        dw.check_job_config({"copy_to_container": ["x"]})
    assert "workdir" in info.value.advice and "create_args" in info.value.advice
    for key, value in (("use_gpu", "yes"), ("verbose", True), ("mount", "./a:/a"), ("mount", [1]), ("workdir", 3)):
        with pytest.raises(ba.AppError, match=f"{key} = "):
            dw.check_job_config({key: value})


@pytest.mark.parametrize("config", [
    {"project_dir_mount": "/project"},
    {"mount": ["/etc:/host-etc"]},
    {"mount": ["../../projects/x:/p"]},
    {"mount": ["./a/../../b:/b"]},
    {"mount": ["data:/data"]},  # a named volume of the volunteer's engine
    {"mount": ["./a:/a; rm -rf /"]},
    {"workdir": "app"},
    {"workdir": "/app/../etc"},
    {"workdir": '/a"b'},
])
def test_job_toml_that_reaches_outside_the_slot_is_refused(config):
    with pytest.raises(ba.AppError) as info:
        dw.check_job_config(config)
    assert info.value.advice


@pytest.mark.parametrize("dockerfile, workdir", [
    ("FROM debian\nWORKDIR /app\nCMD ./main.sh\n", "/app"),
    ("from debian\nworkdir /app/\n", "/app"),
    ("FROM a AS build\nWORKDIR /src\nFROM b\n", None),  # the last stage sets none
    ("FROM a\nWORKDIR /x\nFROM b\nWORKDIR /opt\nWORKDIR sub\n", "/opt/sub"),
    ("# comment\nFROM a\nRUN echo \\\n  WORKDIR /no\nWORKDIR /app\n", "/app"),
    ("FROM a\nWORKDIR /app\nRUN <<EOF\nFROM evil\nWORKDIR /tmp\nEOF\n", "/app"),
])
def test_the_final_stages_workdir(dockerfile, workdir):
    assert dw.dockerfile_workdir(dockerfile) == workdir


def test_the_dockerfile_must_start_the_container_in_the_slot():
    dw.check_workdir("FROM a\nWORKDIR /app\n")
    dw.check_workdir("FROM a\nWORKDIR /work\n", "/work")
    with pytest.raises(ba.AppError, match="sets no WORKDIR") as info:
        dw.check_workdir("FROM a\nCMD x\n")
    assert info.value.advice.startswith("put `WORKDIR /app` after the last FROM")
    with pytest.raises(ba.AppError, match="sets WORKDIR /src"):
        dw.check_workdir("FROM a\nWORKDIR /src\n")
    with pytest.raises(ba.AppError, match="a variable"):
        dw.check_workdir("FROM a\nWORKDIR $HOME\n")
    with pytest.raises(ba.AppError, match="no FROM"):
        dw.check_workdir("WORKDIR /app\n")


@pytest.mark.parametrize("name, refused", [
    ("out.txt", None), ("..", "outside"), ("a/b", "outside"), ("..x", "outside"), ("a\\b", "outside"),
    ("a b", "not valid"),
])
def test_output_names(name, refused):
    if refused is None:
        assert ba.check_output_name(name) == name
    else:
        with pytest.raises(ba.AppError, match=refused):
            ba.check_output_name(name)


@pytest.mark.parametrize("name", ["init_data.xml", "stderr.txt", "boinc_lockfile", "main.sig"])
def test_version_file_names_the_client_or_update_versions_use(name):
    with pytest.raises(ba.AppError, match="rename"):
        ba.check_version_file_name(name)
    assert ba.check_version_file_name("main.sh") == "main.sh"


def test_a_docker_version_is_docker_wrapper_and_its_files_all_copied():
    spec = ba.AppSpec(name="dk", platform="x86_64-pc-linux-gnu__docker", docker=True,
                      extra_files={"Dockerfile": "/d/Dockerfile", "main.sh": "/d/main.sh"}, executables={"main.sh"})
    files, entries = ba.version_layout(spec.check(), 100)
    p = "dk_1.00_x86_64-pc-linux-gnu__docker_"
    assert files == [(p + "docker_wrapper", "docker_wrapper:", True), (p + "Dockerfile", "/d/Dockerfile", False),
                     (p + "main.sh", "/d/main.sh", True)]
    root = ET.fromstring(ba.version_xml(entries, is_wrapper=True))
    assert all(f.find("copy_file") is not None for f in root.findall("file"))
    assert [f.findtext("logical_name") for f in root.findall("file") if f.find("main_program") is not None] == [None]
    assert [f.findtext("logical_name") for f in root.findall("file")] == [None, "Dockerfile", "main.sh"]


@pytest.mark.parametrize("change, message", [
    ({"platform": "x86_64-pc-linux-gnu"}, "PLATFORM__docker"),
    ({"exe": "x"}, "with an executable"),
    ({"extra_files": {"Dockerfile": "d", "in": "x"}}, "'in' is both a file of the app"),
    ({"extra_files": {"main.sh": "m"}}, "needs a Dockerfile"),
])
def test_a_docker_spec_that_cannot_work_is_refused(change, message):
    spec = ba.AppSpec(name="dk", platform="x86_64-pc-linux-gnu__docker", docker=True,
                      extra_files={"Dockerfile": "d"})
    for k, v in change.items():
        setattr(spec, k, v)
    with pytest.raises(ba.AppError, match=message):
        spec.check()


# -- Docker apps: the folder, read on this machine before the project is touched ---------------
DOCKERFILE = "FROM debian:bookworm-20250811-slim\nWORKDIR /app\nCOPY main.sh /opt/main.sh\nCMD [\"sh\", \"/opt/main.sh\"]\n"


@pytest.fixture
def app_dir(tmp_path):
    folder = tmp_path / "dapp"
    folder.mkdir()
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / "main.sh").write_text("tr a-z A-Z < in > out\n")
    (folder / "main.sh").chmod(0o755)
    (folder / "notes.txt").write_text("data\n")
    return folder


def test_docker_spec_takes_every_top_level_file(app_dir):
    spec = apps.docker_spec("dapp", app_dir).check()
    assert spec.platform == "x86_64-pc-linux-gnu__docker" and spec.docker and not spec.exe
    assert spec.extra_files == {n: str(app_dir / n) for n in ("Dockerfile", "main.sh", "notes.txt")}
    assert spec.executables == {"main.sh"}
    assert (spec.inputs, spec.outputs) == (["in"], ["out"])
    assert apps.docker_spec("dapp", app_dir, "x86_64-pc-linux-gnu__docker").platform == spec.platform
    generic = apps.docker_spec("docker_run", None).check()
    assert (generic.extra_files, generic.inputs) == ({}, ["Dockerfile"])


def _write(name: str, text: str):
    def write(folder):
        (folder / name).write_text(text)
    return write


# Each way a Docker app's folder can be wrong (named by the words of its refusal): what makes it so.
BAD_FOLDERS = {
    "no Dockerfile": lambda folder: (folder / "Dockerfile").unlink(),
    "a folder": lambda folder: (folder / "sub").mkdir(),
    "a symbolic link": lambda folder: (folder / "link").symlink_to(folder / "notes.txt"),
    "file name": _write("my notes.txt", "x"),
    "the BOINC client uses": _write("init_data.xml", "x"),
    "not valid TOML": _write("job.toml", "workdir = \n"),
    "does not read": _write("job.toml", 'slot_dir_mount = "/x"\n'),
    "project folder": _write("job.toml", 'project_dir_mount = "/project"\n'),
    "sets no WORKDIR": _write("Dockerfile", "FROM debian\nCMD x\n"),
    "mounts the job's folder at /work": _write("job.toml", 'workdir = "/work"\n'),
    "is not a folder": lambda folder: folder / "main.sh",
}


def bad_folder(app_dir, case: str):
    return BAD_FOLDERS[case](app_dir) or app_dir


@pytest.mark.parametrize("case", BAD_FOLDERS)
def test_a_bad_docker_folder_is_refused_with_the_fix(app_dir, case):
    with pytest.raises(InvalidInput, match=case) as info:
        apps.docker_spec("dapp", bad_folder(app_dir, case))
    assert info.value.advice


@pytest.mark.parametrize("platform", ["aarch64-unknown-linux-gnu", "x86_64-pc-linux-gnu__mt", "windows_x86_64"])
def test_docker_apps_are_for_x86_64_linux_only(app_dir, platform):
    with pytest.raises(InvalidInput, match="Docker apps are built here for x86_64-pc-linux-gnu only") as info:
        apps.docker_spec("dapp", app_dir, platform)
    assert "leave out --platform" in info.value.advice


# -- Docker apps: the use case against the recording engine -------------------------------------


DOCKER_WRAPPER = apps.DOCKER_WRAPPER_IN_IMAGE["x86_64-pc-linux-gnu"]
WRAPPER_BYTES = b"\x7fELF docker_wrapper API_VERSION_8.3.0\0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path) -> context.Project:
    """A running project (recording engine) whose makeproject image has docker_wrapper."""
    folder = tmp_path / "demo"
    project.init(folder, Settings(project="demo", http_port=free_port()))
    engine = RecordingEngine()
    engine.base_images_current()
    engine.running |= {"mysql", "apache"}
    engine.image_files[(pins.base_image("makeproject"), DOCKER_WRAPPER)] = WRAPPER_BYTES
    engine.on("run", "sign-md5", answer=lambda call: (0, json.dumps({m: f"sig {m}" for m in call.command[2:]}).encode(), ""))
    engine.on("exec", "app-install", out={"daemons_added": ["sample_trivial_validator --app dapp"],
                                          "plan_classes_added": ["mt", "docker"]})
    return context.Project(folder.absolute(), load(folder), engine)


def app_state(p: context.Project, **state) -> None:
    p.engine.on("exec", "app-state", out={"version_dirs": [], "project_xml": "<boinc>\n</boinc>\n", "daemons": [],
                                          "registered": False, "plan_classes": [], "plan_class_spec": None, **state})


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: (m, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()}


def test_app_add_docker_sends_docker_wrapper_and_the_folders_files_all_copied(served, app_dir):
    p = served
    app_state(p, plan_classes=["mt"])
    result = apps.add(p, apps.docker_spec("dapp", app_dir))

    assert (result.version, result.platform, result.plan_classes_added) == ("1.00", "x86_64-pc-linux-gnu__docker",
                                                                           ["mt", "docker"])
    install = p.engine.find("exec", "app-install")
    vdir = "apps/dapp/1.00/x86_64-pc-linux-gnu__docker"
    assert install.command[-3] == "dapp" and install.command[-1] == vdir
    assert [d["cmd"] for d in json.loads(install.command[-2])] == ["sample_trivial_validator --app dapp",
                                                                  "sample_assimilator --app dapp"]
    sent = members(install.args["stdin"])
    prefix = f"{vdir}/dapp_1.00_x86_64-pc-linux-gnu__docker_"
    wrapper_info, wrapper = sent[prefix + "docker_wrapper"]
    assert wrapper == WRAPPER_BYTES and wrapper_info.mode & 0o100
    main_info, main = sent[prefix + "main.sh"]
    assert main == (app_dir / "main.sh").read_bytes() and main_info.mode & 0o100
    assert not sent[prefix + "notes.txt"][0].mode & 0o100 and sent[prefix + "Dockerfile"][1] == DOCKERFILE.encode()
    for name in ("docker_wrapper", "Dockerfile", "main.sh", "notes.txt"):  # each signed, in makeproject
        assert sent[prefix + name + ".sig"][1] == f"sig {hashlib.md5(sent[prefix + name][1]).hexdigest()}".encode()
    version = ET.fromstring(sent[f"{vdir}/version.xml"][1])
    assert len(version.findall("file")) == 4 and all(f.find("copy_file") is not None for f in version.findall("file"))
    assert version.findtext("api_version") == "8.3.0" and version.find("is_wrapper") is not None
    for template in ("templates/dapp_in", "templates/dapp_out"):
        refs = ET.fromstring(sent[template][1]).iter("file_ref")
        assert all(r.find("copy_file") is not None for r in refs)
    sign = p.engine.find("run", "sign-md5")
    assert sign.args["service"] == "makeproject" and p.engine.index(sign) < p.engine.index(install)


def test_app_add_docker_signs_offline_with_keys_dir(served, app_dir):
    p = served
    app_state(p)
    key = Path(__file__).parent / "fixtures" / "keys" / "test_only_private_key"
    result = apps.add(p, apps.docker_spec("dapp", app_dir), key)
    assert "key file" in result.signed_with
    assert not [c for c in p.engine.named("run") if "sign-md5" in c.text]
    sent = members(p.engine.find("exec", "app-install").args["stdin"])
    assert sum(name.endswith(".sig") for name in sent) == 4


def installed(p: context.Project) -> list:
    return [c for c in p.engine.commands() if "app-install" in c.text or "sign-md5" in c.text]


@pytest.mark.parametrize("state, message", [
    ({"plan_classes": ["cuda"]}, "plan class 'cuda'"),
    ({"plan_class_spec": "<plan_classes><plan_class>"}, "malformed"),
])
def test_a_plan_class_the_scheduler_could_not_serve_stops_the_install_before_anything_is_sent(served, app_dir,
                                                                                             state, message):
    p = served
    app_state(p, **state)
    with pytest.raises(InvalidInput, match=message) as info:
        apps.add(p, apps.docker_spec("dapp", app_dir))
    assert info.value.advice and installed(p) == []


def test_a_native_app_on_a_project_with_the_file_needs_its_class_there_too(served):
    p = served
    app_state(p, plan_classes=["docker"], plan_class_spec=plan_classes.spec_file(["docker"], None))
    with pytest.raises(InvalidInput, match="plan class 'cuda'"):
        apps.add(p, ba.AppSpec(name="gpu", exe=__file__, platform="x86_64-pc-linux-gnu__cuda"))
    assert installed(p) == []


def test_an_apache_image_older_than_docker_apps_is_named(served, app_dir):
    p = served
    p.engine.on("exec", "app-state", out={"version_dirs": [], "project_xml": "<boinc>\n</boinc>\n"})
    with pytest.raises(ProjectError, match="predates Docker apps"):
        apps.add(p, apps.docker_spec("dapp", app_dir))
    assert installed(p) == []


def test_ensure_docker_app_installs_docker_wrapper_alone_once(served):
    p = served
    app_state(p)
    result = apps.ensure_docker_app(p, "docker_run")
    sent = members(p.engine.find("exec", "app-install").args["stdin"])
    vdir = "apps/docker_run/1.00/x86_64-pc-linux-gnu__docker"
    assert sorted(n for n in sent if n.startswith(vdir)) == [
        f"{vdir}/docker_run_1.00_x86_64-pc-linux-gnu__docker_docker_wrapper",
        f"{vdir}/docker_run_1.00_x86_64-pc-linux-gnu__docker_docker_wrapper.sig", f"{vdir}/version.xml"]
    inputs = ET.fromstring(sent["templates/docker_run_in"][1]).find("workunit").find("file_ref")
    assert (inputs.findtext("open_name"), inputs.find("copy_file") is not None) == ("Dockerfile", True)
    assert result.version == "1.00"

    app_state(p, registered=True, plan_classes=["docker"], plan_class_spec=plan_classes.spec_file(["docker"], None))
    calls = len(p.engine.calls)
    assert apps.ensure_docker_app(p, "docker_run") is None
    assert [c.command[-2:] for c in p.engine.calls[calls:]] == [["app-state", "docker_run"]]


@pytest.mark.parametrize("spec, where", [
    (None, "has no plan_class_spec.xml"),
    ("<plan_classes><plan_class><name>mt</name></plan_class></plan_classes>", "without `docker`"),
    ("<plan_classes>", "malformed"),
])
def test_a_scheduler_without_the_docker_class_is_refused_for_docker_jobs(served, spec, where):
    p = served
    p.engine.on("exec", "plan-classes", out={"plan_classes": ["docker"], "plan_class_spec": spec})
    with pytest.raises(ProjectError, match=where) as info:
        apps.docker_plan_class(p)
    assert info.value.advice
    app_state(p, registered=True, plan_class_spec=spec)
    with pytest.raises(ProjectError, match=where):
        apps.ensure_docker_app(p, "docker_run")
    assert installed(p) == []
    p.engine.on("exec", "plan-classes", out={"plan_classes": [], "plan_class_spec": plan_classes.spec_file(["docker"], None)})
    apps.docker_plan_class(p)


# -- the command: exit 1, Error and Fix, nothing asked of Docker ----------------------------------
@pytest.mark.parametrize("case", ["no Dockerfile", "a folder", "not valid TOML", "project folder", "sets no WORKDIR"])
def test_app_add_docker_bad_folder_exits_1_and_changes_nothing(served, app_dir, case, monkeypatch, capsys):
    from boincserver.commands import apps as apps_command
    from boincserver.commands import cli
    monkeypatch.setattr(apps_command, "open_project", lambda: served)
    folder = bad_folder(app_dir, case)
    monkeypatch.setattr(sys, "argv", ["boincserver", "app", "add", "dapp", "--docker", str(folder)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith("Error: ") and "Fix: " in err and "Traceback" not in err
    assert served.engine.calls == []


@pytest.mark.parametrize("args, message", [
    (["--platform", "aarch64-unknown-linux-gnu"], "x86_64-pc-linux-gnu only"),
    (["--output", "../escape"], "reaches outside the job's slot"),
    (["--output", "sub/out"], "reaches outside the job's slot"),
    (["--input", "main.sh"], "both a file of the app"),
    (["--exe", __file__], "give one of"),
    (["--wrapper"], "give one of"),
])
def test_app_add_docker_bad_options_exit_1_and_change_nothing(served, app_dir, args, message, monkeypatch, capsys):
    from boincserver.commands import apps as apps_command
    from boincserver.commands import cli
    monkeypatch.setattr(apps_command, "open_project", lambda: served)
    monkeypatch.setattr(sys, "argv", ["boincserver", "app", "add", "dapp", "--docker", str(app_dir), *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.startswith("Error: ") and message in err
    assert served.engine.calls == []


def test_app_add_docker_prints_what_it_did(served, app_dir, monkeypatch, capsys):
    from boincserver.commands import apps as apps_command
    from boincserver.commands import cli
    monkeypatch.setattr(apps_command, "open_project", lambda: served)
    app_state(served)
    monkeypatch.setattr(sys, "argv", ["boincserver", "app", "add", "dapp", "--docker", str(app_dir)])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    out = capsys.readouterr().out
    assert exc.value.code in (0, None)
    assert "app dapp version 1.00 (x86_64-pc-linux-gnu__docker) installed" in out
    assert "plan_class_spec.xml: added mt, docker" in out


# -- Docker apps: the install step in the apache service (boincserver-jobs app-install) ----------


DOCKER_VDIR = "apps/dapp/1.00/x86_64-pc-linux-gnu__docker"


@pytest.fixture
def helper(tmp_path, monkeypatch):
    """A project folder and its (SQLite) database, where `boincserver-jobs` runs."""
    db = install_mysqldb(tmp_path, monkeypatch)
    db.sql("INSERT INTO platform (id, name) VALUES (1, 'x86_64-pc-linux-gnu')")
    db.sql("INSERT INTO app (id, name, user_friendly_name) VALUES (1, 'up', 'Upper'), (2, 'dapp', 'D')")
    db.sql("INSERT INTO app_version (appid, version_num, platformid, plan_class, deprecated) VALUES "
           "(1, 100, 1, '', 0), (1, 101, 1, 'mt', 0), (1, 102, 1, 'cuda', 1)")
    root = project_folder(tmp_path / "project")
    on_path(monkeypatch, root)
    monkeypatch.chdir(root)
    return root, db


def helper_call(root, *argv) -> tuple[int, dict | None, str]:
    out, err = io.BytesIO(), io.StringIO()
    code = container_jobs.main(list(argv), root=root, out=out, err=err)
    return code, json.loads(out.getvalue() or "null"), err.getvalue()


def install(root, vdir: str, app: str = "dapp"):
    (root / container_apps.PROJECT_XML_BEFORE).write_text((root / "project.xml").read_text())
    (root / vdir).mkdir(parents=True)
    daemons = json.dumps([{"cmd": d.cmd, "xml": d.xml()} for d in ba.app_daemons(app)])
    return helper_call(root, "app-install", app, daemons, vdir)


def test_plan_classes_in_use_are_those_the_scheduler_may_send(helper):
    root, _ = helper
    code, got, _ = helper_call(root, "plan-classes")
    assert (code, got) == (0, {"plan_classes": ["mt"], "plan_class_spec": None})  # cuda's version is deprecated
    (root / "plan_class_spec.xml").write_text("<plan_classes></plan_classes>\n")
    assert helper_call(root, "app-state", "dapp")[1]["plan_class_spec"] == "<plan_classes></plan_classes>\n"


def test_the_first_docker_app_writes_the_spec_file_and_asks_the_scheduler_to_say_why(helper):
    root, _ = helper
    code, got, err = install(root, DOCKER_VDIR)
    assert code == 0, err
    spec = (root / "plan_class_spec.xml").read_text()
    assert plan_classes.class_names(spec) == ["mt", "docker"] and got["plan_classes_added"] == ["mt", "docker"]
    assert (root / "plan_class_spec.xml").stat().st_mode & 0o777 == 0o644
    assert not list(root.glob("*.boincserver-tmp"))
    config = ET.parse(root / "config.xml").getroot().find("config")
    assert config.findtext("debug_user_messages") == "1"
    assert "sample_assimilator --app dapp" in (root / "config.xml").read_text()


def test_a_native_app_leaves_the_project_without_a_spec_file(helper):
    root, _ = helper
    code, got, err = install(root, "apps/up/1.02/x86_64-pc-linux-gnu__mt", app="up")
    assert code == 0, err
    assert not (root / "plan_class_spec.xml").exists() and got["plan_classes_added"] == []
    assert "debug_user_messages" not in (root / "config.xml").read_text()


def test_a_users_spec_file_is_completed_not_replaced(helper):
    root, _ = helper
    mine = "<plan_classes>\n  <plan_class><name>mt</name><max_threads>4</max_threads></plan_class>\n</plan_classes>\n"
    (root / "plan_class_spec.xml").write_text(mine)
    (root / "plan_class_spec.xml").chmod(0o640)
    code, got, err = install(root, DOCKER_VDIR)
    assert code == 0, err
    text = (root / "plan_class_spec.xml").read_text()
    assert text.startswith(mine.rsplit("</plan_classes>", 1)[0]) and got["plan_classes_added"] == ["docker"]
    assert (root / "plan_class_spec.xml").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("spec, message", [
    ("<plan_classes><plan_class>", "malformed"),
    ("<plan_classes></plan_classes>", "plan class 'my_gpu'"),  # in use, not in the file, no equivalent
])
def test_an_install_the_scheduler_could_not_serve_is_refused_before_xadd(helper, spec, message):
    root, db = helper
    db.sql("INSERT INTO app_version (appid, version_num, platformid, plan_class) VALUES (1, 103, 1, 'my_gpu')")
    (root / "plan_class_spec.xml").write_text(spec)
    before = (root / "project.xml").read_text(), (root / "config.xml").read_text()
    code, _, err = install(root, DOCKER_VDIR)
    assert code == container_jobs.USER_MISTAKE and message in err
    assert "Fix: " in err
    assert not (root / "calls.log").exists()  # neither xadd nor update_versions ran
    assert not (root / DOCKER_VDIR).exists()
    assert ((root / "project.xml").read_text(), (root / "config.xml").read_text()) == before
    assert (root / "plan_class_spec.xml").read_text() == spec


def test_the_makeproject_image_builds_the_wrappers_apps_take_from_it():
    """apps.py reads BOINC's wrapper and docker_wrapper from the makeproject image at the paths a
    direct `make -C samples/NAME` leaves them (NAME__PLATFORM): the image's Dockerfile makes both."""
    from boincserver import paths
    dockerfile = (paths.data_dir("images") / "makeproject" / "Dockerfile").read_text()
    made = set(re.findall(r"make -C samples/([a-z_]+) -s", dockerfile))
    for table in (apps.WRAPPER_IN_IMAGE, apps.DOCKER_WRAPPER_IN_IMAGE):
        for platform, path in table.items():
            folder, program = path.removeprefix("/usr/src/boinc/samples/").split("/")
            assert folder in made and program == f"{folder}__{platform}"


def test_inputs_are_never_deleted_with_one_job_since_jobs_share_them_by_content():
    root = ET.fromstring(ba.input_template(["in", "params"]))
    infos = root.findall("file_info")
    assert len(infos) == 2 and all(i.find("no_delete") is not None for i in infos)


def test_a_project_at_147_refuses_docker_apps_and_takes_its_plain_wrapper(tmp_path, app_dir):
    folder = tmp_path / "old"
    project.init(folder, Settings(project="old", http_port=free_port(), boinc_release="1.4.7"))
    engine = RecordingEngine()
    engine.running |= {"mysql", "apache"}
    p = context.Project(folder.absolute(), load(folder), engine)
    app_state(p)
    with pytest.raises(InvalidInput, match="1.4.7.*no docker_wrapper") as refused:
        apps.add(p, apps.docker_spec("dapp", app_dir))
    assert "boincserver upgrade" in refused.value.advice
    assert not [c for c in engine.named("exec") if "app-install" in c.text]
    engine.images[pins.base_image("makeproject", "1.4.7")] = {}
    engine.image_files[(pins.base_image("makeproject", "1.4.7"), "/usr/src/boinc/samples/wrapper/wrapper")] = b"W"
    spec = ba.AppSpec(name="w", platform="x86_64-pc-linux-gnu")
    assert apps._source_bytes(p, "wrapper:", spec) == b"W"
