"""The batch life cycle in the apache service (the rules: boinc/lifecycle.py).

`boincserver-jobs retire ID`: the batch retired, refused while a job of it is pending.
`boincserver-jobs clean-batches`: the project's periodic task (config.xml's <tasks>, run by
bin/start --cron every 5 minutes; also run on demand): expired batches retired, then each
retired batch whose work is all finished removed: its staged inputs nothing else uses, its
outputs, its database rows. Prints what it did as one JSON line (the task's log keeps them).

prepare_project: what the makeproject job does for it at every start (batch_file_assoc, the
task in config.xml).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from boincserver.boinc import configxml, database
from boincserver.boinc import jobs as bj
from boincserver.boinc import lifecycle as bl
from boincserver.container import common
from boincserver.container.common import ProjectFolder, Refused

POSTPONED = "a submission is running (create_work or boincserver-jobs submit): the clean-up waits for the next run"
BUSY = "another clean-up is running"


def retire(project: ProjectFolder, args: list[str]) -> dict:
    """Retire batch args[0]; its rows and files go at the next clean-up once all is finished."""
    batch = int(args[0])
    cursor = project.cursor()
    cursor.execute(database.BATCH_STATE, (batch,))
    row = cursor.fetchone()
    if row is None:
        raise Refused(f"no batch {batch} (see `boincserver batch list`)")
    cursor.execute(database.BATCH_PENDING, (batch,))
    try:
        changed = bl.check_retirable(batch, row[0], cursor.fetchone()[0])
    except bl.LifecycleError as exc:
        raise Refused(str(exc)) from None
    if changed:
        cursor.execute(database.RETIRE_BATCH, (batch,))
    return {"batch": batch, "state": bj.batch_state(bl.BATCH_RETIRED), "was_retired": not changed}


def running_commands() -> list[list[str]]:
    """The command lines of the other processes this container can see."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                data = f.read()
        except OSError:
            continue  # gone, or not ours
        found.append([a.decode(errors="replace") for a in data.split(b"\0") if a])
    return found


def submission_running() -> bool:
    return bl.submission_running(running_commands())


def _pages(cursor, statement: Callable[[int], tuple[str, tuple]]) -> Iterator[tuple]:
    """The rows of an (id, ...) query ordered by id, read a page at a time: `statement(last)`
    is the page after id `last`."""
    last = 0
    while True:
        cursor.execute(*statement(last))
        rows = list(cursor.fetchall())
        yield from rows
        if len(rows) < bl.PAGE:
            return
        last = rows[-1][0]


class Cleaner:
    """One clean-up of the retired batches whose work is all finished."""

    def __init__(self, project: ProjectFolder, now: float, busy: Callable[[], bool] = submission_running):
        self.project, self.now, self.busy = project, now, busy
        self.cursor = project.cursor()
        config = (project.root / "config.xml").read_text()
        self.fanout = int(configxml.get_element(config, "uldl_dir_fanout") or bj.DEFAULT_FANOUT)
        self.last_seen = 0  # the highest workunit id whose xml_doc was read

    def inputs_of(self, batches: list[int]) -> set[str]:
        names: set[str] = set()
        for batch in batches:
            for wu_id, xml_doc in _pages(self.cursor, lambda last: (database.BATCH_WORKUNIT_DOCS,
                                                                          (batch, last, bl.PAGE))):
                names |= bl.staged_names(xml_doc)
                self.last_seen = max(self.last_seen, wu_id)
            names |= {r[0] for r in common.query_all(self.cursor, [(database.BATCH_JOB_FILES, (batch,))])}
        return names

    def used_elsewhere(self, batches: list[int], names: set[str]) -> set[str]:
        """Those of `names` another batch's (or no batch's) workunit names, or job_file keeps."""
        used: set[str] = set()
        for wu_id, xml_doc in _pages(self.cursor, lambda last: database.workunit_docs_outside(batches, last)):
            used |= bl.staged_names(xml_doc) & names
            self.last_seen = max(self.last_seen, wu_id)
        return used

    def kept_by_job_file(self, batches: list[int], names: set[str]) -> set[str]:
        return {r[0] for r in common.query_all(self.cursor, database.job_files_kept(sorted(names), batches, self.now))}

    def named_since(self, names: set[str]) -> set[str]:
        """Those of `names` that workunits made since the last read name (any batch)."""
        used: set[str] = set()
        for wu_id, xml_doc in _pages(self.cursor, lambda last: (database.WORKUNIT_DOCS_AFTER,
                                                                      (max(last, self.last_seen), bl.PAGE))):
            used |= bl.staged_names(xml_doc) & names
            self.last_seen = max(self.last_seen, wu_id)
        return used

    def delete_files(self, names: list[str]) -> list[str] | None:
        """The staged inputs deleted in short bursts, each after checking that no submission
        runs and that no workunit made since names one; None if a submission started (those
        deleted so far were named by nothing; the rest wait for the next run)."""
        deleted: list[str] = []
        left = list(names)
        while left:
            if self.busy():
                return None
            keep = self.named_since(set(left))
            left = [n for n in left if n not in keep]
            started, done = time.monotonic(), 0
            while done < len(left) and time.monotonic() - started < bl.DELETE_BURST_SECONDS:
                for relpath in bl.staged_files(left[done], self.fanout):
                    try:
                        os.unlink(self.project.root / relpath)
                    except FileNotFoundError:
                        pass
                done += 1
            deleted += left[:done]
            left = left[done:]
        return deleted

    def purge(self, batch: int) -> tuple[int, int]:
        """The batch's finished workunits and their results out of the database."""
        workunits = results = 0
        while True:
            self.cursor.execute(database.FINISHED_WORKUNIT_IDS, (batch, bl.PAGE))
            ids = [r[0] for r in self.cursor.fetchall()]
            if not ids:
                return workunits, results
            counts = common.execute_all(self.cursor, database.purge_workunits(ids))
            results += counts[0]
            workunits += counts[-1]

    def clean(self, batches: list[int]) -> dict:
        """Everything of these finished retired batches; a report of what went."""
        candidates = self.inputs_of(batches)
        names = bl.files_to_delete(candidates, self.used_elsewhere(batches, candidates),
                                   self.kept_by_job_file(batches, candidates))
        deleted = self.delete_files(names)
        if deleted is None:
            return {"postponed": POSTPONED}
        common.execute_all(self.cursor, database.delete_job_files(deleted))
        report = {"inputs_deleted": len(deleted), "inputs_kept": len(candidates) - len(deleted), "batches": []}
        for batch in batches:
            outputs = self.project.root / "results" / str(batch)
            nfiles = 0
            try:
                if outputs.exists():
                    nfiles = len(os.listdir(outputs))
                    shutil.rmtree(outputs)
            except OSError as exc:  # its rows stay, so the next run tries again
                report["batches"].append({"batch": batch, "error": f"outputs not deleted: {exc}"})
                continue
            workunits, results = self.purge(batch)
            gone = common.execute_all(self.cursor, database.delete_retired_batch(batch))[-1]
            report["batches"].append({"batch": batch, "jobs_purged": workunits, "results_purged": results,
                                      "outputs_deleted": nfiles, "batch_deleted": bool(gone)})
        return report


