"""BOINC jobs: the jobs file, create_work's arguments and --stdin lines, the download hierarchy.

server_release 1.6.2's tools/create_work.cpp:

- Options given on the command line apply to every job; with --stdin each line of standard
  input is one job: `[--wu_name N] [--command_line "ARGS"] [--priority N] FILE...` (also
  --wu_template, --result_template, --remote_file, --target_host, --target_user). A line is
  split by lib/str_util.cpp's parse_command_line: whitespace, or '...' or "..." without
  escapes; a line is at most 4095 characters (CMD_SIZE), at most 100 words.
- Input files are found in the download hierarchy (sched/sched_util_basic.cpp dir_hier_path):
  download/<fanout dir>/<name>, the fanout dir being the hex of int(md5(name)[1:8], 16) %
  uldl_dir_fanout.
- Workunit names are unique in the database; without --wu_name create_work makes one up.

A line may also give an input as `--remote_file URL NBYTES MD5`: create_work then names it
jf_<MD5> and writes the same <file_info> (url, md5_cksum, nbytes) without opening the file
(process_input_template.cpp); for a file in the download hierarchy it is the same job, made
without hashing the file again nor writing its FILE.md5 cache (config.xml's cache_md5_info).

The jobs file of `boincserver submit` is that per-line format with the local files' paths,
plus blank lines and # comments; options may also be written with '-' (--wu-name). A job
may name its own templates (--wu_template, --result_template on its line): create_work
reads each such file once and keeps the result template's path in the workunit row.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from typing import Iterable, Iterator

from boincserver.boinc import docker_wrapper

DEFAULT_FANOUT = 1024
LINE_MAX = 4095
WORDS_MAX = 100
WU_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
STAGED_PREFIX = "jf_"
STAGED_NAME = re.compile(STAGED_PREFIX + "[0-9a-f]{32}")
# A jobs-file line without quotes, backslashes or '#': shlex would split it at its blanks, as
# str.split does (ten times faster; most lines of a big jobs file are like that).
PLAIN_LINE = re.compile(r"[^\s'\"\\#]+(?:[ \t]+[^\s'\"\\#]+)*")

# create_work options that apply to all jobs of one run, with their types.
CREATE_WORK_OPTIONS = {
    "target_nresults": int, "min_quorum": int, "max_error_results": int, "max_total_results": int,
    "max_success_results": int, "delay_bound": int, "priority": int, "rsc_fpops_est": float,
    "rsc_fpops_bound": float, "rsc_memory_bound": float, "rsc_disk_bound": float,
}
# create_work's default of target_nresults and the max_*_results (tools/backend_lib.h).
DEFAULT_RESULTS = 1
# Per-job options a jobs-file line may carry (create_work reads these from --stdin lines).
LINE_OPTIONS = {"wu_name": str, "command_line": str, "priority": int}


class JobsError(ValueError):
    """A bad job: the message says what is wrong."""


def filename_hash(name: str, fanout: int = DEFAULT_FANOUT) -> str:
    """The fanout folder of a file in BOINC's download or upload hierarchy."""
    digest = hashlib.md5(name.encode()).hexdigest()
    return f"{int(digest[1:8], 16) % fanout:x}"


def dir_hier_path(name: str, fanout: int = DEFAULT_FANOUT) -> str:
    """Where create_work looks for input `name`, relative to the download folder."""
    return f"{filename_hash(name, fanout)}/{name}"


def staged_name(md5_hex: str) -> str:
    """The download name of an input: by content, so a name never gets a second content
    (BOINC files are immutable) and equal inputs are sent once."""
    return STAGED_PREFIX + md5_hex


def check_wu_name(name: str) -> str:
    if not WU_NAME.fullmatch(name or ""):
        raise JobsError(f"job name {name!r} is not valid: use letters, digits, '_', '.' or '-' "
                        "(at most 200, starting with a letter or digit)")
    return name


def quote(value: str) -> str:
    """A value as one word for create_work's parse_command_line (no escapes exist there)."""
    if value and not re.search(r"[\s'\"]", value):
        return value
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise JobsError("a command line cannot hold both ' and \" (create_work has no escapes)")


@dataclass
class Job:
    """One job: its input files (as given), name and per-job options."""

    files: list[str]
    wu_name: str | None = None
    command_line: str | None = None
    priority: int | None = None
    lineno: int = 0
    # The job's own templates (paths relative to the project), instead of templates/APP_in
    # and APP_out: jobs of one app with different files (create-work --image).
    wu_template: str | None = None
    result_template: str | None = None


