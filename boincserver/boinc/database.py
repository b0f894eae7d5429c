"""SQL over BOINC's database schema (db/schema.sql of server_release 1.6.2) for apps, jobs
and batches: statements with %s parameters (MySQLdb's style), built here, run elsewhere.

Lists of names go in pieces of IN_CHUNK, so one statement never grows without bound.
"""

from __future__ import annotations

import time
from typing import Iterator

from boincserver.boinc import jobs as bj
from boincserver.boinc import lifecycle as bl

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


# A finished workunit's transition_time: INT_MAX, never again (sched/transitioner.cpp:618-619).
TRANSITION_TIME_FINISHED = 2**31 - 1


def nudge_stalled_workunits(now: float | None = None) -> Statement:
    """Hand the transitioner every unfinished workunit with a report it has not seen.

    The scheduler stores a reported result (server_state over, received_time) and then, in a
    second statement, sets its workunit's transition_time to now. A scheduler that loses
    MariaDB in between (a crash, MariaDB restarting: it logs "can't update WUs" and replies
    all the same) leaves a result nobody looks at until the workunit's deadline, days later:
    the client's report was acknowledged. Such a workunit was last written (mod_time, which
    MariaDB sets on every change of a row) no later than the report; one the transitioner
    has handled since was written after it. Setting transition_time to now is always safe
    (the transitioner finds nothing to do and sets the next time), and it changes mod_time,
    so a workunit is nudged once for a report. Only unfinished workunits are scanned
    (TRANSITION_TIME_FINISHED excluded, through the index on transition_time). Run after faults and
    every few minutes (images/apache/boinc-daemons)."""
    when = int(time.time() if now is None else now)
    return ("UPDATE workunit SET transition_time=%s WHERE transition_time>%s AND transition_time<%s "
            "AND canonical_resultid=0 AND error_mask=0 AND EXISTS (SELECT 1 FROM result "
            "WHERE result.workunitid=workunit.id AND result.server_state=%s AND result.validate_state=0 "
            "AND result.received_time>=UNIX_TIMESTAMP(workunit.mod_time))",
            (when, when, TRANSITION_TIME_FINISHED, bj.RESULT_SERVER_STATES["over"]))


# -- the exactly-once check of a throughput run ---------------------------------------------
# db/boinc_db_types.h: a result's validate_state (1: the validator accepted it).
VALIDATE_STATE_VALID = 1
VALIDATE_STATES = {0: "not validated", 1: "valid", 2: "invalid", 3: "not checked", 4: "inconclusive", 5: "too late"}
# sample_assimilator's marker files beside the outputs in results/BATCH/.
ASSIMILATOR_MARKERS = ("_error", "_no_output_files")

# One row per workunit of a batch: what delivery_problems reads.
BATCH_WORKUNITS = ("SELECT id, name, error_mask, assimilate_state, canonical_resultid FROM workunit "
                   "WHERE batch=%s ORDER BY id")
# One row per result of a batch's workunits (result.batch is not filled in by every version).
BATCH_RESULTS = ("SELECT r.id, r.name, r.workunitid, r.server_state, r.outcome, r.validate_state, r.sent_time "
                 "FROM result r JOIN workunit w ON w.id=r.workunitid WHERE w.batch=%s ORDER BY r.id")
# How many of a batch's jobs are assimilated: sampled over a run for the jobs per second.
BATCH_ASSIMILATED = f"SELECT COUNT(*) FROM workunit WHERE batch=%s AND assimilate_state={bj.ASSIMILATE_DONE}"


def result_states(row: tuple) -> str:
    """One BATCH_RESULTS row in words: "j0_0 over, success, not validated"."""
    _, name, _, server_state, outcome, validate_state, _ = row
    server = {v: k for k, v in bj.RESULT_SERVER_STATES.items()}.get(server_state, f"server_state {server_state}")
    return (f"{name} {server}, {bj.RESULT_OUTCOMES.get(outcome, 'no outcome' if outcome == 0 else f'outcome {outcome}')}, "
            f"{VALIDATE_STATES.get(validate_state, f'validate_state {validate_state}')}")


