"""SQL over BOINC's database schema (db/schema.sql of server_release 1.6.2) for apps, jobs
and batches: statements with %s parameters (MySQLdb's style), built here, run elsewhere.

Lists of names go in pieces of IN_CHUNK, so one statement never grows without bound.
"""

from __future__ import annotations

import time
from typing import Iterator

from boincserver.boinc import jobs as bj

Statement = tuple[str, tuple]
IN_CHUNK = 1000

APP_BY_NAME = "SELECT id, name, user_friendly_name, deprecated FROM app WHERE name=%s"
APP_NAMES = "SELECT name FROM app ORDER BY name"
# One row per version (NULLs for an app without versions): what boinc.apps.apps_from_rows reads.
APPS_AND_VERSIONS = ("SELECT a.name, a.user_friendly_name, v.version_num, p.name, v.plan_class, v.deprecated "
                     "FROM app a LEFT JOIN app_version v ON v.appid=a.id "
                     "LEFT JOIN platform p ON p.id=v.platformid ORDER BY a.name, v.version_num")
BATCH_BY_ID = "SELECT id FROM batch WHERE id=%s"
# One row per batch: what boinc.jobs.batch_report reads.
BATCHES = ("SELECT b.id, b.name, a.name, b.create_time, b.njobs, b.state, "
           "SUM(w.error_mask=0 AND w.canonical_resultid<>0 AND w.assimilate_state=%d), SUM(w.error_mask<>0) "
           "FROM batch b LEFT JOIN app a ON a.id=b.app_id LEFT JOIN workunit w ON w.batch=b.id "
           "GROUP BY b.id ORDER BY b.id" % bj.ASSIMILATE_DONE)
# One row per workunit: id, then what boinc.jobs.job_report reads.
_JOBS = ("SELECT w.id, w.name, w.batch, w.error_mask, w.canonical_resultid, w.assimilate_state, "
         "SUM(r.server_state={unsent}), SUM(r.server_state={in_progress}), "
         "SUM(r.server_state={over} AND r.outcome={success}), SUM(r.server_state={over} AND r.outcome<>{success}) "
         "FROM workunit w LEFT JOIN result r ON r.workunitid=w.id WHERE ").format(
    **bj.RESULT_SERVER_STATES, success=bj.RESULT_OUTCOME_SUCCESS)

_FAILED_RESULTS = ("SELECT workunitid, name, outcome, exit_status, stderr_out FROM result "
                   "WHERE server_state={over} AND outcome NOT IN ({success}, {didnt_need}) ").format(
    over=bj.RESULT_SERVER_STATES["over"], success=bj.RESULT_OUTCOME_SUCCESS, didnt_need=bj.RESULT_OUTCOME_DIDNT_NEED)


def _chunks(names: list[str]) -> Iterator[tuple[str, tuple]]:
    """(placeholders, names) for each piece of the list."""
    for i in range(0, len(names), IN_CHUNK):
        chunk = tuple(names[i:i + IN_CHUNK])
        yield ",".join(["%s"] * len(chunk)), chunk


def workunits_named(names: list[str]) -> list[Statement]:
    """The names among `names` that workunits have already (job names are unique)."""
    return [(f"SELECT name FROM workunit WHERE name IN ({marks})", chunk) for marks, chunk in _chunks(names)]


def jobs_of_batch(batch: int) -> list[Statement]:
    return [(_JOBS + "w.batch=%s GROUP BY w.id ORDER BY w.id", (batch,))]


def jobs_named(names: list[str]) -> list[Statement]:
    return [(_JOBS + f"w.name IN ({marks}) GROUP BY w.id ORDER BY w.id", chunk) for marks, chunk in _chunks(names)]


def failed_results(workunit_ids: list[int]) -> list[Statement]:
    """(workunitid, name, outcome, exit_status, stderr_out) of the workunits' results that came
    back failed (over, and neither a success nor one not needed), oldest first."""
    return [(_FAILED_RESULTS + f"AND workunitid IN ({marks}) ORDER BY id", chunk)
            for marks, chunk in _chunks(workunit_ids)]


def insert_batch(name: str, app_id: int, njobs: int, description: str, now: float | None = None) -> Statement:
    """A batch row in progress, as BOINC's own job submission makes one (user 0: no submitter)."""
    return ("INSERT INTO batch (user_id, create_time, logical_start_time, logical_end_time, "
            "est_completion_time, njobs, fraction_done, nerror_jobs, state, completion_time, "
            "credit_estimate, credit_canonical, credit_total, name, app_id, project_state, "
            "description, expire_time) VALUES (0, %s, 0, 0, 0, %s, 0, 0, %s, 0, 0, 0, 0, %s, %s, 0, %s, 0)",
            (int(time.time() if now is None else now), njobs, bj.BATCH_IN_PROGRESS, name, app_id, description))


def undo_create_work(names: list[str], batch: int = 0) -> list[Statement]:
    """Remove what a failed create_work run made: it inserts in pieces, not in one transaction."""
    out = []
    for marks, chunk in _chunks(names):
        out.append((f"DELETE FROM result WHERE workunitid IN (SELECT id FROM workunit WHERE name IN ({marks}))",
                    chunk))
        out.append((f"DELETE FROM workunit WHERE name IN ({marks})", chunk))
    if batch:
        out.append(("DELETE FROM batch WHERE id=%s", (batch,)))
    return out


def abort_batch(batch: int, now: float | None = None) -> list[Statement]:
    """Cancel a batch's jobs the way BOINC's cancel_jobs does: unsent results end unneeded,
    the unfinished workunits get WU_ERROR_CANCELLED and go back to the transitioner, the
    batch is marked aborted. The first two statements' row counts are the results and the
    jobs cancelled."""
    when = int(time.time() if now is None else now)
    states = bj.RESULT_SERVER_STATES
    return [
        ("UPDATE result SET server_state=%s, outcome=%s WHERE batch=%s AND server_state=%s",
         (states["over"], bj.RESULT_OUTCOME_DIDNT_NEED, batch, states["unsent"])),
        ("UPDATE workunit SET error_mask=error_mask|%s, transition_time=%s WHERE batch=%s "
         "AND canonical_resultid=0 AND error_mask=0", (bj.WU_ERROR_CANCELLED, when, batch)),
        ("UPDATE batch SET state=%s WHERE id=%s", (bj.BATCH_ABORTED, batch)),
    ]
