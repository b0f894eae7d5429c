"""boinc/metrics.py: the server's figures from BOINC's sources, and the Prometheus text format."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from boincserver.boinc import metrics as m


def debian_promtool() -> Path:
    """promtool beside the prometheus `./run test` unpacks from Debian's package; else a skip."""
    prometheus = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
    promtool = Path(prometheus).with_name("promtool") if prometheus else None
    if not (promtool and promtool.exists()):
        pytest.skip("Debian's promtool is not here: `./run test` unpacks it with prometheus, or set PROMETHEUS")
    return promtool

CONFIG = """<boinc>
  <config/>
  <daemons>
    <daemon>
      <cmd>feeder -d 3 --sleep_interval 1</cmd>
    </daemon>
    <daemon>
      <cmd>sample_trivial_validator --app uppercase</cmd>
      <pid_file>sample_trivial_validator_uppercase.pid</pid_file>
      <output>sample_trivial_validator_uppercase.log</output>
    </daemon>
    <daemon>
      <cmd>run_in_ops ../bin/old_thing</cmd>
      <disabled>1</disabled>
    </daemon>
  </daemons>
</boinc>
"""

# What bin/show_shmem prints (sched/sched_shmem.cpp:346-437), cut to six slots.
SHOW_SHMEM = """ready: 1
max_wu_results: 6
slot  app WU ID      result ID    batch HR infeas need_rel
   0 uppercase    12           34           0     0     0     0
   1: ---
   2 uppercase    13           35           0     0     0     0
   3: PID 77: result 36
   4: ---
   5: ---
"""


def test_daemons_and_their_pid_files_as_bin_start_names_them():
    assert m.daemons(CONFIG) == [
        m.DaemonEntry("feeder -d 3 --sleep_interval 1", "feeder.pid"),
        m.DaemonEntry("sample_trivial_validator --app uppercase", "sample_trivial_validator_uppercase.pid"),
        m.DaemonEntry("run_in_ops ../bin/old_thing", "old_thing.pid", disabled=True)]
    assert [d.name for d in m.daemons(CONFIG)] == ["feeder", "sample_trivial_validator_uppercase", "old_thing"]


def test_a_daemon_runs_only_with_a_pid_file_naming_a_live_process():
    alive = {41}.__contains__
    assert m.daemon_running("41\n", alive)
    assert not m.daemon_running("42\n", alive)
    assert not m.daemon_running(None, alive) and not m.daemon_running("", alive)
    assert not m.daemon_running("garbage", alive) and not m.daemon_running("0", lambda pid: True)


def test_feeder_slots_count_jobs_not_empty_or_held_slots():
    assert m.feeder_slots(SHOW_SHMEM) == {"ready": 1, "slots": 6, "filled": 2}
    assert m.feeder_slots("can't attach shmem\n") == {}


def test_query_rows_become_figures_with_every_state_named():
    rows = [("uppercase", 2, 5), ("uppercase", 4, 3), ("wordcount", 1, 1), ("wordcount", 5, 9)]
    assert m.results_by_app(rows) == {"uppercase": {"inactive": 0, "unsent": 5, "in_progress": 3},
                                      "wordcount": {"inactive": 1, "unsent": 0, "in_progress": 0}}
    assert m.waiting_by_app([("uppercase", 2, None)]) == {"uppercase": {"validation": 2, "assimilation": 0}}


def test_transitioner_backlog_ignores_finished_workunits_and_the_future():
    assert m.transitioner_backlog(1000, 4, now=1090.0) == {"seconds": 90.0, "workunits": 4}
    assert m.transitioner_backlog(2000, 0, now=1090.0) == {"seconds": 0.0, "workunits": 0}
    assert m.transitioner_backlog(2**31 - 1, 0, now=1090.0)["seconds"] == 0.0
    assert m.transitioner_backlog(None, 0, now=1090.0)["seconds"] == 0.0


def test_statements_read_only_what_their_indexes_cover():
    assert "server_state IN (1, 2, 4)" in m.RESULTS_BY_APP_AND_STATE
    assert "w.appid=a.id AND w.need_validate=1" in m.WORKUNITS_WAITING
    assert m.TRANSITIONS_DUE.count("%s") == 1 and m.RECEIVED_SINCE.count("%s") == 1


def test_the_text_format_escapes_and_keeps_families_without_series():
    text = m.exposition([
        m.Metric("boinc_x", 'A "help"\nwith a \\ in it').add(3, app='a"b\\c\nd').add(0.5, app="z"),
        m.Metric("boinc_empty", "Nothing yet."),
        m.Metric("boinc_flag", "A flag.").add(True)])
    assert text == ('# HELP boinc_x A "help"\\nwith a \\\\ in it\n# TYPE boinc_x gauge\n'
                    'boinc_x{app="a\\"b\\\\c\\nd"} 3\nboinc_x{app="z"} 0.5\n'
                    '# HELP boinc_empty Nothing yet.\n# TYPE boinc_empty gauge\n'
                    '# HELP boinc_flag A flag.\n# TYPE boinc_flag gauge\nboinc_flag 1\n')
    assert m.exposition([m.Metric("boinc_n", "n").add(float("nan")).add(float("inf"))]).endswith(
        "boinc_n NaN\nboinc_n +Inf\n")