def delivery_problems(jobs: list[str], workunits: list[tuple], results: list[tuple], batch: int,
                      outputs: dict[str, str], uploaded: dict[str, dict[str, str]],
                      reported: set[str], acked: set[str], sent_twice: set[str] = frozenset()) -> list[dict]:
    """What a run lost or did twice, one problem a line: {"kind": "lost" | "duplicate", "job",
    "what"}. Nothing when every job was delivered exactly once.

    jobs: the job names submitted. workunits: BATCH_WORKUNITS' rows; results: BATCH_RESULTS'.
    outputs: the files under results/ (path relative to it, e.g. "7/WU__file_out") and their
    MD5s. uploaded: per result name, the MD5 of each output the hosts uploaded, by open name.
    reported / acked: result names the hosts reported and the replies acknowledged;
    sent_twice: result names a host was given more than once."""
    problems: list[dict] = []

    def add(kind: str, job: str, what: str) -> None:
        problems.append({"kind": kind, "job": job, "what": what})

    by_name = {row[1]: row for row in workunits}
    results_of: dict[int, list[tuple]] = {}
    result_names: dict[int, str] = {}
    for row in results:
        results_of.setdefault(row[2], []).append(row)
        result_names[row[0]] = row[1]
    for job in jobs:
        row = by_name.get(job)
        if row is None:
            add("lost", job, "no workunit row")
            continue
        wu_id, _, error_mask, assimilate_state, canonical = row
        if error_mask:
            add("lost", job, f"error_mask {error_mask} ({', '.join(bj.error_reasons(error_mask))})")
        if assimilate_state != bj.ASSIMILATE_DONE:
            add("lost", job, f"not assimilated (assimilate_state {assimilate_state})")
        mine = results_of.get(wu_id, [])
        sent = [r for r in mine if r[6]]
        if len(sent) > 1:
            add("duplicate", job, f"sent {len(sent)} times: {', '.join(r[1] for r in sent)}")
        valid = [r for r in mine if r[3] == bj.RESULT_SERVER_STATES["over"]
                 and r[4] == bj.RESULT_OUTCOME_SUCCESS and r[5] == VALIDATE_STATE_VALID]
        if not valid:
            # Each result's states say which daemon or which request left the job behind.
            states = "; ".join(result_states(r) for r in mine) or "none made"
            add("lost", job, f"no valid result (results: {states})")
        elif len(valid) > 1:
            add("duplicate", job, f"{len(valid)} valid results: {', '.join(r[1] for r in valid)}")
        if not canonical:
            add("lost", job, "no canonical result")
            continue
        canonical_name = result_names.get(canonical, "")
        for open_name, md5 in sorted(uploaded.get(canonical_name, {}).items()):
            path = bj.output_name(batch, job, open_name)
            if path not in outputs:
                add("lost", job, f"output {path} missing")
            elif outputs[path] != md5:
                add("lost", job, f"output {path} is not what was uploaded (md5 {outputs[path]}, sent {md5})")
        if not uploaded.get(canonical_name):
            add("lost", job, f"canonical result {canonical_name or canonical} was never uploaded by a host")
        for marker in ASSIMILATOR_MARKERS:
            if f"{batch}/{job}{marker}" in outputs:
                add("lost", job, f"assimilator wrote {batch}/{job}{marker}")
    known = set(jobs)
    for path in sorted(outputs):
        folder, _, name = path.partition("/")
        job = name.split(bj.OUTPUT_SEPARATOR, 1)[0]
        if folder == str(batch) and bj.OUTPUT_SEPARATOR in name and job not in known:
            add("duplicate", job, f"output {path} of no submitted job")
    for name in sorted(reported - acked):
        add("lost", name, "reported, never acknowledged by the scheduler")
    for name in sorted(sent_twice):
        add("duplicate", name, "given to a host more than once")
    return problems


def problem_counts(problems: list[dict]) -> dict[str, int]:
    """Jobs (or results) with at least one problem of each kind."""
    return {kind: len({p["job"] for p in problems if p["kind"] == kind}) for kind in ("lost", "duplicate")}


# -- the batch life cycle (boinc/lifecycle.py) ----------------------------------------------
# db/schema_condor.sql:1-7, which make_project does not run; job_file.php inserts into it.
# MariaDB's default engine is InnoDB, as the file says.
CREATE_BATCH_FILE_ASSOC = ("CREATE TABLE IF NOT EXISTS batch_file_assoc (job_file_id integer not null, "
                           "batch_id integer not null, unique (job_file_id, batch_id))")
_RETIRED = bl.BATCH_RETIRED
BATCH_STATE = "SELECT state FROM batch WHERE id=%s"
# Jobs neither done (a canonical result, assimilated) nor failed: boinc.jobs.wu_state's pending.
BATCH_PENDING = ("SELECT COUNT(*) FROM workunit WHERE batch=%s AND error_mask=0 "
                 f"AND NOT (canonical_resultid<>0 AND assimilate_state={bj.ASSIMILATE_DONE})")
RETIRE_BATCH = f"UPDATE batch SET state={_RETIRED} WHERE id=%s AND state<>{_RETIRED}"
EXPIRED_BATCHES = f"SELECT id FROM batch WHERE expire_time>0 AND expire_time<%s AND state<>{_RETIRED} ORDER BY id"
# A workunit finished for good: assimilated, and the file_deleter through it (DONE or ERROR).
_WU_FINISHED = (f"w.assimilate_state={bj.ASSIMILATE_DONE} "
                f"AND w.file_delete_state IN ({bl.FILE_DELETE_DONE}, {bl.FILE_DELETE_ERROR})")