@dataclass
class LineError:
    lineno: int
    message: str

    def __str__(self) -> str:
        return f"line {self.lineno}: {self.message}"


def parse_line(text: str, lineno: int = 0) -> Job | None:
    """One jobs-file line; None for a blank or comment line; JobsError if it is bad."""
    stripped = text.strip()
    if not stripped or stripped.startswith("#"):
        return None
    if PLAIN_LINE.fullmatch(stripped):
        words = stripped.split()
    else:
        try:
            words = shlex.split(stripped, comments=True)
        except ValueError as exc:
            raise JobsError(f"cannot split the line ({exc}): close the quotes") from None
    if not words:
        return None
    job = Job(files=[], lineno=lineno)
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--"):
            key, eq, inline = word[2:].partition("=")
            key = key.replace("-", "_")
            if key not in LINE_OPTIONS:
                raise JobsError(f"unknown option {word.split('=')[0]!r}: a line may have "
                                + ", ".join("--" + k.replace("_", "-") for k in LINE_OPTIONS)
                                + " and input files")
            if eq:
                value = inline
            else:
                i += 1
                if i >= len(words):
                    raise JobsError(f"{word} needs a value")
                value = words[i]
            if key == "priority":
                try:
                    job.priority = int(value)
                except ValueError:
                    raise JobsError(f"--priority wants a whole number, not {value!r}") from None
            elif key == "wu_name":
                job.wu_name = check_wu_name(value)
            else:
                job.command_line = value
                quote(value)
        elif word.startswith("-") and word != "-":
            raise JobsError(f"unknown option {word!r}: options start with --")
        else:
            job.files.append(word)
        i += 1
    if not job.files:
        raise JobsError("no input file: a line names the job's input files")
    return job


def parse_jobs(lines: Iterable[str]) -> Iterator[Job | LineError]:
    """Jobs and bad lines, numbered from 1, one at a time (the file is never held whole)."""
    for n, text in enumerate(lines, 1):
        try:
            job = parse_line(text, n)
        except JobsError as exc:
            yield LineError(n, str(exc))
            continue
        if job is not None:
            yield job


def generated_wu_name(app: str, submission: str, index: int) -> str:
    return f"{app}_{submission}_{index}"


def stdin_line(wu_name: str, staged: list[str], command_line: str | None = None,
               priority: int | None = None, wu_template: str | None = None,
               result_template: str | None = None) -> str:
    """One line of create_work --stdin (which reads a line's --wu_template and
    --result_template as that job's own; paths relative to the project)."""
    words = ["--wu_name", wu_name]
    if command_line:
        words += ["--command_line", quote(command_line)]
    if priority is not None:
        words += ["--priority", str(priority)]
    for option, path in (("--wu_template", wu_template), ("--result_template", result_template)):
        if path:
            words += [option, check_template_path(path)]
    words += staged
    line = " ".join(words)
    if len(line) > LINE_MAX or len(words) > WORDS_MAX:
        raise JobsError(f"job {wu_name}: too long for create_work (at most {LINE_MAX} characters "
                        f"and {WORDS_MAX} words a line)")
    return line


# The workunit row keeps the result template's path in result_template_file, 64 bytes with
# its NUL (db/boinc_db_types.h); create_work refuses a longer one.
RESULT_TEMPLATE_PATH_MAX = 63
TEMPLATE_PATH = re.compile(r"templates/[A-Za-z0-9_.-]+")


def check_template_path(path: str) -> str:
    """A per-job template: a file of the project's templates/ folder, its path short enough."""
    if not TEMPLATE_PATH.fullmatch(path) or len(path) > RESULT_TEMPLATE_PATH_MAX:
        raise JobsError(f"template {path!r} is not a file of templates/ with a path of at most "
                        f"{RESULT_TEMPLATE_PATH_MAX} characters")
    return path


