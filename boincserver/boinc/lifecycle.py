"""The batch life cycle: a batch is retired (by hand, or when its expire_time has passed), and
once every job of it is finished its rows leave the database and its files the disk. The
decisions are here; the SQL in database.py; the files and the database in container/lifecycle.py.

Facts from the pinned server source:

- batch.state (lib/common_defs.h:281-290): 0 init, 1 in progress, 2 complete ("all workunits
  have either a canonical result or an error"), 3 aborted, 4 retired ("input/output files can
  be deleted, result and workunit records can be purged"). Nothing else exists
  (html/inc/common_defs.inc:23-27).
- A batch turns COMPLETE before assimilation: get_batch_params (html/inc/submit_util.inc:186-253,
  run by the submission pages) sets it once every workunit has a canonical result or an error,
  not once the assimilator has written the outputs. So the batch's state says nothing about
  results/<batch>/: the workunit rows do.
- retire_batch (submit_util.inc:371-400; the remote RPC handle_retire_batch,
  html/user/submit_rpc_handler.php:963-975, calls it for the batch's owner) runs
  `rm -rf ../../results/<batch>` at once, sets the state RETIRED and cancels the unsent
  workunits (error_mask CANCELLED, file_delete_state READY). Jobs in progress keep running and
  their assimilation writes results/<batch>/ again; the row stays for delete_batches.
- expire_batches (html/ops/expire_batches:25-29) calls expire_batch (submit_util.inc:402-406):
  abort, retire, then `state=BATCH_STATE_EXPIRED`, a constant defined nowhere: PHP 8 stops
  with Error 'Undefined constant "BATCH_STATE_EXPIRED"' after the first batch. Its query
  (expire_time>0 and expire_time<now) takes retired batches again at every run.
- db_purge --retired_wus (sched/db_purge.cpp:26-30, 614-640, 668-691) deletes the workunits
  with file_delete_state DONE of retired batches, with their results (and assignments),
  archiving them to archives/ unless --no_archive. With --one_pass and no retired batch it
  never ends: it sleeps and `continue`s (:968-974) before the one_pass check (:979). It also
  purges a retired batch job by job, taking the input names in the workunits' xml_doc away
  before the batch's last job is over.
- delete_job_files (html/ops/delete_job_files:32-54) calls BoincJobFile::enum, which
  BoincJobFile (html/inc/submit_db.inc:121-140) does not have: it stops on any PHP. Its test
  is also inverted: a file goes only if some batch using it is still below COMPLETE (:42-48).
- delete_batches.php (html/ops/delete_batches.php:27-41) deletes retired batches that have no
  workunit left; its cleanup_results() (results/<id> of retired or unknown batches, :46-60)
  is never called (:63).
- job_file (db/schema.sql:384-390, unique name: db/constraints.sql:142-143) records the files
  job_file.php stages (upload_files, query_files), each with a delete_time before which it
  must stay; job_file.php inserts into batch_file_assoc (db/schema_condor.sql:1-7), a table
  make_project does not make.
- make_project's <tasks> (tools/make_project:246-311) hold none of these programs, and it
  copies only html/ops/*.php (py/Boinc/setup_project.py:316-319): expire_batches and
  delete_job_files are not in a project at all (delete_batches.php is, and works on PHP 8.2).
  Seen on a stack: `timeout 20 bin/db_purge --retired_wus --one_pass --no_archive` was still
  sleeping at 20 s with no retired batch ("no retired batches; sleeping 300") and ended at
  once with one.
- The transitioner sets a workunit's file_delete_state READY only once it is assimilated and
  all its results are over and validated (sched/transitioner.cpp:545-556); the file_deleter
  then deletes its inputs (not those marked <no_delete/>, which every input of this tool's
  templates is: boinc.apps.input_template) and its results' outputs in upload/, and sets
  DONE (2), or ERROR (3) if an unlink failed (sched/file_deleter.cpp:139-230, 330-440); an
  input goes with FILE.gz and FILE.md5 (:200-225).
- sample_assimilator writes results/<batch>/<job>__file_<name>, and <job>_error for a failed
  job (sched/sample_assimilator.cpp:20-22, 42-107): failed jobs write there too when assimilated.
- bin/start --cron runs each <task> of config.xml whose <period> has passed since its last
  run (sched/start:386-444): forked, under a lock file (never twice at once), in tmp_HOST with
  bin/ first on PATH, its output appended to log_HOST/<output>.

What boincserver does instead (the task `boincserver-jobs clean-batches`, and `retire`):

- Retire refuses a batch with a job still pending (neither done, that is assimilated, nor
  failed): abort it first, or wait. A retired batch keeps everything until it is finished.
- An expired batch (0 < expire_time < now, not retired) has its unfinished jobs cancelled as
  `batch abort` does, and is retired.
- A retired batch is finished when every workunit is assimilated and its file_delete_state is
  DONE or ERROR (the transitioner's and the file_deleter's own word that nothing of it is in
  use), and every result is over with no output left for the file_deleter. Then, in this
  order, so that a run cut short is taken up again by the next: its staged inputs that nothing
  else uses go (see files_to_delete), its outputs (results/<batch>/), its workunits and
  results (db_purge's rows), its batch_file_assoc rows and its batch row (delete_batches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from boincserver.boinc import jobs as bj

BATCH_RETIRED = 4
# db/boinc_db_types.h:424-430.
FILE_DELETE_READY, FILE_DELETE_DONE, FILE_DELETE_ERROR = 1, 2, 3
# A staged input's name anywhere in a workunit's xml_doc (<name>, <file_name>, its URL).
STAGED_IN_TEXT = re.compile(r"\b" + bj.STAGED_PREFIX + r"[0-9a-f]{32}\b")
# Beside a staged input in the download hierarchy: create_work's FILE.md5, a gzipped FILE.gz.
COMPANIONS = ("", ".gz", ".md5")
# Files are deleted in bursts this short, each after checking that no submission runs: a
# submission started after the check needs longer than this (an interpreter's start) before
# it can find one of them present and leave it in place.
DELETE_BURST_SECONDS = 0.02
# Rows read or deleted per statement.
PAGE = 500

TASK_COMMAND = "boincserver-jobs clean-batches"
TASK_OUTPUT = "clean_batches.out"
# bin/start --cron runs every 5 minutes on the clock (images/apache/boinc-daemons); a task
# is due when its period has passed since the start of its last run, so "5 min" would skip
# every run that starts a fraction of a second early: "4 min" runs at each.
TASK_PERIOD = "4 min"


class LifecycleError(ValueError):
    """A batch that cannot be retired now: the message says why and what to do."""


def staged_names(xml_doc: str | bytes | None) -> set[str]:
    """The staged inputs (jf_<md5>) a workunit's xml_doc names (a BLOB column: MySQLdb hands
    it over as bytes)."""
    if isinstance(xml_doc, bytes):
        xml_doc = xml_doc.decode("utf-8", "replace")
    return set(STAGED_IN_TEXT.findall(xml_doc or ""))


def staged_files(name: str, fanout: int = bj.DEFAULT_FANOUT) -> list[str]:
    """A staged input's files, relative to the project: the file, its .gz and its .md5."""
    path = "download/" + bj.dir_hier_path(name, fanout)
    return [path + suffix for suffix in COMPANIONS]


