"""`boincserver volunteer`: what up, status, down and manifests ask of Docker (tests/fakes.py's
RecordingEngine), the files they write, the DaemonSet against Kubernetes' schemas, and the
volunteer account made in the apache service (container/accounts.py, over a fake MySQLdb)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys

import pytest
import yaml
from container_fakes import fake_make_user, helper_json, install_mysqldb, project_folder, script
from fakes import RecordingEngine

from boincserver import context, images, pins, project, volunteer
from boincserver.boinc import client
from boincserver.container import accounts, jobs
from boincserver.errors import InvalidInput, ProjectError
from boincserver.settings import Settings, load

WEAK_KEY = "7_" + "a" * 32
KEY_FROM_FILE = "12_" + "b" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def make_project(tmp_path) -> context.Project:
    folder = tmp_path / "demo"
    port = free_port()
    project.init(folder, Settings(project="demo", http_port=port, url_base=f"http://127.0.0.1:{port}"))
    engine = RecordingEngine()
    for name in images.VOLUNTEER_IMAGE_NAMES:  # built already: nothing to compile here
        engine.images[images.image_tag(name)] = {images.INPUTS_LABEL: images.inputs_digest(name)}
    engine.running.add("apache")
    engine.on("exec", "boincserver-jobs", "volunteer-account", service="apache",
              out={"user_id": 7, "email": accounts.VOLUNTEER_EMAIL, "created": True, "weak_key": WEAK_KEY})
    return context.Project(folder.absolute(), load(folder), engine)


def client_says(p: context.Project, url: str | None = None, docker: dict | None = None, **more) -> dict:
    state = {"client": "8.2.15", "docker": docker if docker is not None else {"version": "26.1.5+dfsg1", "type": "docker"},
             "docker_problem": None, "projects": [{"url": url or p.settings.master_url, "name": "demo"}],
             "tasks": [], **more}
    p.engine.on("exec", *volunteer.STATUS, service=volunteer.SERVICE, out=state)
    return state


@pytest.fixture
def demo(tmp_path) -> context.Project:
    p = make_project(tmp_path)
    client_says(p)
    return p


def bound(p: context.Project) -> RecordingEngine:
    return p.engine.bound[(str(volunteer.folder(p)), volunteer.compose_name(p))]


# -- up ----------------------------------------------------------------------------------------
def test_up_attaches_to_this_project_with_the_weak_key_of_its_volunteer_account(demo):
    result = volunteer.up(demo, context.Silent())
    made = demo.engine.find("exec", "boincserver-jobs", "volunteer-account")
    assert made.args["service"] == "apache" and made.args["user"] == "boincadm"
    where = volunteer.folder(demo)
    key = where / volunteer.KEY_FILE
    assert key.read_text() == WEAK_KEY + "\n" and key.stat().st_mode & 0o777 == 0o600
    env = (where / ".env").read_text()
    assert f"BOINC_PROJECT_URL={demo.settings.master_url}\n" in env
    assert f"BOINC_DATA_DIR={where / volunteer.DATA}\n" in env and (where / volunteer.DATA).is_dir()
    assert (where / "compose.yaml").read_text() == volunteer.compose_file(demo)
    assert demo.engine.find("compose_up").args["services"] == [volunteer.SERVICE]
    assert bound(demo).running == {volunteer.SERVICE}
    assert result.changed and result.warnings == [] and result.state["docker"]["type"] == "docker"
    assert result.account == {"user_id": 7, "email": accounts.VOLUNTEER_EMAIL, "created": True}
    assert not demo.engine.named("build_image")
    # The key is a file only: on no command line, in no environment given to Docker.
    assert all(WEAK_KEY not in repr(c.args) for c in demo.engine.calls)


def test_a_second_up_changes_nothing_and_says_so(demo):
    volunteer.up(demo, context.Silent())
    before = {p: p.read_bytes() for p in volunteer.folder(demo).rglob("*") if p.is_file()}
    again = volunteer.up(demo, context.Silent())
    assert not again.changed and {w.state for w in again.written} == {"identical"}
    assert {p: p.read_bytes() for p in volunteer.folder(demo).rglob("*") if p.is_file()} == before


def test_a_changed_url_is_a_change(demo, tmp_path):
    volunteer.up(demo, context.Silent())
    key_file = tmp_path / "key"
    key_file.write_text(KEY_FROM_FILE + "\n")
    other = "https://boinc.example.org/other/"
    client_says(demo, url=other)
    result = volunteer.up(demo, context.Silent(), attach=other, account_key_file=key_file)
    assert result.changed and result.url == other and result.account is None
    assert (volunteer.folder(demo) / volunteer.KEY_FILE).read_text() == KEY_FROM_FILE + "\n"
    assert len([c for c in demo.engine.named("exec") if "volunteer-account" in c.text]) == 1  # not for another project


@pytest.mark.parametrize("url", ["http://boinc.example.org/other", "http://localhost/other/", "ftp://a.b/c/"])
def test_an_url_the_client_refuses_starts_nothing(demo, tmp_path, url):
    key_file = tmp_path / "key"
    key_file.write_text(KEY_FROM_FILE)
    with pytest.raises(InvalidInput) as refused:
        volunteer.up(demo, context.Silent(), attach=url, account_key_file=key_file)
    assert "nothing was started" in str(refused.value) and "--attach" in refused.value.advice
    assert demo.engine.calls == [] and not volunteer.folder(demo).exists()


def test_attach_needs_a_key_file_and_a_good_key(demo, tmp_path):
    with pytest.raises(InvalidInput, match="--account-key-file"):
        volunteer.up(demo, context.Silent(), attach="https://boinc.example.org/other/")
    bad = tmp_path / "key"
    bad.write_text("not a key\n")
    with pytest.raises(InvalidInput) as refused:
        volunteer.up(demo, context.Silent(), attach="https://boinc.example.org/other/", account_key_file=bad)
    assert "not a key" not in str(refused.value)  # a key is never shown
    with pytest.raises(InvalidInput, match="cannot be read"):
        volunteer.up(demo, context.Silent(), attach="https://boinc.example.org/other/",
                     account_key_file=tmp_path / "missing")
    assert demo.engine.calls == []


def test_a_client_without_docker_is_a_warning_with_the_fix(demo):
    client_says(demo, docker={}, docker_problem="Docker found but 'hello-world' test failed")
    result = volunteer.up(demo, context.Silent())
    (problem, fix), = result.warnings
    assert "hello-world" in problem and "native jobs" in problem and "volunteer up" in fix


def test_up_waits_for_the_client_then_says_why_it_gave_up(demo, monkeypatch):
    demo.engine.on("exec", *volunteer.STATUS, service=volunteer.SERVICE, code=3,
                   err="boincserver-volunteer: boinccmd failed: can't connect")
    monkeypatch.setattr(volunteer.time, "sleep", lambda s: None)
    with pytest.raises(ProjectError, match="not ready in 0s: .*can't connect") as gave_up:
        volunteer.up(demo, context.Silent(), timeout=0)
    assert "logs" in gave_up.value.advice


def test_up_waits_until_the_client_lists_the_project(demo, monkeypatch):
    answers = iter([{"client": None, "projects": []}, {"client": "8.2.15", "projects": []},
                    {"client": "8.2.15", "docker": None, "projects": [{"url": demo.settings.master_url}]}])
    demo.engine.on("exec", *volunteer.STATUS, service=volunteer.SERVICE,
                   answer=lambda call: (0, json.dumps(next(answers)).encode(), ""))
    monkeypatch.setattr(volunteer.time, "sleep", lambda s: None)
    assert volunteer.up(demo, context.Silent()).state["client"] == "8.2.15"


# -- status ----------------------------------------------------------------------------------
def test_status_passes_the_clients_json_through(demo):
    with pytest.raises(ProjectError, match="not running") as stopped:
        volunteer.status(demo)
    assert "volunteer up" in stopped.value.advice
    volunteer.up(demo, context.Silent())
    says = client_says(demo, tasks=[{"name": "t1", "state": "downloaded"}])
    assert volunteer.status(demo) == says


# -- down ---------------------------------------------------------------------------------------
def test_down_removes_what_docker_wrapper_left_of_its_projects_only(demo):
    volunteer.up(demo, context.Silent())
    ours = volunteer.leftover_prefix(client.escape_project_url(demo.settings.master_url))
    demo.engine.containers |= {ours + "result_1", "boinc__other.org_p__result_1", "unrelated"}
    demo.engine.images.update({ours + "wu_1:latest": {}, "boinc__other.org_p__wu_1:latest": {}})
    result = volunteer.down(demo, context.Silent())
    assert result.stopped and bound(demo).running == set()
    assert result.containers == [ours + "result_1"] and result.images == [ours + "wu_1:latest"]
    assert demo.engine.containers == {"boinc__other.org_p__result_1", "unrelated"}
    assert "boinc__other.org_p__wu_1:latest" in demo.engine.images
    assert (volunteer.folder(demo) / volunteer.KEY_FILE).is_file() and result.deleted == []


def test_down_with_data_deletes_it_as_root_in_the_volunteer_image(demo):
    volunteer.up(demo, context.Silent())
    data = volunteer.folder(demo) / volunteer.DATA
    (data / "account_x.y_p.xml").write_text("<account/>")  # the client was attached to x.y/p/ too
    demo.engine.containers.add("boinc__x.y_p__r1")
    result = volunteer.down(demo, context.Silent(), delete_data=True)
    wiped = demo.engine.find("run", "find")
    assert wiped.args["image"] == pins.volunteer_image() and wiped.args["volumes"] == [(str(data), str(data), "rw")]
    assert result.containers == ["boinc__x.y_p__r1"]
    assert result.deleted == [volunteer.folder(demo)] and not volunteer.folder(demo).exists()


# -- manifests: one compose file, a DaemonSet Kubernetes accepts ----------------------------------
def test_manifests_write_the_compose_file_up_runs(demo, tmp_path):
    volunteer.up(demo, context.Silent())
    written = volunteer.manifests(demo, tmp_path / "out")
    assert {w.path.name for w in written} == {"compose.yaml", ".env", "daemonset.yaml", "README.md"}
    assert (tmp_path / "out/compose.yaml").read_bytes() == (volunteer.folder(demo) / "compose.yaml").read_bytes()
    assert {w.state for w in volunteer.manifests(demo, tmp_path / "out")} == {"identical"}
    readme = (tmp_path / "out/README.md").read_text()
    assert f"docker save {pins.volunteer_image()} hello-world | ssh" in readme
    assert "kubectl create secret generic" in readme and "loopback" in readme
    assert not any(KEY_FROM_FILE in p.read_text() or WEAK_KEY in p.read_text() for p in (tmp_path / "out").iterdir())


def test_the_compose_file_mounts_the_data_folder_at_the_same_path_and_the_key_as_a_secret(demo):
    compose = yaml.safe_load(volunteer.compose_file(demo))
    service = compose["services"][volunteer.SERVICE]
    assert compose["name"] == volunteer.compose_name(demo)
    assert service["image"] == pins.volunteer_image() and service["network_mode"] == "host"
    assert service["user"] == "root"
    assert "${BOINC_DATA_DIR}:${BOINC_DATA_DIR}" in service["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"]
    key_path = service["environment"]["BOINC_ACCOUNT_KEY_FILE"]
    assert service["secrets"] == [{"source": "account-key", "target": key_path}]
    assert compose["secrets"]["account-key"] == {"file": f"./{volunteer.KEY_FILE}"}


def daemonset(p: context.Project, tmp_path) -> dict:
    volunteer.manifests(p, tmp_path / "out")
    return yaml.safe_load((tmp_path / "out/daemonset.yaml").read_text())


@pytest.mark.parametrize("version", ["1.25", "newest"])  # 1.25: the oldest schemas kubernetes-validate 1.37 has
def test_the_daemonset_is_valid_for_kubernetes(demo, tmp_path, version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.latest_version() if version == "newest" else version
    data = daemonset(demo, tmp_path)
    assert kubernetes_validate.validate(data, version, strict=True)
    # The check can fail: a misspelt field, a value of the wrong type.
    misspelt = json.loads(json.dumps(data))
    misspelt["spec"]["template"]["spec"]["hostNetworking"] = misspelt["spec"]["template"]["spec"].pop("hostNetwork")
    wrong_type = json.loads(json.dumps(data))
    wrong_type["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = "root"
    for broken in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, version, strict=True)


def test_the_daemonset_runs_the_client_as_the_image_contract_says(demo, tmp_path):
    spec = daemonset(demo, tmp_path)["spec"]["template"]["spec"]
    container, = spec["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert spec["hostNetwork"] is True and container["securityContext"]["runAsUser"] == 0
    assert container["image"] == pins.volunteer_image()
    assert volumes["docker-socket"]["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    assert mounts["docker-socket"]["mountPath"] == "/var/run/docker.sock"
    assert volumes["data"]["hostPath"] == {"path": env["BOINC_DATA_DIR"], "type": "DirectoryOrCreate"}
    assert mounts["data"]["mountPath"] == env["BOINC_DATA_DIR"]
    secret = volumes["account-key"]["secret"]
    assert env["BOINC_ACCOUNT_KEY_FILE"] == f"{mounts['account-key']['mountPath']}/{secret['items'][0]['path']}"
    assert mounts["account-key"]["readOnly"] is True and "args" not in container and "command" not in container
    assert env["BOINC_PROJECT_URL"] == demo.settings.master_url and env["BOINC_GUI_RPC_PORT"] == "31416"


@pytest.mark.docker
def test_docker_compose_reads_the_volunteers_compose_file(demo, tmp_path):
    if shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"],
                                                        capture_output=True).returncode != 0:
        pytest.skip("Docker's Compose plugin is not here")
    volunteer.up(demo, context.Silent())
    done = subprocess.run(["docker", "compose", "config", "--format", "json"], cwd=volunteer.folder(demo),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    service = json.loads(done.stdout)["services"][volunteer.SERVICE]
    data = str(volunteer.folder(demo) / volunteer.DATA)
    assert {"type": "bind", "source": data, "target": data, "bind": {}} in service["volumes"]
    assert service["environment"]["BOINC_DATA_DIR"] == data
    assert service["environment"]["BOINC_PROJECT_URL"] == demo.settings.master_url


# -- the volunteer account, in the apache service ---------------------------------------------------
USER_TABLE = "CREATE TABLE user (id INTEGER PRIMARY KEY, email_addr TEXT UNIQUE, name TEXT, authenticator TEXT, " \
             "passwd_hash TEXT)"


@pytest.fixture
def apache_project(tmp_path, monkeypatch):
    """A project folder whose `php` plays BOINC's make_user: it inserts the user into the fake
    database, and logs its working folder and arguments."""
    db = install_mysqldb(tmp_path, monkeypatch)
    db.sql(USER_TABLE)
    root = project_folder(tmp_path / "project")
    (root / "html" / "ops").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    fake_make_user(bin_dir, authenticator="f" * 32)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_PHP_LOG", str(tmp_path / "php.log"))
    return root, db, tmp_path / "php.log"


helper = helper_json


def test_the_volunteer_account_is_made_once_by_boincs_make_user(apache_project):
    root, db, php_log = apache_project
    code, answer, err = helper(root, "volunteer-account")
    assert code == 0, err
    expected = "1_" + hashlib.md5(("f" * 32 + "$2y$10$hashed").encode()).hexdigest()
    assert answer == {"user_id": 1, "email": accounts.VOLUNTEER_EMAIL, "created": True, "weak_key": expected}
    cwd, args = php_log.read_text().splitlines()[0].split(" ", 1)
    assert cwd == str(root / "html" / "ops")
    assert eval(args) == ["-r", accounts.MAKE_USER_PHP, "--", accounts.VOLUNTEER_EMAIL, accounts.VOLUNTEER_NAME]
    assert "make_user(" in accounts.MAKE_USER_PHP and "user_util.inc" in accounts.MAKE_USER_PHP
    code, again, _ = helper(root, "volunteer-account")
    assert again == dict(answer, created=False) and len(php_log.read_text().splitlines()) == 1
    assert "f" * 32 not in json.dumps(again)  # the authenticator never leaves the service


def test_a_refused_make_user_is_the_users_to_see(apache_project):
    root, db, php_log = apache_project
    script(root.parent / "bin" / "php", """
        #!/bin/sh
        echo "make_user refused the account" >&2
        exit 1
        """)
    code, _, err = helper(root, "volunteer-account")
    assert code == jobs.USER_MISTAKE and "make_user" in err and "refused" in err


# -- update and logs --------------------------------------------------------------------------------
def test_update_asks_the_client_to_contact_each_of_its_projects(demo):
    with pytest.raises(ProjectError, match="never started"):
        volunteer.update(demo)
    volunteer.up(demo, context.Silent())
    client_says(demo, projects=[{"url": demo.settings.master_url}, {"url": "https://boinc.example.org/other/"}])
    assert volunteer.update(demo) == [demo.settings.master_url, "https://boinc.example.org/other/"]
    asked = [c for c in demo.engine.named("exec") if "boinccmd" in c.text]
    env = (volunteer.folder(demo) / ".env").read_text()
    port = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("BOINC_GUI_RPC_PORT="))
    assert [c.command for c in asked] == [["boinccmd", "--host", f"127.0.0.1:{port}", "--project", url, "update"]
                                          for url in (demo.settings.master_url, "https://boinc.example.org/other/")]
    assert {c.args["workdir"] for c in asked} == {str(volunteer.folder(demo) / volunteer.DATA)}


def test_logs_are_the_clients_compose_logs(demo):
    with pytest.raises(ProjectError, match="never started"):
        volunteer.logs(demo)
    volunteer.up(demo, context.Silent())
    assert volunteer.logs(demo, tail="20") == 0
    assert demo.engine.find("compose_logs").args["services"] == [volunteer.SERVICE]


# -- the commands: exit codes and what they print ------------------------------------------------
def run_cli(monkeypatch, p: context.Project, *args) -> int:
    from boincserver.commands import cli
    from boincserver.commands import volunteer as commands
    monkeypatch.setattr(commands, "open_project", lambda: p)
    monkeypatch.setattr(sys, "argv", ["boincserver", "volunteer", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return done.value.code or 0


def test_status_of_a_stopped_volunteer_exits_1_with_the_fix(demo, monkeypatch, capsys):
    assert run_cli(monkeypatch, demo, "status") == 1
    assert capsys.readouterr().err.strip() == ("Error: this project's volunteer is not running "
                                               "Fix: start it with `boincserver volunteer up`")


def test_up_prints_a_missing_docker_as_a_warning_and_succeeds(demo, monkeypatch, capsys):
    client_says(demo, docker={})
    assert run_cli(monkeypatch, demo, "up") == 0
    out, err = capsys.readouterr()
    assert f"attached to {demo.settings.master_url}, no Docker" in out
    assert "Warning: the client found no Docker" in err and "Fix: " in err and "Error" not in err
    assert run_cli(monkeypatch, demo, "up", "--json") == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False


def test_a_refused_attach_url_exits_1_and_starts_nothing(demo, monkeypatch, capsys, tmp_path):
    (tmp_path / "key").write_text(KEY_FROM_FILE)
    assert run_cli(monkeypatch, demo, "up", "--attach", "http://boinc.example.org/p",
                   "--account-key-file", str(tmp_path / "key")) == 1
    assert "must end with '/'" in capsys.readouterr().err
    assert demo.engine.calls == [] and not volunteer.folder(demo).exists()
