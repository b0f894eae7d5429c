"""`app add NAME --docker DIR --buda` and BUDA apps in `user add --submit`: the host side against
the recording engine (tests/fakes.py), the helpers of the apache service (buda-state,
buda-install, buda-apps, user-add/user-revoke) over a fake project (tests/container_fakes.py).
The files themselves are boinc/buda.py's (tests/test_buda.py)."""

from __future__ import annotations

import json
import sys

import pytest
from container_fakes import helper_json, on_path
from test_apps import app_state, members
from test_apps import app_dir, served  # noqa: F401 (fixtures)
from test_users import accounts_project

from boincserver import apps
from boincserver.boinc import buda as bb
from boincserver.errors import InvalidInput

URL = "http://h:8080/demo/download"


def buda_state(p, desc=None, boinc_app=False, url=URL):
    p.engine.on("exec", "buda-state", out={"download_url": url, "fanout": 1024, "desc": desc,
                                           "boinc_app": boinc_app})


def install_answer(p):
    p.engine.on("exec", "buda-install", answer=lambda call: (0, json.dumps(
        {"app": call.command[-2], "inputs": ["in"], "outputs": ["out"], "submitters": []}).encode(), ""))


def test_app_add_buda_installs_the_buda_app_once_and_sends_the_layout(served, app_dir):  # noqa: F811
    p = served
    app_state(p)  # no `buda` app yet
    buda_state(p)
    install_answer(p)
    result = apps.add_buda(p, "upper", app_dir, ["in"], ["out"])
    # The BOINC app `buda`: docker_wrapper alone, plan class docker (apps.ensure_docker_app).
    boinc_install = p.engine.find("exec", "app-install")
    assert boinc_install.command[-3] == "buda" and boinc_install.command[-1].endswith("x86_64-pc-linux-gnu__docker")
    buda_install = p.engine.find("exec", "buda-install")
    assert p.engine.index(boinc_install) < p.engine.index(buda_install)
    assert buda_install.args["user"] == p.settings.boinc_user
    script = buda_install.command[2]
    assert script.startswith('rm -rf -- "$1" && tar -x -f - --no-same-owner && exec boincserver-jobs buda-install')
    assert buda_install.command[-2:] == ["upper", "buda_apps/upper/intel_cpu"]
    sent = members(buda_install.args["stdin"])
    desc = bb.parse_desc_json(sent["buda_apps/upper/desc.json"][1].decode())
    assert (desc.input_file_names, desc.output_file_names, desc.user_id, desc.submitters) == (
        ("in",), ("out",), 0, ())
    expected = bb.app_layout(desc, {n: (app_dir / n).read_bytes() for n in ("Dockerfile", "main.sh", "notes.txt")},
                             URL, 1024)
    assert {f.path: f.data for f in expected} == {name: data for name, (_, data) in sent.items()}
    assert all(info.mode == 0o644 for info, _ in sent.values())
    variant = json.loads(sent["buda_apps/upper/intel_cpu/variant.json"][1])
    assert variant["app_files"] == ["main.sh", "notes.txt"] and f"<url>{URL}/" in variant["file_infos"]
    assert result["buda_app_installed"] and not result["replaced"] and result["variant"] == "intel_cpu"
    assert result["files"] == ["Dockerfile", "main.sh", "notes.txt"]


def test_re_adding_replaces_the_variant_and_keeps_the_submitters(served, app_dir):  # noqa: F811
    p = served
    app_state(p, registered=True, plan_classes=["docker"],
              plan_class_spec="<plan_classes><plan_class><name>docker</name><docker/></plan_class></plan_classes>")
    before = bb.desc_json(bb.make_app("upper", ["in"], ["out"], user_id=3, create_time=17, submitters=[5]))
    buda_state(p, desc=before)
    install_answer(p)
    result = apps.add_buda(p, "upper", app_dir, ["in", "x.txt"], ["out"])
    assert result["replaced"] and not result["buda_app_installed"]
    assert not p.engine.named("run") and not [c for c in p.engine.calls if "app-install" in c.text]
    sent = members(p.engine.find("exec", "buda-install").args["stdin"])
    desc = bb.parse_desc_json(sent["buda_apps/upper/desc.json"][1].decode())
    assert (desc.user_id, desc.create_time, desc.submitters, desc.input_file_names) == (3, 17, (5,), ("in", "x.txt"))