def check_retirable(batch: int, state: int, pending: int) -> bool:
    """Whether retiring changes anything (False: retired already); LifecycleError while a job
    of the batch is pending."""
    if state == BATCH_RETIRED:
        return False
    if pending:
        raise LifecycleError(
            f"batch {batch} has {pending} job(s) not finished; nothing was changed. Retire it once they are "
            f"done or failed (`boincserver results --batch {batch}`), or cancel them first with "
            f"`boincserver batch abort {batch}`")
    return True


def is_expired(expire_time: float | None, state: int, now: float) -> bool:
    return bool(expire_time) and 0 < expire_time < now and state != BATCH_RETIRED


@dataclass(frozen=True)
class Progress:
    """A retired batch's workunits, those not finished yet, and its results not finished."""

    batch: int
    workunits: int
    unfinished_workunits: int
    unfinished_results: int

    @property
    def finished(self) -> bool:
        return not self.unfinished_workunits and not self.unfinished_results

    def report(self) -> dict:
        return {"batch": self.batch, "jobs": self.workunits, "jobs_unfinished": self.unfinished_workunits,
                "results_unfinished": self.unfinished_results}


def files_to_delete(candidates: Iterable[str], used: Iterable[str], kept: Iterable[str]) -> list[str]:
    """The staged inputs of the batches being cleaned that may go: those no other workunit
    names (`used`) and no job_file row keeps (`kept`: a delete_time still ahead, or an
    association with another batch), sorted."""
    return sorted(set(candidates) - set(used) - set(kept))


def submission_running(cmdlines: Iterable[list[str]]) -> bool:
    """Whether a process among these command lines is a submission: `boincserver-jobs submit`
    (which finds staged inputs present and leaves them in place) or create_work (also run
    by BOINC's own remote submission)."""
    for args in cmdlines:
        names = [a.rsplit("/", 1)[-1] for a in args]
        if names[:1] == ["create_work"]:
            return True
        for i, name in enumerate(names[:-1]):
            if name == "boincserver-jobs" and names[i + 1] == "submit":
                return True
        if any("boincserver-jobs submit" in a for a in args):  # sh -c '... exec boincserver-jobs submit'
            return True
    return False


@dataclass(frozen=True)
class Task:
    """A periodic task of config.xml, as bin/start reads it."""

    cmd: str
    period: str
    output: str

    def xml(self) -> str:
        return (f"        <task>\n            <cmd>{self.cmd}</cmd>\n            <period>{self.period}</period>\n"
                f"            <output>{self.output}</output>\n            <disabled>0</disabled>\n        </task>\n")


TASKS = (Task(TASK_COMMAND, TASK_PERIOD, TASK_OUTPUT),)


def task_commands(config_xml: str) -> list[str]:
    return [" ".join(c.split()) for c in re.findall(r"<task>.*?<cmd>(.*?)</cmd>", config_xml, re.S)]


def config_with_tasks(config_xml: str, tasks: Iterable[Task] = TASKS) -> str:
    """config.xml with the tasks it has no <cmd> for added at the end of <tasks> (or in a new
    <tasks> before </boinc>); a task there already, even disabled, is left as it is."""
    present = set(task_commands(config_xml))
    missing = [t for t in tasks if t.cmd not in present]
    if not missing:
        return config_xml
    block = "".join(t.xml() for t in missing)
    end = config_xml.find("</tasks>")
    if end >= 0:
        line_start = config_xml.rfind("\n", 0, end) + 1
        return config_xml[:line_start] + block + config_xml[line_start:]
    end = config_xml.rfind("</boinc>")
    if end < 0:
        raise ValueError("config.xml has no </boinc>: it is not BOINC's config.xml")
    return config_xml[:end] + "    <tasks>\n" + block + "    </tasks>\n" + config_xml[end:]
