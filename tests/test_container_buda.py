"""What a project needs for BUDA's web pages (container/buda.py), set up at every start."""

from __future__ import annotations

import json

from test_container_setup import Machine, SAMPLE_PROJECT_INC, URL, start  # noqa: F401
from test_container_setup import db, environ, given, machine, mounts  # noqa: F401 (fixtures)

from boincserver.boinc import buda as bb
from boincserver.boinc import configxml, makeproject
from boincserver.container import buda

CONFIG = "<boinc>\n  <config>\n    <master_url>http://h/p/</master_url>\n  </config>\n</boinc>\n"


def project(tmp_path):
    volume = tmp_path / "volume"
    (volume / "html/project").mkdir(parents=True)
    (volume / "config.xml").write_text(CONFIG)
    (volume / makeproject.PROJECT_INC).write_text(SAMPLE_PROJECT_INC)
    return volume


def test_an_absolute_sandbox_folder_the_folders_and_the_menu(tmp_path):
    volume = project(tmp_path)
    changed = buda.prepare_project(volume, "/home/boincadm/project")
    assert changed == ["config.xml (sandbox_dir)", "buda_apps/", "buda_batches/", "sandbox/",
                       "html/project/project.inc (REMOTE_JOB_SUBMISSION)"]
    config = (volume / "config.xml").read_text()
    assert configxml.get_element(config, "sandbox_dir") == "/home/boincadm/project/sandbox"
    assert configxml.get_element(config, "master_url") == "http://h/p/"
    assert all((volume / name).is_dir() for name in ("buda_apps", "buda_batches", "sandbox"))
    inc = (volume / makeproject.PROJECT_INC).read_text()
    # Before util.inc is required: bootstrap.inc reads it when it is included.
    assert inc.startswith('<?php\ndefine("REMOTE_JOB_SUBMISSION", true);\ndefine("PROJECT", ')
    # Idempotent: a second start changes nothing.
    assert buda.prepare_project(volume, "/home/boincadm/project") == []
    assert (volume / makeproject.PROJECT_INC).read_text() == inc


def test_a_project_that_says_otherwise_keeps_its_choice():
    text = '<?php\ndefine("REMOTE_JOB_SUBMISSION", false);\n'
    assert makeproject.project_inc_with_job_submission(text) == text
    assert makeproject.project_inc_with_job_submission("no php") == "no php"


def test_a_moved_url_base_moves_the_variants_download_urls(tmp_path):
    volume = project(tmp_path)
    desc = bb.make_app("upper", ["in"], ["out"], user_id=0, create_time=1)
    files = {"Dockerfile": b"FROM debian\nWORKDIR /app\n", "main.sh": b"tr a-z A-Z <in >out\n"}
    for f in bb.app_layout(desc, files, "http://old:8080/p/download"):
        (volume / f.path).parent.mkdir(parents=True, exist_ok=True)
        (volume / f.path).write_bytes(f.data)
    variant = volume / "buda_apps/upper/intel_cpu/variant.json"
    buda.prepare_project(volume, "/r")
    assert buda.prepare_project(volume, "/r", "http://old:8080", "http://old:8080") == []
    assert buda.prepare_project(volume, "/r", "http://old:8080", "https://new") == [
        "buda_apps/upper/intel_cpu/variant.json"]
    infos = json.loads(variant.read_text())["file_infos"]
    assert "<url>https://new/p/download/" in infos and "old" not in infos
    variant.write_text("not json")
    changed = buda.prepare_project(volume, "/r", "https://new", "http://third")
    assert changed == ["buda_apps/upper/intel_cpu/variant.json left as it is (variant.json is not JSON "
                       "(Expecting value: line 1 column 1 (char 0)))"]


def test_every_start_prepares_buda(mounts, environ, machine, db, given, capsys):  # noqa: F811
    code, err = start(mounts, environ)
    assert code == 0, err
    config = (mounts.project / "config.xml").read_text()
    assert configxml.get_element(config, "sandbox_dir") == f"{environ['PROJECT_ROOT']}/sandbox"
    assert (mounts.project / "buda_apps").is_dir() and (mounts.project / "sandbox").is_dir()
    assert "REMOTE_JOB_SUBMISSION" in (mounts.project / makeproject.PROJECT_INC).read_text()
    assert "[makeproject] for BUDA (Docker apps on the web): sandbox/" in capsys.readouterr().out
    code, err = start(mounts, environ)
    assert code == 0 and "for BUDA" not in capsys.readouterr().out