def test_figures_render_as_the_metrics_status_shows():
    figures = {"database_up": 1, "daemons": {"feeder": 1, "transitioner": 0},
               "results": {"uppercase": {"inactive": 0, "unsent": 5, "in_progress": 3}},
               "workunits_waiting": {"uppercase": {"validation": 2, "assimilation": 0}},
               "transitioner_backlog": {"seconds": 90.0, "workunits": 4}, "results_received_last_hour": 17,
               "feeder": {"ready": 1, "slots": 500, "filled": 120},
               "filesystems": {"project": {"size_bytes": 100, "avail_bytes": 40}}}
    lines = m.exposition(m.metrics(figures)).splitlines()
    assert 'boinc_daemon_up{daemon="transitioner"} 0' in lines
    assert 'boinc_results{app="uppercase",state="unsent"} 5' in lines
    assert 'boinc_workunits_waiting{app="uppercase",stage="validation"} 2' in lines
    assert "boinc_transitioner_backlog_seconds 90" in lines and "boinc_results_received_last_hour 17" in lines
    assert "boinc_feeder_slots_filled 120" in lines and 'boinc_filesystem_avail_bytes{volume="project"} 40' in lines
    # Every family has its HELP and TYPE (promtool check metrics requires HELP).
    names = {line.split("{")[0].split()[0] for line in lines if not line.startswith("#")}
    assert all(f"# HELP {n}" in "\n".join(lines) and f"# TYPE {n} gauge" in lines for n in names)
    # A database that did not answer: the families that need it say nothing, `boinc_up` says 0.
    assert m.exposition(m.metrics({"database_up": 0})).count("\nboinc_up 0\n") == 1


# -- status: the same figures in the terminal ----------------------------------------------------
FIGURES = {"database_up": 1, "daemons": {"feeder": 1, "transitioner": 0},
           "results": {"up": {"inactive": 0, "unsent": 5, "in_progress": 3}, "wc": {"inactive": 0, "unsent": 1,
                                                                                    "in_progress": 0}},
           "workunits_waiting": {}, "transitioner_backlog": {"seconds": 90.0, "workunits": 4},
           "results_received_last_hour": 17, "feeder": {"ready": 1, "slots": 500, "filled": 120}}


def test_status_shows_the_figures_of_the_metrics_endpoint(tmp_path):
    from test_use_cases import make_project

    from boincserver import project
    from boincserver.commands.project import figure_lines
    p = make_project(tmp_path)
    p.engine.running |= {"mysql", "apache"}
    p.engine.on("exec", "bin/status", service="apache", out="BOINC is ENABLED\n")
    p.engine.on("exec", "boincserver-jobs", "metrics", service="apache", out=FIGURES)
    data = project.status(p)
    assert data["metrics"] == FIGURES
    assert figure_lines(data["metrics"])[1:] == [
        "metrics (as URL_BASE/metrics shows them):", "  results: 0 inactive, 6 unsent, 3 in progress",
        "  transitioner backlog: 4 due, oldest 90 s", "  results received in the last hour: 17",
        "  feeder: 120 of 500 slots filled", "  daemons not running: transitioner"]
    assert figure_lines({"database_up": 0, "database_error": "gone"})[-1] == "  database: not answering (gone)"
    # An apache image without the metrics: status still answers, and says so.
    p.engine.on("exec", "boincserver-jobs", "metrics", service="apache", code=1, err="boincserver-jobs: no such command")
    assert "error" in project.status(p)["metrics"]


def test_promtool_finds_nothing_to_mend_in_the_text():
    """Prometheus's own linter (promtool check metrics: HELP on every family, names, units)."""
    promtool = debian_promtool()
    figures = dict(FIGURES, filesystems={"project": {"size_bytes": 10, "avail_bytes": 5}})
    done = subprocess.run([str(promtool), "check", "metrics"], input=m.exposition(m.metrics(figures)),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# -- examples/grafana-dashboard.json ----------------------------------------------------------------
DASHBOARD = Path(__file__).resolve().parents[1] / "examples" / "grafana-dashboard.json"


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def test_the_dashboard_asks_only_for_metrics_the_endpoint_has():
    figures = dict(FIGURES, filesystems={"project": {"size_bytes": 10, "avail_bytes": 5}})
    exported = {metric.name for metric in m.metrics(figures)}
    asked = {name for expr in dashboard_queries() for name in re.findall(r"\bboinc_[a-z_]+", expr)}
    assert asked and asked <= exported, asked - exported


def test_promtool_parses_every_dashboard_query(tmp_path):
    promtool = debian_promtool()
    rules = "groups:\n  - name: dashboard\n    rules:\n" + "".join(
        f"      - record: dashboard:query{i}\n        expr: '{expr}'\n" for i, expr in enumerate(dashboard_queries()))
    (tmp_path / "rules.yml").write_text(rules)
    done = subprocess.run([str(promtool), "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