@pytest.mark.parametrize("name, inputs, message", [
    ("with space", ["in"], "BUDA app name"),
    ("x" * 41, ["in"], "41 characters"),
    ("upper", ["cmdline"], "command line"),
    ("upper", ["main.sh"], "name of an input"),
    ("upper", ["10", "9"], "numbers to PHP"),
])
def test_bad_names_are_refused_before_the_project_is_touched(served, app_dir, name, inputs, message):  # noqa: F811
    with pytest.raises(InvalidInput, match=message) as info:
        apps.add_buda(served, name, app_dir, inputs, ["out"])
    assert info.value.advice and served.engine.calls == []


def test_a_folder_without_dockerfile_is_refused(served, app_dir):  # noqa: F811
    (app_dir / "Dockerfile").unlink()
    with pytest.raises(InvalidInput, match="has no Dockerfile") as info:
        apps.add_buda(served, "upper", app_dir)
    assert "WORKDIR /app" in info.value.advice and served.engine.calls == []


def test_the_name_of_a_boinc_app_is_refused(served, app_dir):  # noqa: F811
    buda_state(served, boinc_app=True)
    with pytest.raises(InvalidInput, match="name of a BOINC app"):
        apps.add_buda(served, "uppercase", app_dir)
    assert [c.command[-2:] for c in served.engine.commands()] == [["buda-state", "uppercase"]]


def run_cli(monkeypatch, capsys, p, *argv):
    from boincserver.commands import apps as apps_command
    from boincserver.commands import cli
    monkeypatch.setattr(apps_command, "open_project", lambda: p)
    monkeypatch.setattr(sys, "argv", ["boincserver", *argv])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return exc.value.code or 0, captured.out, captured.err


def test_the_command_prints_what_it_did_or_json(served, app_dir, monkeypatch, capsys):  # noqa: F811
    app_state(served, registered=True, plan_classes=["docker"],
              plan_class_spec="<plan_classes><plan_class><name>docker</name><docker/></plan_class></plan_classes>")
    buda_state(served)
    install_answer(served)
    code, out, err = run_cli(monkeypatch, capsys, served, "app", "add", "upper", "--docker", str(app_dir), "--buda")
    assert code == 0, err
    assert "BUDA app upper (intel_cpu: Dockerfile, main.sh, notes.txt) installed" in out and "--submit upper" in out
    code, out, _ = run_cli(monkeypatch, capsys, served, "app", "add", "upper", "--docker", str(app_dir), "--buda",
                           "--json")
    assert code == 0 and json.loads(out)["app"] == "upper"


@pytest.mark.parametrize("args", [["--buda"], ["--buda", "--exe", __file__], ["--buda", "--wrapper", "--exe", "x"]])
def test_buda_is_a_docker_app(served, monkeypatch, capsys, args):  # noqa: F811
    code, _, err = run_cli(monkeypatch, capsys, served, "app", "add", "upper", *args)
    assert code == 1 and err.startswith("Error: ") and served.engine.calls == []


def test_app_list_shows_buda_apps(served, monkeypatch, capsys):  # noqa: F811
    served.engine.on("exec", "apps", out=[{"name": "buda", "versions": [], "daemons": []}])
    served.engine.on("exec", "buda-apps", out=[{"name": "upper", "inputs": ["in"], "outputs": ["out"],
                                                "variants": ["intel_cpu"], "submitters": [2]}])
    code, out, err = run_cli(monkeypatch, capsys, served, "app", "list")
    assert code == 0, err
    assert "upper            BUDA app (run by `buda`): inputs in, outputs out, variants intel_cpu" in out
    code, out, _ = run_cli(monkeypatch, capsys, served, "app", "list", "--json")
    assert json.loads(out)[1] == {"buda": True, "name": "upper", "inputs": ["in"], "outputs": ["out"],
                                  "variants": ["intel_cpu"], "submitters": [2]}


