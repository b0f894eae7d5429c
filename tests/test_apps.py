"""Apps as files (boincserver.boinc.apps) and the checks `app add` makes before Docker."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from boincserver import apps
from boincserver.boinc import apps as ba
from boincserver.errors import InvalidInput, ProjectError


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