def check_options(options: dict) -> dict:
    """create_work options for all jobs, checked: {name: value}, None values dropped."""
    out = {}
    for key, value in options.items():
        if value is None:
            continue
        if key not in CREATE_WORK_OPTIONS:
            raise JobsError(f"unknown create_work option {key!r}")
        kind = CREATE_WORK_OPTIONS[key]
        try:
            value = kind(value)
        except (TypeError, ValueError):
            raise JobsError(f"--{key.replace('_', '-')} wants a number, not {value!r}") from None
        if key == "priority" and value < 0:
            raise JobsError("--priority must be 0 or more")
        if key != "priority" and (value < 1 if kind is int else value <= 0):
            raise JobsError(f"--{key.replace('_', '-')} must be at least 1" if kind is int
                            else f"--{key.replace('_', '-')} must be more than 0")
        out[key] = value
    if "min_quorum" in out and "target_nresults" in out and out["min_quorum"] > out["target_nresults"]:
        raise JobsError("--min-quorum cannot exceed --target-nresults")
    # create_work's defaults are all 1 (one try) and it refuses max_error_results or
    # max_success_results above max_total_results: room for the retries asked for, unless given.
    target = out.get("target_nresults", DEFAULT_RESULTS)
    if "max_total_results" not in out and ("max_error_results" in out or "max_success_results" in out):
        out["max_total_results"] = max(out.get("max_error_results", DEFAULT_RESULTS) + target,
                                       out.get("max_success_results", DEFAULT_RESULTS))
    for key in ("max_error_results", "max_success_results"):
        if out.get(key, DEFAULT_RESULTS) > out.get("max_total_results", DEFAULT_RESULTS):
            raise JobsError(f"--{key.replace('_', '-')} cannot exceed --max-total-results")
    return out


def create_work_option_args(options: dict) -> list[str]:
    """create_work's options for all jobs of one run, checked, as its arguments."""
    args = []
    for key, value in check_options(options).items():
        args += [f"--{key}", str(value)]
    return args


def create_work_command(app: str, option_args: list[str], batch: int | None = None) -> list[str]:
    """One create_work run that reads its jobs, one line each, from standard input."""
    return ["bin/create_work", "--appname", app] + (["--batch", str(batch)] if batch else []) \
        + list(option_args) + ["--stdin"]


# The options of a --stdin line and how many values each takes (create_work.cpp's
# JOB_DESC::parse_stdin_line, which takes -NAME or --NAME); every other word is an input.
STDIN_LINE_OPTIONS = {"command_line": 1, "wu_name": 1, "wu_template": 1, "result_template": 1,
                      "remote_file": 3, "target_host": 1, "target_user": 1, "priority": 1}
# A word as lib/str_util.cpp's parse_command_line reads it: '...' or "..." (no escapes; the
# closing quote ends the word), else up to the next blank.
_CREATE_WORK_WORD = re.compile(r"'[^']*'?|\"[^\"]*\"?|\S+")


def remote_file_words(url: str, nbytes: int, md5_hex: str) -> list[str]:
    """An input given by where clients fetch it, its size and its md5 (create_work names it
    jf_<md5>, see staged_name)."""
    return ["--remote_file", url, str(nbytes), md5_hex]


def with_remote_files(line: str, described) -> str:
    """A stdin line (as stdin_line makes them: options, then the inputs) with each staged
    input that `described(name)` knows, as (url, nbytes), given as --remote_file: the same job,
    for which create_work reads nothing. Any other line comes back as it is."""
    words = _CREATE_WORK_WORD.findall(line)
    i = 0
    while i < len(words) and words[i].startswith("-"):
        arity = STDIN_LINE_OPTIONS.get(words[i][2:] if words[i].startswith("--") else words[i][1:])
        if arity is None:
            return line
        i += 1 + arity
    out = words[:i]
    for name in words[i:]:
        if name.startswith("-"):
            return line  # an option after an input: not a line of stdin_line
        found = described(name) if STAGED_NAME.fullmatch(name) else None
        out += remote_file_words(found[0], found[1], name[len(STAGED_PREFIX):]) if found else [name]
    return " ".join(out)


def stdin_line_wu_name(line: str) -> str:
    """The job name of a line stdin_line made (it always comes first)."""
    words = line.split(None, 2)
    if len(words) < 2 or words[0] != "--wu_name":
        raise JobsError(f"not a create_work line of this tool: {line.strip()[:80]!r}")
    return words[1]


# -- states of workunits, results and batches (db/boinc_db_types.h) ----------------------
WU_ERRORS = {1: "couldn't send", 2: "too many errors", 4: "too many successes",
             8: "too many total results", 16: "cancelled", 32: "no canonical result"}
WU_ERROR_CANCELLED = 16
ASSIMILATE_DONE = 2
RESULT_SERVER_STATES = {"unsent": 2, "in_progress": 4, "over": 5}
RESULT_OUTCOME_SUCCESS = 1
RESULT_OUTCOME_DIDNT_NEED = 5
RESULT_OUTCOMES = {1: "success", 2: "couldn't send", 3: "client error", 4: "no reply", 5: "didn't need",
                   6: "validate error", 7: "client detached"}
