"""BUDA (BOINC Universal Docker App) science apps as files: what BOINC's own page
html/user/buda.php writes under PROJECT_ROOT/buda_apps/ and download/, byte for byte, so that
the scheduler (sched/buda.cpp) and the submission page (html/user/buda_submit.php) take an app
installed by boincserver as one made on the web. Texts are built and read here; written elsewhere.

Facts from the pinned server source (server_release 1.6.2):

- One BOINC app named `buda` runs every BUDA job (buda.php:763, buda_submit.php:417); a science
  app is a folder buda_apps/NAME (buda.php:34, buda.inc:3) holding desc.json, template_in,
  template_out and one folder per variant, CPU_PLANCLASS with 'cpu' for no plan class
  (buda.php:333): `intel_cpu`. Names starting with '.' are skipped (buda.inc:10, 25).
- Names are checked with is_valid_filename (html/inc/util_basic.inc:271-275): at most 255 of
  A-Z a-z 0-9 _ - . and space. app_action splits the file names at spaces (buda.php:597-618);
  buda_submit.php:262-270 puts `buda_apps/APP/template_in` unquoted into a shell command.
- desc.json (buda.php:548-650) is json_encode(JSON_PRETTY_PRINT) of user_id, create_time, name,
  long_name, input_file_names, output_file_names, min_nsuccess (int, > 0), max_total (int, > 0,
  >= min_nsuccess), max_delay_days (floatval, > 0), description, sci_kw (ints), submitters (user
  ids), in that order. The scheduler reads name, min_nsuccess and max_total with get<string> and
  get<int> (sched/buda.cpp:108-119) and then scans buda_apps/<name> (121-125). sci_kw must be
  an array: array_merge($yes, $app_desc->sci_kw) (buda_submit.php:375) is a TypeError on null.
- PHP's json_encode escapes '/' as '\\/' and non-ASCII as \\uXXXX (lowercase hex), writes a
  float with no fraction without '.0' (7.0 -> 7; no JSON_PRESERVE_ZERO_FRACTION) and with an
  exponent below 1e-4 or from 1e17 on (1.0e-5, 1.0e+17); JSON_PRETTY_PRINT indents by four
  spaces, writes `"key": value` and no final newline (checked against PHP 8.2's output).
- The templates (buda.php:227-274, with file_ref_in, file_info_out, file_ref_out of
  html/inc/submit_util.inc:496-528): one <file_info><no_delete/> and one file_ref (open name,
  copy_file) per input, target_nresults = min_quorum = min_nsuccess, max_total_results,
  <max_delay> = sprintf('%f', days * 86400.) (not a create_work tag: copied and ignored,
  tools/process_input_template.cpp:509-514), and <buda_app_name>, by which a job is a BUDA job
  (sched/buda.cpp:267-277); each output has max_nbytes 5000000.
- create_work gives the template's n-th file_ref the n-th file of the job's line
  (process_input_template.cpp:430-438); buda_submit.php lists a job's inputs sorted with
  sort() (130-131, 144-145, 216-228, 244-253) after checking that a job folder (scandir order)
  holds exactly them (154-167), and takes a file named `cmdline` as the job's command line
  (156-158). So inputs are kept sorted here, and with sort()'s SORT_REGULAR two numeric names
  ("10", "9") compare as numbers: such names are refused.
- The long name goes into `--sub_appname "LONG_NAME"` of a shell command (buda_submit.php:262-265)
  and create_work writes it unescaped into `   <sub_appname>%s</sub_appname>` in a char[256]
  (tools/create_work.cpp:507-513, 615-621): at most 225 characters, no '"', '$', '`', '\\'.
- result_template_file is varchar(63) (db/schema.sql:276, char[64] in db/boinc_db_types.h:512)
  and holds `buda_apps/APP/template_out` (buda_submit.php:267): an app name of at most 40.
- A variant (buda.php:316-407): each file is copied from the sandbox with its `.md5/NAME` info
  file, "MD5 SIZE" with no newline (sandbox.inc:133-137, submit_util.inc:478-480, read with
  sscanf "%s %d", 484-493), and staged by stage_file_aux (html/inc/dir_hier.inc:156-162) as
  download/HASH/buda_APP_VARIANT_MD5 (buda.php:210-212), with `PHYS.md5` = "MD5 SIZE\\n",
  unless that name is already there; HASH is filename_hash (dir_hier.inc:21-26: md5 of the
  name, hex digits 1-7, modulo uldl_dir_fanout, in hex). PHP's copy() and file_put_contents
  set no mode: 0644 under Apache's umask; the client makes the files executable (<executable/>).
- variant.json (buda.php:362-401): dockerfile, app_files, cpu_type, plan_class, file_infos,
  file_refs, dockerfile_phys, app_files_phys, in that order; file_infos/file_refs are the
  concatenated <file_info>/<file_ref> texts of file_xml_elements (buda.php:278-312), the
  Dockerfile's first with open name `Dockerfile`. The scheduler reads file_infos, file_refs,
  cpu_type and plan_class with get<string>() outside its try (sched/buda.cpp:51-79): a value of
  another type aborts the scheduler. The URL bakes in config.xml's <download_url>.
- A variant with a plan class crashes the pinned scheduler: buda_init() runs before shared
  memory is attached (sched/sched_main.cpp:506 vs 527-533) and set_have_apps_flags writes
  ssp->have_apps_for_proc_type for each such variant (sched/buda.cpp:279-288). Only "" is taken.
- add_app_files (sched/buda.cpp:246-263) copies the job's xml_doc plus the variant's file_infos
  and file_refs into a char[BLOB_SIZE] (65536, db/boinc_db_types.h:34) with strcat, no bound:
  the variant's XML is kept to half of that, the rest for the job's own.
- The page stores the names as given; boincserver also keeps the two of a job's slot folder
  apart: an app file may not be named like an input (both are copied into the slot) or like an
  output (it would be uploaded as the result), nor `variant.json` (the variant's own file).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Mapping, NamedTuple, Sequence

from boincserver.boinc import apps, docker
from boincserver.boinc.docker_wrapper import DOCKERFILE, JOB_TOML
from boincserver.boinc.jobs import DEFAULT_FANOUT, RESULT_TEMPLATE_PATH_MAX, filename_hash

BOINC_APP = "buda"
APPS_DIR = "buda_apps"
BATCHES_DIR = "buda_batches"
DOWNLOAD_DIR = "download"
DESC_JSON = "desc.json"
VARIANT_JSON = "variant.json"
TEMPLATE_IN = "template_in"
TEMPLATE_OUT = "template_out"
MD5_DIR = ".md5"
DOCKERFILE_OPEN_NAME = DOCKERFILE
CPU_TYPES = ("intel", "arm")
DEFAULT_CPU_TYPE = "intel"
NO_PLAN_CLASS_SUFFIX = "cpu"
CPU_VARIANT = f"{DEFAULT_CPU_TYPE}_{NO_PLAN_CLASS_SUFFIX}"
OUTPUT_MAX_NBYTES = 5_000_000
# len("buda_apps/") + len("/template_out") = 23 of the 63.
APP_NAME_MAX = RESULT_TEMPLATE_PATH_MAX - len(f"{APPS_DIR}//{TEMPLATE_OUT}")
LONG_NAME_MAX = 255 - len("   <sub_appname></sub_appname>")
VARIANT_XML_MAX = 65536 // 2
INT_MAX = 2**31 - 1  # the workunit's integer columns, and get<int>
FILE_MODE = 0o644
# Characters of the long name that /bin/sh reads inside "..." or that break the XML around it.
LONG_NAME_FORBIDDEN = {'"': "a double quote", "$": "'$'", "`": "a backtick", "\\": "a backslash",
                       "<": "'<'", ">": "'>'", "&": "'&'"}
NAME = re.compile(r"[A-Za-z0-9_.-]+")
MD5 = re.compile(r"[0-9a-f]{32}")
# PHP 8's is_numeric for the characters a name may hold (no spaces, no '+').
PHP_NUMERIC = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
RESERVED_VARIANT_FILES = (VARIANT_JSON,)
# docker_wrapper reads these from the slot: fraction_done is the app's progress, not an app file.
WRAPPER_READS = tuple(n for n in docker.WRAPPER_SLOT_FILES if n not in (DOCKERFILE, JOB_TOML))


class BudaError(apps.AppError):
    """A value a BUDA science app cannot have; the message says which and why, `advice` the fix."""


# -- checks ----------------------------------------------------------------------------------
def check_app_name(name: str) -> str:
    """A BUDA science app's name: a folder of buda_apps/ the pages and the shell take as it is."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or name.startswith("."):
        raise BudaError(f"BUDA app name {name!r} is not valid: BOINC's pages take letters, digits, '_', "
                        "'.' and '-' (spaces break its create_work command), not starting with '.'",
                        advice="choose a name such as 'upper' or 'my_app-2'")
    if len(name) > APP_NAME_MAX:
        raise BudaError(f"BUDA app name {name!r} has {len(name)} characters: the jobs keep "
                        f"{result_template_path(name)!r} in a column of {RESULT_TEMPLATE_PATH_MAX}",
                        advice=f"choose a name of at most {APP_NAME_MAX} characters")
    return name


