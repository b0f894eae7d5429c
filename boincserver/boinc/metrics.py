"""The server's health as figures and as Prometheus metrics (issue 13: `URL_BASE/metrics`,
`boincserver status`): what to read, cheaply enough for a scrape every 15 s, and how to write it.

One dict of figures (`figures`) is what `status --json` shows and what the endpoint renders
(`exposition`), so the two cannot disagree. The container side reads the sources
(config.xml, pid files, the database, bin/show_shmem) and hands their contents to these pure
functions.

Facts from the pinned server source (server_release 1.6.2):
- html/user/server_status.php caches its job counts for an hour (STATUS_PAGE_TTL 3600,
  html/project.sample/cache_parameters.inc:21; get_job_status :419-499): not a scrape's source.
  Its queries are the model here (:425-488), with the state constants of
  html/inc/common_defs.inc:36-39 (server_state 1 inactive, 2 unsent, 4 in progress, 5 over).
- A daemon runs when the pid file bin/start wrote holds a live pid (sched/start:175-177,
  300-305): `<pid_file>` of its <daemon> in config.xml, else the basename of the command's
  first word (run_in_ops: the second) and `.pid`, in pid_HOST/. A <disabled>1</disabled>
  daemon is not started (:369-376 of server_status.php shows it as disabled).
- The transitioner takes workunits whose transition_time has passed (db/boinc_db.cpp:1660);
  MIN(transition_time) is one step of the index wu_timeout (db/constraints.sql:36), and a
  finished workunit waits for INT_MAX (sched/transitioner.cpp:619).
- result.received_time has no index (db/schema.sql:300, db/constraints.sql): counting the
  last hour's reports reads every finished result not yet purged, so the container computes it
  at most every RECEIVED_EVERY_S seconds. db_purge deletes rows: no figure here is a counter.
- bin/show_shmem (sched/show_shmem.cpp:63-75, sched/sched_shmem.cpp:346-437) prints the
  feeder's job array: `ready: 0|1`, `max_wu_results: N`, a header line every 24 slots, and a
  line per slot: `%4d %12.12s ...` when a job is in it, `%4d: ---` when empty, `%4d: PID %d:
  result %lu` while a scheduler holds it.
- The Prometheus text format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats):
  `# HELP name text` (backslash and newline escaped), `# TYPE name gauge`, then
  `name{label="value"} number`, label values with backslash, double quote and newline escaped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from boincserver.boinc import configxml
from boincserver.boinc.database import TRANSITION_TIME_FINISHED

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "boinc_"
RESULT_STATES = {1: "inactive", 2: "unsent", 4: "in_progress"}
RESULT_OVER = 5
RECEIVED_WINDOW_S = 3600
RECEIVED_EVERY_S = 120

# -- the database ---------------------------------------------------------------------------
# Unfinished results by app and state: res_app_state (appid, server_state), O(unfinished).
RESULTS_BY_APP_AND_STATE = (
    "SELECT a.name, r.server_state, COUNT(*) FROM result r JOIN app a ON a.id=r.appid "
    f"WHERE r.server_state IN ({', '.join(str(s) for s in RESULT_STATES)}) GROUP BY a.name, r.server_state")
# Per app, so that wu_val (appid, need_validate) and wu_assim (appid, assimilate_state) are
# used as point ranges (db/constraints.sql:34, 40); without appid they scan the whole index.
WORKUNITS_WAITING = (
    "SELECT a.name, (SELECT COUNT(*) FROM workunit w WHERE w.appid=a.id AND w.need_validate=1), "
    "(SELECT COUNT(*) FROM workunit w WHERE w.appid=a.id AND w.assimilate_state=1) FROM app a")
OLDEST_TRANSITION = "SELECT MIN(transition_time) FROM workunit"
TRANSITIONS_DUE = "SELECT COUNT(*) FROM workunit WHERE transition_time<%s"
RECEIVED_SINCE = f"SELECT COUNT(*) FROM result WHERE server_state={RESULT_OVER} AND received_time>%s"


def results_by_app(rows: Iterable[tuple]) -> dict[str, dict[str, int]]:
    """RESULTS_BY_APP_AND_STATE's rows as {app: {state: count}}, every state named, zeros too."""
    out: dict[str, dict[str, int]] = {}
    for app, state, count in rows:
        named = RESULT_STATES.get(int(state))
        if named:
            out.setdefault(str(app), dict.fromkeys(RESULT_STATES.values(), 0))[named] = int(count)
    return out


def waiting_by_app(rows: Iterable[tuple]) -> dict[str, dict[str, int]]:
    """WORKUNITS_WAITING's rows as {app: {"validation": n, "assimilation": n}}."""
    return {str(app): {"validation": int(v or 0), "assimilation": int(a or 0)} for app, v, a in rows}


def transitioner_backlog(oldest: int | None, due: int, now: float) -> dict[str, float]:
    """How far behind the transitioner is: the oldest due workunit's wait and how many are due."""
    waited = 0.0
    if oldest is not None and int(oldest) < TRANSITION_TIME_FINISHED:
        waited = max(0.0, now - int(oldest))
    return {"seconds": round(waited, 1), "workunits": int(due)}


# -- the daemons ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DaemonEntry:
    command: str
    pid_file: str
    disabled: bool = False

    @property
    def name(self) -> str:
        """The pid file's stem: unique per daemon (sample_trivial_validator_uppercase)."""
        return self.pid_file.removesuffix(".pid")