# -- in the apache service ------------------------------------------------------------------------
@pytest.fixture
def apache_project(tmp_path, monkeypatch):
    """A project with the BOINC apps uppercase and buda and the BUDA apps upper and lower."""
    root, db = accounts_project(tmp_path, monkeypatch, ("uppercase", "buda"))
    on_path(monkeypatch, root)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{root / 'bin'}:/usr/bin:/bin")
    for name in ("upper", "lower"):
        desc = bb.make_app(name, ["in"], ["out"], user_id=0, create_time=1)
        files = {"Dockerfile": b"FROM debian\nWORKDIR /app\n"}
        for f in bb.app_layout(desc, files, URL):
            (root / f.path).parent.mkdir(parents=True, exist_ok=True)
            (root / f.path).write_bytes(f.data)
    return root, db


def submitters_of(root, name):
    return list(bb.parse_desc_json((root / f"buda_apps/{name}/desc.json").read_text()).submitters)


def test_buda_state_install_and_list(apache_project):
    root, _ = apache_project
    code, state, err = helper_json(root, "buda-state", "upper")
    assert code == 0, err
    assert state["fanout"] == 1024 and state["desc"].startswith("{\n") and state["boinc_app"] is False
    code, state, _ = helper_json(root, "buda-state", "uppercase")
    assert state["desc"] is None and state["boinc_app"] is True
    code, answer, err = helper_json(root, "buda-install", "upper")
    assert code == 0, err
    assert answer == {"app": "upper", "inputs": ["in"], "outputs": ["out"], "submitters": []}
    assert "apache2ctl graceful" in (root / "calls.log").read_text()  # the scheduler reads buda_apps/ once
    code, listed, _ = helper_json(root, "buda-apps")
    assert [(a["name"], a["variants"]) for a in listed] == [("lower", ["intel_cpu"]), ("upper", ["intel_cpu"])]
    code, _, err = helper_json(root, "buda-state", "a b")
    assert code != 0 and "BUDA app name" in err


def test_a_submitter_of_a_buda_app_gets_buda_and_a_place_in_desc_json(apache_project):
    root, db = apache_project
    code, made, err = helper_json(root, "user-add", "ada@example.org", "Ada", "--app", "upper")
    assert code == 0, err
    assert made["apps"] == ["buda"] and made["buda_apps"] == ["upper"]
    assert db.sql("SELECT user_id, app_id FROM user_submit_app") == [(1, 2)]
    assert submitters_of(root, "upper") == [1] and submitters_of(root, "lower") == []
    code, made, _ = helper_json(root, "user-add", "ada@example.org", "Ada", "--app", "lower", "--app", "uppercase")
    assert made["apps"] == ["buda", "uppercase"] and made["buda_apps"] == ["lower", "upper"]
    # Revoking one BUDA app keeps `buda` while another lists the account.
    code, left, err = helper_json(root, "user-revoke", "ada@example.org", "--app", "upper")
    assert code == 0, err
    assert left["apps"] == ["buda", "uppercase"] and left["buda_apps"] == ["lower"]
    code, left, _ = helper_json(root, "user-revoke", "ada@example.org", "--app", "lower")
    assert left["apps"] == ["uppercase"] and left["buda_apps"] == []
    helper_json(root, "user-add", "ada@example.org", "Ada", "--app", "upper")
    code, left, _ = helper_json(root, "user-revoke", "ada@example.org")
    assert left["apps"] == [] and left["buda_apps"] == [] and submitters_of(root, "upper") == []


def test_a_buda_app_without_the_buda_app_row_is_refused(apache_project):
    root, db = apache_project
    db.sql("DELETE FROM app WHERE name='buda'")
    code, _, err = helper_json(root, "user-add", "ada@example.org", "Ada", "--app", "upper")
    assert code != 0 and "no app 'buda'" in err and db.sql("SELECT * FROM user") == []