def _slot_file(check, name: str) -> str:
    try:
        return check(name)
    except apps.AppError as exc:
        raise BudaError(exc.message, exc.advice) from None


def _no_duplicates(names: Sequence[str], what: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise BudaError(f"{what} {name!r} is named twice", advice=f"give each {what} its own name")
        seen.add(name)


def check_input_names(names: Iterable[str]) -> list[str]:
    """The app's input files (names in the job's folder), sorted: the order buda_submit.php
    hands a job's files to create_work, so the template names them in that order too."""
    names = list(names)
    for name in names:
        _slot_file(docker.check_input_name, name)
        if name.startswith("."):
            raise BudaError(f"input name {name!r} starts with '.': buda_submit.php skips such files in a "
                            "job's folder", advice="choose a name that does not start with '.'")
        if name == "cmdline":
            raise BudaError("input name 'cmdline' is what buda_submit.php takes for a job's command line",
                            advice="choose another name for the input")
    _no_duplicates(names, "input")
    numeric = [n for n in names if PHP_NUMERIC.fullmatch(n)]
    if len(numeric) > 1:
        raise BudaError(f"inputs {numeric[0]!r} and {numeric[1]!r} are both numbers to PHP, whose sort() "
                        "would order them unlike the job's folder", advice="add a letter to the names, e.g. 'in1'")
    return sorted(names)


def check_output_names(names: Iterable[str]) -> list[str]:
    """The app's output files (names the container writes in its working folder), as given."""
    names = list(names)
    for name in names:
        _slot_file(docker.check_output_name, name)
    _no_duplicates(names, "output")
    return names


def check_app_file_name(name: str) -> str:
    """A file of a variant besides the Dockerfile (a script, job.toml, ...), as it is named in the
    variant's folder and in the job's slot."""
    try:
        apps.check_open_name(name)
    except apps.AppError as exc:
        raise BudaError(exc.message, "rename the file: letters, digits, '.', '_' or '-' (at most 64)") from None
    if name.startswith("."):
        raise BudaError(f"app file {name!r} starts with '.', like the variant's {MD5_DIR} folder",
                        advice="rename the file")
    if name == DOCKERFILE_OPEN_NAME:
        raise BudaError(f"{DOCKERFILE_OPEN_NAME} is the variant's Dockerfile, not one of its other files",
                        advice="pass it once, as the Dockerfile")
    if name in RESERVED_VARIANT_FILES or name in apps.SLOT_RESERVED or name in WRAPPER_READS \
            or name.startswith(apps.SLOT_RESERVED_PREFIX):
        raise BudaError(f"app file {name!r} has the name of a file BOINC, docker_wrapper or buda.php keeps "
                        "beside it", advice="rename the file")
    return name


def _check_int(value, what: str, low: int, high: int = INT_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BudaError(f"{what} is {value!r}, not a whole number from {low} to {high}",
                        advice=f"give {what} as a whole number from {low} to {high}")
    return value


def check_replication(min_nsuccess: int, max_total: int) -> tuple[int, int]:
    """How many successful instances a job needs, and how many it may run at most (buda.php:577-587)."""
    _check_int(min_nsuccess, "min_nsuccess (successful instances per job)", 1)
    _check_int(max_total, "max_total (instances per job at most)", 1)
    if min_nsuccess > max_total:
        raise BudaError(f"min_nsuccess {min_nsuccess} is more than max_total {max_total}: a job could never "
                        "get that many successes", advice="make max_total at least min_nsuccess")
    return min_nsuccess, max_total


def check_max_delay_days(days: float) -> float:
    """The turnaround the app asks for, in days: positive (buda.php:588-595)."""
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not math.isfinite(days * 86400.0) \
            or days <= 0:
        raise BudaError(f"max_delay_days is {days!r}: it must be a positive number of days",
                        advice="give e.g. 7 or 0.5")
    return float(days)


def check_long_name(text: str) -> str:
    """The name volunteers see (the jobs' sub_appname)."""
    if not isinstance(text, str):
        raise BudaError(f"long name {text!r} is not text", advice="give the name as text")
    bad = [LONG_NAME_FORBIDDEN[c] for c in text if c in LONG_NAME_FORBIDDEN]
    if bad or any(ord(c) < 32 for c in text):
        shown = bad[0] if bad else "a control character"
        raise BudaError(f"long name {text!r} holds {shown}, which buda_submit.php's shell command or "
                        "create_work's XML would read as its own", advice="leave it out of the name")
    if len(text.encode("utf-8", "replace")) > LONG_NAME_MAX:
        raise BudaError(f"long name {text[:40]!r}... is longer than the {LONG_NAME_MAX} bytes create_work "
                        "keeps", advice=f"shorten it to at most {LONG_NAME_MAX}")
    return text


def check_cpu_type(cpu_type: str) -> str:
    if cpu_type not in CPU_TYPES:
        raise BudaError(f"CPU type {cpu_type!r} is not one the scheduler knows (sched/buda.cpp:72-78)",
                        advice=f"use one of {', '.join(CPU_TYPES)}")
    return cpu_type


def check_plan_class(plan_class: str) -> str:
    """Only "" (one CPU): the pinned scheduler crashes on every request once a variant has a
    plan class (set_have_apps_flags before shared memory, sched/buda.cpp:279-288)."""
    if plan_class != "":
        raise BudaError(f"plan class {plan_class!r}: the pinned BOINC scheduler crashes on every request "
                        "once a BUDA variant has a plan class (it runs buda_init() before attaching shared "
                        "memory)", advice="leave the plan class empty: the variant then uses one CPU")
    return plan_class


def check_md5(md5: str) -> str:
    if not isinstance(md5, str) or not MD5.fullmatch(md5):
        raise BudaError(f"{md5!r} is not an md5 digest", advice="give 32 lowercase hex digits")
    return md5


def check_download_url(url: str) -> str:
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s<>&\"']+", url):
        raise BudaError(f"download URL {url!r} is not an http(s) URL that can stand in XML",
                        advice="give config.xml's <download_url>, e.g. http://host/project/download")
    return url


# -- paths and names -------------------------------------------------------------------------
def app_dir(app: str) -> str:
    return f"{APPS_DIR}/{app}"


def result_template_path(app: str) -> str:
    """What the jobs' result_template_file holds (buda_submit.php:267)."""
    return f"{APPS_DIR}/{app}/{TEMPLATE_OUT}"


def variant_name(cpu_type: str = DEFAULT_CPU_TYPE, plan_class: str = "") -> str:
    """The variant's folder: CPU_PLANCLASS, or CPU_cpu without a plan class (buda.php:333)."""
    return f"{cpu_type}_{plan_class or NO_PLAN_CLASS_SUFFIX}"


def phys_name(app: str, variant: str, md5: str) -> str:
    """A variant file's name in download/: by content (buda.php:210-212)."""
    return f"buda_{app}_{variant}_{md5}"


def download_path(phys: str, fanout: int = DEFAULT_FANOUT) -> str:
    """Where stage_file_aux puts a file, relative to the project folder."""
    return f"{DOWNLOAD_DIR}/{filename_hash(phys, fanout)}/{phys}"


# -- md5 info files ----------------------------------------------------------------------------
def md5_info_text(md5: str, nbytes: int) -> str:
    """`.md5/FILE` beside a variant's (and a sandbox's) file: "MD5 SIZE", no newline
    (write_info_file, submit_util.inc:478-480)."""
    return f"{check_md5(md5)} {_check_int(nbytes, 'file size', 0, 2**63 - 1)}"


def download_md5_text(md5: str, nbytes: int) -> str:
    """`download/HASH/PHYS.md5`: "MD5 SIZE" and a newline (stage_file_aux, dir_hier.inc:161)."""
    return md5_info_text(md5, nbytes) + "\n"


def parse_md5_text(text: str) -> tuple[str, int]:
    """(md5, size) of either kind, read as parse_info_file does (submit_util.inc:484-493)."""
    words = text.split()
    if len(words) < 2 or len(words[0]) != 32 or not re.fullmatch(r"[0-9]+", words[1]):
        raise BudaError(f"md5 file {text[:80]!r} is not 'MD5 SIZE'", advice="write it again from the file")
    return words[0], int(words[1])


# -- JSON as PHP writes it -----------------------------------------------------------------
def php_float(x: float) -> str:
    """A float as PHP 8's json_encode writes it (serialize_precision -1): the shortest digits
    that read back as x, no '.0' for a whole number, an exponent outside 1e-4 .. 1e17."""
    if not math.isfinite(x):
        raise BudaError(f"{x!r} has no JSON form", advice="give a finite number")
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    sign = "-" if x < 0 else ""
    # repr() gives the same shortest digits as PHP's zend_dtoa mode 0; only the layout differs.
    _, digit_tuple, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # x = 0.DIGITS * 10**point
    if -3 <= point <= 17:
        if point <= 0:
            body = "0." + "0" * -point + digits
        elif point >= len(digits):
            body = digits + "0" * (point - len(digits))
        else:
            body = digits[:point] + "." + digits[point:]
    else:
        power = point - 1
        body = f"{digits[0]}.{digits[1:] or '0'}e{'-' if power < 0 else '+'}{abs(power)}"
    return sign + body


def php_json(value, level: int = 0) -> str:
    """json_encode($value, JSON_PRETTY_PRINT) of PHP 8: four spaces, '/' written as '\\/',
    non-ASCII as \\uXXXX; a JSON reader (nlohmann's, PHP's, Python's) reads it as json.dumps."""
    pad = "    "
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return php_float(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BudaError(f"text {value[:40]!r} is not valid Unicode", advice="remove the stray character") from None
        # '/' never occurs in json.dumps' escapes, so each one is a character of the text.
        return json.dumps(value, ensure_ascii=True).replace("/", "\\/")
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [pad * (level + 1) + php_json(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad * level + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [pad * (level + 1) + php_json(str(k)) + ": " + php_json(v, level + 1) for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad * level + "}"
    raise BudaError(f"{value!r} has no JSON form", advice="give text, numbers, lists or mappings")


# -- desc.json and the templates ------------------------------------------------------------
@dataclass(frozen=True)
class BudaApp:
    """A BUDA science app's desc.json."""

    name: str
    user_id: int
    create_time: int
    long_name: str
    input_file_names: tuple[str, ...]
    output_file_names: tuple[str, ...]
    min_nsuccess: int = 1
    max_total: int = 2
    max_delay_days: float = 7.0
    description: str = ""
    sci_kw: tuple[int, ...] = ()
    submitters: tuple[int, ...] = ()

    def can_submit(self, user_id: int) -> bool:
        """user_can_submit (buda.inc:55-65): the owner, or a listed submitter."""
        return user_id == self.user_id or user_id in self.submitters


def make_app(name: str, inputs: Iterable[str], outputs: Iterable[str], *, user_id: int, create_time: int,
             long_name: str | None = None, min_nsuccess: int = 1, max_total: int = 2,
             max_delay_days: float = 7.0, description: str = "", sci_kw: Iterable[int] = (),
             submitters: Iterable[int] = ()) -> BudaApp:
    """A science app's description, checked; the long name is the name if none is given."""
    check_app_name(name)
    check_replication(min_nsuccess, max_total)
    _check_int(user_id, "the owner's user id", 0)
    _check_int(create_time, "create_time", 0, 2**63 - 1)
    if not isinstance(description, str):
        raise BudaError(f"description {description!r} is not text", advice="give the description as text")
    submitters = tuple(dict.fromkeys(_check_int(i, "a submitter's user id", 1) for i in submitters))
    return BudaApp(
        name=name, user_id=user_id, create_time=create_time,
        long_name=check_long_name(name if long_name is None else long_name),
        input_file_names=tuple(check_input_names(inputs)), output_file_names=tuple(check_output_names(outputs)),
        min_nsuccess=min_nsuccess, max_total=max_total, max_delay_days=check_max_delay_days(max_delay_days),
        description=description, sci_kw=tuple(_check_int(k, "a science keyword id", 0) for k in sci_kw),
        submitters=submitters)


def check_app(desc: BudaApp) -> BudaApp:
    """A description as make_app makes it (checked, inputs sorted), or BudaError."""
    checked = make_app(desc.name, desc.input_file_names, desc.output_file_names, user_id=desc.user_id,
                       create_time=desc.create_time, long_name=desc.long_name, min_nsuccess=desc.min_nsuccess,
                       max_total=desc.max_total, max_delay_days=desc.max_delay_days, description=desc.description,
                       sci_kw=desc.sci_kw, submitters=desc.submitters)
    if checked != desc:
        raise BudaError(f"BUDA app {desc.name!r}: its inputs are not sorted or a submitter is listed twice",
                        advice="make the description with make_app")
    return desc


def _desc_fields(desc: BudaApp) -> dict:
    # The order app_action assigns them in (buda.php:573-627), which json_encode keeps.
    return {"user_id": desc.user_id, "create_time": desc.create_time, "name": desc.name,
            "long_name": desc.long_name, "input_file_names": list(desc.input_file_names),
            "output_file_names": list(desc.output_file_names), "min_nsuccess": desc.min_nsuccess,
            "max_total": desc.max_total, "max_delay_days": float(desc.max_delay_days),
            "description": desc.description, "sci_kw": list(desc.sci_kw), "submitters": list(desc.submitters)}


def desc_json(desc: BudaApp) -> str:
    """buda_apps/NAME/desc.json as app_action writes it (buda.php:645): no final newline."""
    return php_json(_desc_fields(desc))


def _int_list(value, what: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BudaError(f"desc.json: {what} is not a list",
                        advice=f"write {what} as a JSON array, or install the app again")
    out = []
    for v in value:
        # PHP compares loosely (in_array): "5" is user 5 too.
        if isinstance(v, str) and v.isdigit():
            v = int(v)
        out.append(_check_int(v, f"an entry of {what}", 0, 2**63 - 1))
    return tuple(out)


def parse_desc_json(text: str) -> BudaApp:
    """A desc.json, ours or the web page's: the fields the scheduler needs must be there with
    its types (sched/buda.cpp:108-119); the others may be missing (a hand-made file)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BudaError(f"desc.json is not JSON ({exc})", advice="install the app again") from None
    if not isinstance(data, dict):
        raise BudaError("desc.json is not a JSON object", advice="install the app again")
    for key, kind in (("name", str), ("min_nsuccess", int), ("max_total", int)):
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise BudaError(f"desc.json: {key} is {data.get(key)!r}; the scheduler needs {kind.__name__}",
                            advice="install the app again")

    def names(key):
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BudaError(f"desc.json: {key} is not a list of names", advice="install the app again")
        return tuple(value)

    delay = data.get("max_delay_days", 7)
    return BudaApp(
        name=data["name"], user_id=int(data.get("user_id") or 0), create_time=int(data.get("create_time") or 0),
        long_name=str(data.get("long_name") or ""), input_file_names=names("input_file_names"),
        output_file_names=names("output_file_names"), min_nsuccess=data["min_nsuccess"],
        max_total=data["max_total"],
        max_delay_days=float(delay) if isinstance(delay, (int, float)) and not isinstance(delay, bool) else 7.0,
        description=str(data.get("description") or ""), sci_kw=_int_list(data.get("sci_kw"), "sci_kw"),
        submitters=_int_list(data.get("submitters"), "submitters"))


def _with_submitters(text: str, change) -> str:
    parse_desc_json(text)  # refuses a file the scheduler could not read either
    data = json.loads(text)
    before = list(_int_list(data.get("submitters"), "submitters"))
    after = change(before)
    if after == before:
        return text
    data["submitters"] = after
    return php_json(data)


def desc_with_submitter(text: str, user_id: int) -> str:
    """desc.json with user_id among the submitters (as app_action would write it); the same
    text if it is there already."""
    _check_int(user_id, "a submitter's user id", 1)
    return _with_submitters(text, lambda ids: ids if user_id in ids else ids + [user_id])


def desc_without_submitter(text: str, user_id: int) -> str:
    """desc.json without user_id among the submitters (the owner, desc.json's user_id, keeps
    the right to submit); the same text if it was not there."""
    return _with_submitters(text, lambda ids: [i for i in ids if i != user_id])


def _file_ref_in(open_name: str) -> str:
    return f"      <file_ref>\n         <open_name>{open_name}</open_name>\n         <copy_file/>\n      </file_ref>\n"


def _file_info_out(index: int) -> str:
    return (f"    <file_info>\n        <name><OUTFILE_{index}/></name>\n        <generated_locally/>\n"
            f"        <upload_when_present/>\n        <max_nbytes>{OUTPUT_MAX_NBYTES}</max_nbytes>\n"
            "        <url><UPLOAD_URL/></url>\n    </file_info>\n")


def _file_ref_out(index: int, open_name: str) -> str:
    return (f"        <file_ref>\n            <file_name><OUTFILE_{index}/></file_name>\n"
            f"            <open_name>{open_name}</open_name>\n            <copy_file/>\n        </file_ref>\n")


def input_template(desc: BudaApp) -> str:
    """buda_apps/NAME/template_in (create_templates, buda.php:230-258)."""
    text = "<input_template>\n"
    text += "   <file_info>\n      <no_delete/>\n   </file_info>\n" * len(desc.input_file_names)
    text += "   <workunit>\n"
    text += "".join(_file_ref_in(name) for name in desc.input_file_names)
    text += f"      <target_nresults>{desc.min_nsuccess}</target_nresults>\n"
    text += f"      <min_quorum>{desc.min_nsuccess}</min_quorum>\n"
    text += f"      <max_total_results>{desc.max_total}</max_total_results>\n"
    # PHP's sprintf('%f') and Python's both round the exact value to six decimals.
    text += f"      <max_delay>{desc.max_delay_days * 86400.0:f}</max_delay>\n"
    text += f"      <buda_app_name>{desc.name}</buda_app_name>\n"
    return text + "   </workunit>\n</input_template>\n"


def output_template(desc: BudaApp) -> str:
    """buda_apps/NAME/template_out (create_templates, buda.php:262-273)."""
    text = "<output_template>\n"
    text += "".join(_file_info_out(i) for i, _ in enumerate(desc.output_file_names))
    text += "   <result>\n"
    text += "".join(_file_ref_out(i, name) for i, name in enumerate(desc.output_file_names))
    return text + "   </result>\n</output_template>\n"


# -- variants --------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantFile:
    """A file of a variant: its name in the variant's folder and the job's slot, and content."""

    open_name: str
    md5: str
    nbytes: int

    @classmethod
    def of(cls, open_name: str, data: bytes) -> "VariantFile":
        return cls(open_name, hashlib.md5(data).hexdigest(), len(data))


def file_xml(log_name: str, phys: str, md5: str, nbytes: int, download_url: str,
             fanout: int = DEFAULT_FANOUT) -> tuple[str, str]:
    """(<file_info>, <file_ref>) of a variant file as file_xml_elements writes them
    (buda.php:278-312): sticky, no_delete, executable, copied into the slot as log_name."""
    check_md5(md5)
    _check_int(nbytes, "file size", 0, 2**63 - 1)
    url = f"{check_download_url(download_url)}/{filename_hash(phys, fanout)}/{phys}"
    file_info = (f"<file_info>\n    <sticky/>\n    <no_delete/>\n    <executable/>\n    <name>{phys}</name>\n"
                 f"    <url>{url}</url>\n    <md5_cksum>{md5}</md5_cksum>\n    <nbytes>{nbytes}</nbytes>\n"
                 "</file_info>\n")
    file_ref = (f"<file_ref>\n    <file_name>{phys}</file_name>\n    <open_name>{log_name}</open_name>\n"
                "    <copy_file/>\n</file_ref>\n")
    return file_info, file_ref


def _split_variant_files(files: Iterable[VariantFile]) -> tuple[VariantFile, list[VariantFile]]:
    files = list(files)
    dockerfiles = [f for f in files if f.open_name == DOCKERFILE_OPEN_NAME]
    if len(dockerfiles) != 1:
        raise BudaError(f"a BUDA variant needs one file named {DOCKERFILE_OPEN_NAME} (it has {len(dockerfiles)})",
                        advice=f"put the image's {DOCKERFILE_OPEN_NAME} into the app's folder")
    others = sorted((f for f in files if f.open_name != DOCKERFILE_OPEN_NAME), key=lambda f: f.open_name)
    for f in others:
        check_app_file_name(f.open_name)
    _no_duplicates([f.open_name for f in others], "app file")
    return dockerfiles[0], others


def variant_json(app: str, files: Iterable[VariantFile], download_url: str, fanout: int = DEFAULT_FANOUT,
                 cpu_type: str = DEFAULT_CPU_TYPE, plan_class: str = "") -> str:
    """buda_apps/APP/VARIANT/variant.json as variant_action writes it (buda.php:362-401): the
    Dockerfile, then the other files sorted by name. All four values the scheduler reads are
    strings; '/' is written '\\/' as PHP does (nlohmann and PHP read it back as '/')."""
    check_app_name(app)
    variant = variant_name(check_cpu_type(cpu_type), check_plan_class(plan_class))
    dockerfile, others = _split_variant_files(files)
    infos, refs, phys_names = [], [], []
    for f in [dockerfile] + others:
        phys = phys_name(app, variant, f.md5)
        info, ref = file_xml(f.open_name, phys, f.md5, f.nbytes, download_url, fanout)
        infos.append(info)
        refs.append(ref)
        phys_names.append(phys)
    file_infos, file_refs = "".join(infos), "".join(refs)
    if len(file_infos) + len(file_refs) > VARIANT_XML_MAX:
        raise BudaError(f"the variant's {len(phys_names)} files make {len(file_infos) + len(file_refs)} bytes of "
                        f"XML; the scheduler copies them into each job's 65536 bytes without a bound",
                        advice=f"keep it under {VARIANT_XML_MAX} bytes: fewer files (e.g. one archive)")
    return php_json({
        "dockerfile": DOCKERFILE_OPEN_NAME, "app_files": [f.open_name for f in others], "cpu_type": cpu_type,
        "plan_class": plan_class, "file_infos": file_infos, "file_refs": file_refs,
        "dockerfile_phys": phys_names[0], "app_files_phys": phys_names[1:]})


def variant_json_with_url_base(text: str, old_base: str, new_base: str) -> str:
    """variant.json with the URLs of its file_infos moved from old_base to new_base (a prefix
    of the download URL, e.g. the project's URL base); nothing else changes. The same text if
    no URL starts with old_base."""
    old, new = old_base.rstrip("/"), new_base.rstrip("/")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BudaError(f"variant.json is not JSON ({exc})", advice="add the variant again") from None
    if not isinstance(data, dict) or not isinstance(data.get("file_infos"), str):
        raise BudaError("variant.json has no file_infos text", advice="add the variant again")
    if old == new:
        return text
    pattern = re.compile("(<url>)" + re.escape(old) + "(/[^<]*</url>)")
    moved = pattern.sub(lambda m: m.group(1) + new + m.group(2), data["file_infos"])
    if moved == data["file_infos"]:
        return text
    data["file_infos"] = moved
    return php_json(data)


# -- a whole app -----------------------------------------------------------------------------
class LayoutFile(NamedTuple):
    """A file to write: its path under PROJECT_ROOT, its bytes, its mode."""

    path: str
    data: bytes
    mode: int = FILE_MODE


def app_layout(desc: BudaApp, files: Mapping[str, bytes], download_url: str, fanout: int = DEFAULT_FANOUT,
               cpu_type: str = DEFAULT_CPU_TYPE) -> list[LayoutFile]:
    """Every file of a BUDA science app with one variant, as buda.php's app_action and
    variant_action leave them: desc.json and the templates, the variant's files with their
    `.md5/` info files and variant.json, and the staged copies in download/ with PHYS.md5.
    `files` maps open names to contents and holds the Dockerfile. Two files of equal content
    share one download name (stage_file_aux stages it once)."""
    check_app(desc)
    check_cpu_type(cpu_type)
    variant_files = [VariantFile.of(name, data) for name, data in files.items()]
    dockerfile, others = _split_variant_files(variant_files)
    for f in others:
        if f.open_name in desc.input_file_names:
            raise BudaError(f"app file {f.open_name!r} has the name of an input: both are copied into the job's "
                            "folder", advice="rename the app file or the input")
        if f.open_name in desc.output_file_names:
            raise BudaError(f"app file {f.open_name!r} has the name of an output: the client would upload the app "
                            "file as the result when the job writes none", advice="rename the app file or the output")
    variant = variant_name(cpu_type)
    base, vdir = app_dir(desc.name), f"{app_dir(desc.name)}/{variant}"
    out = [LayoutFile(f"{base}/{DESC_JSON}", desc_json(desc).encode()),
           LayoutFile(f"{base}/{TEMPLATE_IN}", input_template(desc).encode()),
           LayoutFile(f"{base}/{TEMPLATE_OUT}", output_template(desc).encode())]
    staged: dict[str, LayoutFile] = {}
    for f in [dockerfile] + others:
        out.append(LayoutFile(f"{vdir}/{f.open_name}", files[f.open_name]))
        out.append(LayoutFile(f"{vdir}/{MD5_DIR}/{f.open_name}", md5_info_text(f.md5, f.nbytes).encode()))
        path = download_path(phys_name(desc.name, variant, f.md5), fanout)
        staged.setdefault(path, LayoutFile(path, files[f.open_name]))
        staged.setdefault(path + ".md5", LayoutFile(path + ".md5", download_md5_text(f.md5, f.nbytes).encode()))
    out.append(LayoutFile(f"{vdir}/{VARIANT_JSON}",
                          variant_json(desc.name, [dockerfile] + others, download_url, fanout, cpu_type).encode()))
    return out + list(staged.values())