def expire(project: ProjectFolder, now: float) -> list[int]:
    """Retire the expired batches, their unfinished jobs cancelled first; their ids."""
    cursor = project.cursor()
    cursor.execute(database.EXPIRED_BATCHES, (int(now),))
    expired = [r[0] for r in cursor.fetchall()]
    for batch in expired:
        common.execute_all(cursor, database.expire_batch(batch, now))
    return expired


@contextmanager
def task_lock(root: Path) -> Iterator[bool]:
    """BOINC's lock of this task (sched/start get_task_lock_name: pid_HOST/OUTPUT.lock, taken
    with lockf), so that a run by hand and bin/start's never overlap: bin/start's holds it
    already (the lock passes through exec, and a process may take its own lock again); a
    run by hand while another runs gets False."""
    folder = root / f"pid_{socket.gethostname().split('.')[0]}"
    folder.mkdir(exist_ok=True)
    with open(folder / f"{bl.TASK_OUTPUT}.lock", "w") as f:
        try:
            fcntl.lockf(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True


def clean_batches(project: ProjectFolder, args: list[str], *, now: float | None = None,
                  busy: Callable[[], bool] = submission_running) -> dict:
    """The periodic task: expired batches retired, finished retired batches removed."""
    now = time.time() if now is None else now
    report: dict = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
    with task_lock(project.root) as locked:
        if not locked:
            return {**report, "skipped": BUSY}
        report["expired"] = expire(project, now)
        cursor = project.cursor()
        cursor.execute(database.RETIRED_PROGRESS)
        progress = [bl.Progress(*(int(v or 0) for v in row)) for row in cursor.fetchall()]
        report["waiting"] = [p.report() for p in progress if not p.finished]
        finished = [p.batch for p in progress if p.finished]
        report.update(Cleaner(project, now, busy).clean(finished) if finished else {"batches": []})
    return report


COMMANDS = {"retire": retire, "clean-batches": clean_batches}


def prepare_project(project_root: Path, db_settings: dict[str, str]) -> list[str]:
    """At every start: the batch_file_assoc table BOINC's job_file.php writes to, and the
    clean-up task in config.xml (a task there already, even disabled, is left alone); what
    changed."""
    changed = []
    config = project_root / "config.xml"
    if common.replace_file(config, bl.config_with_tasks(config.read_text())):
        changed.append(f"config.xml (task {bl.TASK_COMMAND!r})")
    conn = common.connect(db_settings)
    try:
        common.execute_all(conn.cursor(), [(database.CREATE_BATCH_FILE_ASSOC, ())])
    finally:
        conn.close()
    return changed