def command_basename(command: str) -> str:
    words = command.split()
    first = words[1] if words[:1] == ["run_in_ops"] and len(words) > 1 else (words[0] if words else "")
    return first.rsplit("/", 1)[-1]


def daemons(config_xml: str) -> list[DaemonEntry]:
    """The <daemon>s of config.xml, with the pid file bin/start writes for each."""
    out = []
    for block in re.findall(r"<daemon>(.*?)</daemon>", config_xml, re.S):
        command = configxml.get_element(block, "cmd") or ""
        if not command:
            continue
        disabled = (configxml.get_element(block, "disabled") or "") not in ("", "0")
        pid_file = configxml.get_element(block, "pid_file") or f"{command_basename(command)}.pid"
        out.append(DaemonEntry(command, pid_file, disabled))
    return out


def daemon_running(pid_text: str | None, alive: Callable[[int], bool]) -> bool:
    """A pid file's contents (None: no file) name a live process, as bin/start decides."""
    try:
        pid = int((pid_text or "").split()[0])
    except (ValueError, IndexError):
        return False
    return pid > 0 and alive(pid)


# -- the feeder's job array -----------------------------------------------------------------
_FILLED_SLOT = re.compile(r"\s*\d+\s")
_SLOT = re.compile(r"\s*\d+[\s:]")


def feeder_slots(show_shmem: str) -> dict[str, int]:
    """bin/show_shmem's output as {"ready", "slots", "filled"}; {} when it shows no array."""
    ready = re.search(r"^ready:\s*(\d+)", show_shmem, re.M)
    size = re.search(r"^max_wu_results:\s*(\d+)", show_shmem, re.M)
    if not (ready and size):
        return {}
    lines = [line for line in show_shmem.splitlines() if _SLOT.match(line)]
    filled = sum(1 for line in lines if _FILLED_SLOT.match(line))
    return {"ready": int(ready.group(1)), "slots": int(size.group(1)), "filled": filled}


# -- the Prometheus text format ---------------------------------------------------------------
@dataclass
class Metric:
    name: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)
    type: str = "gauge"

    def add(self, value: float, **labels: str) -> "Metric":
        self.samples.append((labels, value))
        return self


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return str(int(number)) if number.is_integer() else repr(number)


def exposition(metrics: Iterable[Metric]) -> str:
    """The metrics in the text format a Prometheus server scrapes; a metric without samples
    still has its HELP and TYPE (a family Prometheus knows of, with no series)."""
    lines = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {_escape_help(m.help)}")
        lines.append(f"# TYPE {m.name} {m.type}")
        for labels, value in m.samples:
            shown = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{m.name}{{{shown}}} {_number(value)}" if shown else f"{m.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def metrics(figures: dict) -> list[Metric]:
    """The figures (as `status --json` shows them) as Prometheus metrics."""
    out = [Metric(f"{PREFIX}up", "1 when the project's database answered.").add(figures.get("database_up", 0))]
    daemon_up = Metric(f"{PREFIX}daemon_up", "1 when the daemon's process runs (pid file and a live pid), "
                                             "0 when it does not; disabled daemons are left out.")
    for name, running in sorted(figures.get("daemons", {}).items()):
        daemon_up.add(running, daemon=name)
    results = Metric(f"{PREFIX}results", "Results not yet finished, by app and state (inactive, unsent, in_progress).")
    for app, states in sorted(figures.get("results", {}).items()):
        for state, count in sorted(states.items()):
            results.add(count, app=app, state=state)
    waiting = Metric(f"{PREFIX}workunits_waiting", "Workunits waiting for the validator or the assimilator, by app.")
    for app, stages in sorted(figures.get("workunits_waiting", {}).items()):
        for stage, count in sorted(stages.items()):
            waiting.add(count, app=app, stage=stage)
    out += [daemon_up, results, waiting]
    backlog = figures.get("transitioner_backlog")
    if backlog is not None:
        out.append(Metric(f"{PREFIX}transitioner_backlog_seconds",
                          "How long the oldest workunit due for the transitioner has waited.").add(backlog["seconds"]))
        out.append(Metric(f"{PREFIX}transitioner_backlog_workunits",
                          "Workunits due for the transitioner.").add(backlog["workunits"]))
    received = figures.get("results_received_last_hour")
    if received is not None:
        out.append(Metric(f"{PREFIX}results_received_last_hour",
                          f"Results reported in the last hour (counted at most every {RECEIVED_EVERY_S} s).")
                   .add(received))
    feeder = figures.get("feeder") or {}
    if feeder:
        out.append(Metric(f"{PREFIX}feeder_ready", "1 when the feeder has filled the job array once.")
                   .add(feeder["ready"]))
        out.append(Metric(f"{PREFIX}feeder_slots", "Slots of the scheduler's job array.").add(feeder["slots"]))
        out.append(Metric(f"{PREFIX}feeder_slots_filled", "Slots holding a job ready to send.").add(feeder["filled"]))
    size = Metric(f"{PREFIX}filesystem_size_bytes", "Size of the file system holding each project volume.")
    avail = Metric(f"{PREFIX}filesystem_avail_bytes", "Bytes free for the project on that file system.")
    for volume, fs in sorted(figures.get("filesystems", {}).items()):
        size.add(fs["size_bytes"], volume=volume)
        avail.add(fs["avail_bytes"], volume=volume)
    if size.samples:
        out += [size, avail]
    return out
