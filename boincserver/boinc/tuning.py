"""How a project is set up to move many jobs a second: config.xml values and the FastCGI programs.

Measured with bench/throughput.py (README, "Performance"); each value says what it trades.

- The feeder refills the scheduler's job array (shared memory, <shmem_work_items> slots) and
  then sleeps --sleep_interval seconds (5 by default) whenever a pass added nothing or met a
  job already in the array, which is every pass under load. So at most slots/sleep jobs a
  second can be handed out: BOINC's defaults (100 slots, 5 s) cap a project at 20 jobs/s.
- Each slot holds a whole workunit row (about 66 KB, its xml_doc is a 64 KB buffer), so
  slots cost shared memory: 500 slots are about 33 MB once filled.
- The scheduler and the upload handler are CGI programs: a fork and exec per request, each
  parsing config.xml and connecting to the database. BOINC also builds them as FastCGI
  programs (`fcgi`, `fcgi_file_upload_handler`, when libfcgi is present) that serve many
  requests per process. They read config.xml, plan_class_spec.xml and the keys once, at
  start: whoever changes those must have Apache recycle them (a graceful restart). They
  reconnect to a restarted database by themselves (the scheduler pings it per request).
  A FastCGI program run by plain CGI serves one request and exits, so the swap is safe on
  any Apache. (Apache's side: images/apache/fastcgi.conf.)
- Upload certificates: each output's <file_info> carries a signature by the project's
  upload key, and the upload handler refuses a file without one, or larger than the signed
  max_nbytes, so nobody can fill the upload folder with files of their own. make_project
  turns them off; boincserver turns them on in a new project. Measured cost: the
  transitioner signs as it makes each result, about 0.3 ms of CPU a job (~2 % of the server's
  CPU a job here). The transitioner and the upload handler read the switch when they start,
  and a result made while it was off carries no signature: switched on later, the uploads
  of such results in flight are refused.
- Lost replies: the scheduler marks a job sent (server_state in progress) and then puts it in
  its reply; when MariaDB drops the connection after committing that update (a restart), the
  scheduler reads an error, leaves the job out, and the host never hears of it: the job waits
  for its deadline, days later (seen in tests/stack/test_faults.py). With <resend_lost_results>
  the scheduler compares the host's <other_results> with the jobs in progress for it and sends
  the missing ones again (sched/handle_request.cpp:1421-1434, sched/sched_resend.cpp); BOINC's
  documentation recommends it (ProjectOptions). Cost: one indexed query of the host's results
  in progress for each request that asks for work. boincserver turns it on in a new project.
"""

from __future__ import annotations

import re

from boincserver.boinc import configxml

# Seconds the feeder sleeps after a pass with nothing new (an int: BOINC parses it with atoi).
FEEDER_SLEEP_SECONDS = 1
# Slots of the scheduler's job array; the feeder asks the database for twice as many jobs,
# so that a pass still finds new ones when the first half is already in the array.
DEFAULT_WORK_SLOTS = 500
MIN_WORK_SLOTS, MAX_WORK_SLOTS = 100, 10_000
# The program each cgi-bin name runs, from BOINC's sched/ build folder.
FASTCGI_PROGRAMS = {"cgi": "fcgi", "file_upload_handler": "fcgi_file_upload_handler"}


class TuningError(ValueError):
    """A tuning value BOINC cannot use; the message says the allowed range."""


def check_work_slots(slots: int) -> int:
    if isinstance(slots, bool) or not isinstance(slots, int) or not MIN_WORK_SLOTS <= slots <= MAX_WORK_SLOTS:
        raise TuningError(f"work slots {slots!r} is not valid: use a number from {MIN_WORK_SLOTS} to "
                          f"{MAX_WORK_SLOTS} (each slot is about 66 KB of shared memory)")
    return slots


def feeder_command(cmd: str, sleep_seconds: int = FEEDER_SLEEP_SECONDS) -> str:
    """The feeder's daemon command with this --sleep_interval (added, or replaced)."""
    without = re.sub(r"\s+--?sleep_interval\s+\S+", "", cmd.strip())
    return f"{without} --sleep_interval {sleep_seconds}"


def with_upload_certificates(config_xml: str, on: bool = True) -> str:
    """config.xml that has the scheduler's side sign each output's upload and the upload
    handler check it (on), or neither (off, make_project's choice)."""
    value = "0" if on else "1"
    text = configxml.set_element(config_xml, "dont_generate_upload_certificates", value)
    return configxml.set_element(text, "ignore_upload_certificates", value)


def with_lost_results_resent(config_xml: str, on: bool = True) -> str:
    """config.xml whose scheduler sends a host again the jobs in progress for it that its
    request does not list (on), or leaves them to their deadline (off, BOINC's default)."""
    return configxml.set_element(config_xml, "resend_lost_results", "1" if on else "0")


def tuned_config(config_xml: str, work_slots: int = DEFAULT_WORK_SLOTS,
                 feeder_sleep: int = FEEDER_SLEEP_SECONDS) -> str:
    """config.xml with the job array's size, the feeder's query size and its sleep set; the
    rest of the file as it was (the same text when nothing changes)."""
    check_work_slots(work_slots)
    text = configxml.set_element(config_xml, "shmem_work_items", str(work_slots))
    text = configxml.set_element(text, "feeder_query_size", str(2 * work_slots))

    def feeder(m: re.Match) -> str:
        cmd = m.group(2)
        if cmd.split()[0] != "feeder":
            return m.group(0)
        return f"{m.group(1)}{feeder_command(cmd, feeder_sleep)}{m.group(3)}"
    return re.sub(r"(<daemon>\s*<cmd>)(.*?)(</cmd>)", feeder, text, flags=re.S)