# One row per retired batch: id, its workunits, those not finished, its results not finished
# (not over, or outputs the file_deleter has still to delete): boinc.lifecycle.Progress.
RETIRED_PROGRESS = (
    "SELECT b.id, (SELECT COUNT(*) FROM workunit w WHERE w.batch=b.id), "
    f"(SELECT COUNT(*) FROM workunit w WHERE w.batch=b.id AND NOT ({_WU_FINISHED})), "
    "(SELECT COUNT(*) FROM result r JOIN workunit w ON w.id=r.workunitid WHERE w.batch=b.id "
    f"AND (r.server_state<>{bj.RESULT_SERVER_STATES['over']} OR r.file_delete_state={bl.FILE_DELETE_READY})) "
    f"FROM batch b WHERE b.state={_RETIRED} ORDER BY b.id")
# Pages by id: (id, xml_doc) of a batch's workunits; of every workunit after an id.
BATCH_WORKUNIT_DOCS = "SELECT id, xml_doc FROM workunit WHERE batch=%s AND id>%s ORDER BY id LIMIT %s"
WORKUNIT_DOCS_AFTER = "SELECT id, xml_doc FROM workunit WHERE id>%s ORDER BY id LIMIT %s"
# The job files job_file.php associated with a batch.
BATCH_JOB_FILES = ("SELECT f.name FROM job_file f JOIN batch_file_assoc a ON a.job_file_id=f.id "
                   "WHERE a.batch_id=%s")
# A page of a batch's finished workunits' ids (the ones a purge may take).
FINISHED_WORKUNIT_IDS = f"SELECT w.id FROM workunit w WHERE w.batch=%s AND {_WU_FINISHED} ORDER BY w.id LIMIT %s"


def _marks(values: list) -> str:
    return ",".join(["%s"] * len(values))


def workunit_docs_outside(batches: list[int], after: int, limit: int = bl.PAGE) -> Statement:
    """A page of (id, xml_doc) of the workunits of no batch in `batches`, after id `after`."""
    return (f"SELECT id, xml_doc FROM workunit WHERE id>%s AND batch NOT IN ({_marks(batches)}) "
            "ORDER BY id LIMIT %s", (after, *batches, limit))


def job_files_kept(names: list[str], batches: list[int], now: float) -> list[Statement]:
    """The names among `names` whose job_file row keeps the file: a delete_time still ahead
    (job_file.php's promise to a submitter), or an association with an existing batch other
    than `batches`."""
    return [(f"SELECT f.name FROM job_file f WHERE f.name IN ({marks}) AND (f.delete_time>%s OR EXISTS "
             "(SELECT 1 FROM batch_file_assoc a JOIN batch b ON b.id=a.batch_id WHERE a.job_file_id=f.id "
             f"AND a.batch_id NOT IN ({_marks(batches)})))", (*chunk, int(now), *batches))
            for marks, chunk in _chunks(names)]


def delete_job_files(names: list[str]) -> list[Statement]:
    """The job_file rows of deleted files, and their associations."""
    out = []
    for marks, chunk in _chunks(names):
        out.append((f"DELETE FROM batch_file_assoc WHERE job_file_id IN (SELECT id FROM job_file WHERE name IN ({marks}))",
                    chunk))
        out.append((f"DELETE FROM job_file WHERE name IN ({marks})", chunk))
    return out


def purge_workunits(ids: list[int]) -> list[Statement]:
    """Workunits and what db_purge deletes with them: their results and assignments. The
    last statement's row count is the workunits purged, the first's the results."""
    marks = _marks(ids)
    return [(f"DELETE FROM result WHERE workunitid IN ({marks})", tuple(ids)),
            (f"DELETE FROM assignment WHERE workunitid IN ({marks})", tuple(ids)),
            (f"DELETE FROM workunit WHERE id IN ({marks})", tuple(ids))]


def delete_retired_batch(batch: int) -> list[Statement]:
    """A retired batch with no workunit left, as delete_batches.php deletes it, and its file
    associations. The last statement's row count says whether the batch went."""
    return [("DELETE FROM batch_file_assoc WHERE batch_id=%s AND NOT EXISTS "
             "(SELECT 1 FROM workunit WHERE batch=%s)", (batch, batch)),
            (f"DELETE FROM batch WHERE id=%s AND state={_RETIRED} AND NOT EXISTS (SELECT 1 FROM workunit WHERE batch=%s)",
             (batch, batch))]


def expire_batch(batch: int, now: float | None = None) -> list[Statement]:
    """An expired batch: its unfinished jobs cancelled as abort_batch does, then retired (what
    BOINC's expire_batch means to do, without its undefined BATCH_STATE_EXPIRED)."""
    return abort_batch(batch, now)[:2] + [(RETIRE_BATCH, (batch,))]
