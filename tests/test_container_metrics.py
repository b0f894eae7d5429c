"""container/metrics.py: the figures read from a project folder as make_project leaves it (fake
database, pid files, a bin/show_shmem that prints what BOINC's does), the /metrics CGI, and the
apache image's route to it."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess

import pytest
from container_fakes import install_mysqldb, project_folder, script
from test_metrics import SHOW_SHMEM
from test_outputs import shipped_cgi

from boincserver import images
from boincserver.boinc import metrics as bm
from boincserver.container import metrics
from boincserver.container.common import ProjectFolder

NOW = 1_800_000_000.0


@pytest.fixture
def project(tmp_path, monkeypatch):
    db = install_mysqldb(tmp_path, monkeypatch)
    root = project_folder(tmp_path / "project")
    # Two daemons: the feeder runs (this test's pid), the transitioner died (a pid nobody has).
    config = (root / "config.xml").read_text().replace(
        "  </daemons>", "    <daemon>\n      <cmd>transitioner -d 3</cmd>\n    </daemon>\n"
                        "    <daemon>\n      <cmd>old_thing</cmd>\n      <disabled>1</disabled>\n    </daemon>\n  </daemons>")
    (root / "config.xml").write_text(config)
    pids = metrics.pid_dir(root)
    pids.mkdir()
    (pids / "feeder.pid").write_text(f"{os.getpid()}\n")
    (pids / "transitioner.pid").write_text("999999999\n")
    script(root / "bin" / "show_shmem", f"#!/bin/sh\ncat <<'END'\n{SHOW_SHMEM}END\n")
    db.sql("INSERT INTO app (id, name) VALUES (1, 'up'), (2, 'wc')")
    db.sql(f"INSERT INTO workunit (id, name, appid, need_validate, transition_time) VALUES "
           f"(1, 'a', 1, 1, {int(NOW) - 90}), (2, 'b', 1, 0, {int(NOW) + 600}), (3, 'c', 2, 0, {2**31 - 1})")
    db.sql("UPDATE workunit SET assimilate_state=1 WHERE id=3")
    db.sql(f"INSERT INTO result (id, workunitid, appid, server_state, received_time) VALUES "
           f"(1, 1, 1, 2, 0), (2, 1, 1, 4, 0), (3, 2, 1, 4, 0), (4, 3, 2, 5, {int(NOW) - 60}), "
           f"(5, 3, 2, 5, {int(NOW) - 7200})")
    return ProjectFolder(root, io.BytesIO()), db


def test_figures_come_from_config_pid_files_the_database_and_show_shmem(project):
    folder, _ = project
    got = metrics.figures(folder, now=NOW)
    assert got["database_up"] == 1
    assert got["daemons"] == {"feeder": 1, "transitioner": 0}  # the disabled one is not counted
    assert got["feeder"] == {"ready": 1, "slots": 6, "filled": 2}
    assert got["results"] == {"up": {"inactive": 0, "unsent": 1, "in_progress": 2}}
    assert got["workunits_waiting"] == {"up": {"validation": 1, "assimilation": 0},
                                        "wc": {"validation": 0, "assimilation": 1}}
    assert got["transitioner_backlog"] == {"seconds": 90.0, "workunits": 1}
    assert got["results_received_last_hour"] == 1
    assert set(got["filesystems"]) == {"project", "results"}
    assert all(fs["size_bytes"] >= fs["avail_bytes"] > 0 for fs in got["filesystems"].values())


def test_reports_of_the_last_hour_are_counted_again_only_after_a_while(project):
    folder, db = project
    assert metrics.figures(folder, now=NOW)["results_received_last_hour"] == 1
    db.sql(f"UPDATE result SET received_time={int(NOW) - 30} WHERE id=5")
    assert metrics.figures(folder, now=NOW + 60)["results_received_last_hour"] == 1  # from the cache
    later = NOW + bm.RECEIVED_EVERY_S + 1
    assert metrics.figures(folder, now=later)["results_received_last_hour"] == 2


def test_without_the_database_the_rest_is_still_told(project, monkeypatch):
    folder, db = project
    monkeypatch.setattr(db, "connect", lambda **kw: (_ for _ in ()).throw(db.Error("Can't connect to server")))
    got = metrics.figures(folder, now=NOW)
    assert got["database_up"] == 0 and "Can't connect" in got["database_error"]
    assert got["daemons"] == {"feeder": 1, "transitioner": 0} and "results" not in got


def test_the_cgi_answers_the_text_format_and_refuses_other_methods(project):
    folder, _ = project
    out, err = io.BytesIO(), io.StringIO()
    assert metrics.answer({"PROJECT_ROOT": str(folder.root), "REQUEST_METHOD": "GET"}, out, err) == 0
    head, _, body = out.getvalue().partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200 OK\r\n") and bm.CONTENT_TYPE.encode() in head
    text = body.decode()
    assert "\nboinc_up 1\n" in text and 'boinc_results{app="up",state="in_progress"} 2' in text
    assert 'boinc_daemon_up{daemon="transitioner"} 0' in text
    out = io.BytesIO()
    assert metrics.answer({"PROJECT_ROOT": str(folder.root), "REQUEST_METHOD": "POST"}, out, err) == 0
    assert out.getvalue().startswith(b"Status: 405 ")


def test_boincserver_jobs_metrics_prints_the_figures(project):
    from boincserver.container import jobs
    folder, _ = project
    out = io.BytesIO()
    assert jobs.main(["metrics"], root=folder.root, out=out, err=io.StringIO()) == 0
    assert json.loads(out.getvalue())["daemons"] == {"feeder": 1, "transitioner": 0}


# -- the image ----------------------------------------------------------------------------------
def test_apache_serves_metrics_behind_the_ops_password():
    conf = shipped_cgi("metrics")
    assert re.search(r"^ScriptAlias /metrics /usr/local/libexec/boincserver/boincserver-metrics$", conf, re.M)
    location = re.search(r'<Location "/metrics">(.*?)</Location>', conf, re.S).group(1)
    assert "AuthType Basic" in location and "Require valid-user" in location
    # The ops area's own password file (secrets/catalogue.toml: ops.htpasswd, readable by apache).
    assert "AuthUserFile /run/boincserver/secrets/ops.htpasswd" in location


def test_the_cgi_entry_point_runs_the_shipped_module(tmp_path):
    """What the image ships, alone (no site-packages): without a project folder, a 500 and why."""
    ctx = images.make_context("apache", tmp_path / "ctx", None)
    assert os.access(ctx / "boincserver-metrics", os.X_OK)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ctx / "lib"), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONNOUSERSITE": "1", "PROJECT_ROOT": str(tmp_path / "none"), "REQUEST_METHOD": "GET"}
    done = subprocess.run([str(ctx / "boincserver-metrics")], capture_output=True, env=env, cwd=tmp_path)
    assert done.returncode == 1 and b"config.xml" in done.stderr
    assert done.stdout.startswith(b"Status: 500 ")