STDERR_TAIL_LINES = 12
BATCH_STATES = {0: "init", 1: "in progress", 2: "complete", 3: "aborted", 4: "retired"}
BATCH_IN_PROGRESS = 1
BATCH_ABORTED = 3
JOB_STATES = ("done", "pending", "failed")


def error_reasons(mask: int) -> list[str]:
    return [text for bit, text in WU_ERRORS.items() if mask & bit]


def wu_state(error_mask: int, canonical_resultid: int, assimilate_state: int) -> str:
    """done (a canonical result, assimilated), failed (an error bit), or pending."""
    if error_mask:
        return "failed"
    if canonical_resultid and assimilate_state == ASSIMILATE_DONE:
        return "done"
    return "pending"


def batch_state(state: int) -> str:
    return BATCH_STATES.get(state, str(state))


def job_report(name: str, batch: int, error_mask: int, canonical_resultid: int, assimilate_state: int,
               unsent: int | None, in_progress: int | None, success: int | None, error: int | None) -> dict:
    """One job as `results` shows it: its state, its results by state, the reasons it failed.
    The counts are SUMs over its results (None where it has none); outputs are added later."""
    state = wu_state(error_mask, canonical_resultid, assimilate_state)
    job = {"name": name, "batch": batch, "state": state,
           "results": {"unsent": int(unsent or 0), "in_progress": int(in_progress or 0),
                       "success": int(success or 0), "error": int(error or 0)},
           "outputs": []}
    if error_mask:
        job["errors"] = error_reasons(error_mask)
    return job


def _between(text: str, start: str, end: str) -> str | None:
    i = text.find(start)
    if i < 0:
        return None
    j = text.find(end, i + len(start))
    return text[i + len(start):] if j < 0 else text[i + len(start):j]


def failure_report(result_name: str, outcome: int, exit_status: int, stderr_out: str | None,
                   lines: int = STDERR_TAIL_LINES) -> dict:
    """A result that came back failed, as `results` shows it: the client's message (e.g.
    "process exited with code 3 (0x3, -253)"), the program's exit status and the last lines
    of what it wrote to stderr. The client sends stderr_out as <message>...</message> and
    <stderr_txt>...</stderr_txt> (the tail of the slot's stderr.txt), possibly cut short."""
    text = stderr_out or ""
    message = (_between(text, "<message>", "</message>") or "").strip()
    stderr_txt = _between(text, "<stderr_txt>", "</stderr_txt>")
    if stderr_txt is None:
        stderr_txt = text
    stderr_txt = stderr_txt.replace("]]>", "")
    tail = [line for line in stderr_txt.rstrip().splitlines() if line.strip()][-lines:]
    report = {"result": result_name, "outcome": RESULT_OUTCOMES.get(outcome, str(outcome)),
              "exit_status": exit_status, "message": message, "stderr_tail": "\n".join(tail)}
    # A Docker job: the container's own words, which the wrapper's clean-up lines bury.
    container = docker_wrapper.container_output(stderr_txt)
    if container:
        report["container_output"] = "\n".join(container.splitlines()[-lines:])
    return report


def jobs_summary(jobs: list[dict]) -> dict[str, int]:
    return {s: sum(1 for j in jobs if j["state"] == s) for s in JOB_STATES}


def batch_report(batch_id: int, name: str, app: str | None, created: int, njobs: int, state: int,
                 done: int | None, failed: int | None) -> dict:
    """One batch as `batch list` shows it; done and failed are SUMs over its workunits."""
    done, failed = int(done or 0), int(failed or 0)
    return {"id": batch_id, "name": name, "app": app, "created": created, "jobs": njobs,
            "done": done, "failed": failed, "pending": njobs - done - failed, "state": batch_state(state)}


OUTPUT_SEPARATOR = "__file_"


def output_name(batch: int, wu_name: str, open_name: str) -> str:
    """Where sample_assimilator puts an output, relative to the project's results/."""
    return f"{batch}/{wu_name}{OUTPUT_SEPARATOR}{open_name}"


def outputs_of(wu_name: str, entries: Iterable[str]) -> list[tuple[str, str]]:
    """(file name, open name) of a job's outputs among the names in its batch's results folder."""
    prefix = wu_name + OUTPUT_SEPARATOR
    return [(e, e[len(prefix):]) for e in sorted(entries) if e.startswith(prefix)]
