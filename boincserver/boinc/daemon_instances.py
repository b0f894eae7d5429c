"""Parallel instances of BOINC's daemons: each takes a share of the workunits by id (`--mod N i`).

Facts from the pinned server source (server_release 1.6.2):

- These daemons take `--mod N i` and then handle only the workunits (db_purge: the rows) whose
  id % N == i; `-mod` and `--mod` are the same option (is_arg, sched/sched_util_basic.cpp:299-305):
  the transitioner (sched/transitioner.cpp:799-807), the file deleter (sched/file_deleter.cpp:
  497-504), every validator built on sched/validator.cpp (930-932) and every assimilator built on
  sched/assimilator.cpp (260-270), which are the programs sched/Makefile.am:219-262 links with
  them (sample_trivial_validator, sample_bitwise_validator, sample_substr_validator,
  script_validator; sample_assimilator, sample_dummy_assimilator, single_job_assimilator,
  script_assimilator), and db_purge (sched/db_purge.cpp:888-897).
- The feeder takes `--mod` too, but it destroys and makes anew the scheduler's shared memory
  segment when it starts (sched/feeder.cpp:855-862): two feeders of one project on one host
  wipe each other's job array. So the feeder stays one (more feeders need more schedulers).
- bin/start runs the <daemon>s whose <host> is this host (config.host when absent: sched/start:
  112-132, 467-476) and names the pid and log files after the command's first word unless the
  entry has <pid_file> and <output> (sched/start:150-177): N instances of one program need
  files of their own, or bin/start takes them for one daemon.

What is written: each daemon of a type the counts name becomes N entries, in its place, each
the original entry (its <host>, <disabled>, anything else) with ` --mod N i` at the end of
<cmd> and its <output> and <pid_file> named NAME_modN_i (the entry's own names, as boincserver
gives each app's validator and assimilator (boinc/apps.py), or bin/start's defaults).
Instances are recognised by exactly that shape, so the change is idempotent and folds back:
a count of 1 (or none) makes them one entry equal to the original again. An explicit
<pid_file>/<output> equal to bin/start's default comes back without it (the same for bin/start).
Left alone: other programs (they may not take --mod), the feeder, and entries whose command
already has a --mod of their own.
"""

from __future__ import annotations

import json
import re

from boincserver.boinc import configxml

# The daemon types of boincserver.toml's [daemon_instances] and the programs of each.
PROGRAMS = {
    "transitioner": ("transitioner",),
    "file_deleter": ("file_deleter",),
    "validator": ("sample_trivial_validator", "sample_bitwise_validator", "sample_substr_validator",
                  "script_validator"),
    "assimilator": ("sample_assimilator", "sample_dummy_assimilator", "single_job_assimilator",
                    "script_assimilator"),
    "db_purge": ("db_purge",),
}
TYPE_OF = {program: kind for kind, programs in PROGRAMS.items() for program in programs}
MAX_INSTANCES = 32
ENV = "DAEMON_INSTANCES"

_INSTANCE_CMD = re.compile(r"(.*?) --mod (\d+) (\d+)(\s*)", re.S)
_OWN_MOD = re.compile(r"(^|\s)--?mod(\s|$)")
# A whole <daemon> entry with its line's indentation and end, so that one can go or be repeated.
_DAEMON = re.compile(r"[ \t]*<daemon>.*?</daemon>[ \t]*\n?", re.S)
# bin/start's default names: COMMAND.log and COMMAND.pid.
_SUFFIX = {"output": ".log", "pid_file": ".pid"}


class DaemonInstancesError(ValueError):
    """Counts of daemon instances that cannot be used; the message says which and why."""


def check_counts(counts: object) -> dict[str, int]:
    """{daemon type: instances} as boincserver.toml's [daemon_instances] may hold it, sorted."""
    example = "e.g. transitioner = 2"
    if not isinstance(counts, dict):
        raise DaemonInstancesError(f"daemon_instances {counts!r} is not valid: a table of daemon type = "
                                   f"number of instances ({example})")
    for kind, n in counts.items():
        if kind == "feeder":
            if n == 1 and not isinstance(n, bool):
                continue
            raise DaemonInstancesError(
                "daemon_instances: the feeder runs once: each feeder makes the scheduler's shared "
                "memory anew when it starts, so two wipe each other's job array (raise work_slots "
                "for more jobs a second)")
        if kind not in PROGRAMS:
            raise DaemonInstancesError(f"daemon_instances: unknown daemon type {kind!r}: use "
                                       f"{', '.join(PROGRAMS)}")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_INSTANCES:
            raise DaemonInstancesError(f"daemon_instances: {kind} = {n!r} is not valid: use a whole number "
                                       f"from 1 to {MAX_INSTANCES}")
    return dict(sorted(counts.items()))


def to_env(counts: dict[str, int]) -> str:
    """The counts as compact JSON ("" for none: one of each)."""
    return json.dumps(check_counts(counts), separators=(",", ":")) if counts else ""


def from_env(raw: str) -> dict[str, int]:
    """What to_env() wrote, checked; "" is {}."""
    if not raw.strip():
        return {}
    try:
        counts = json.loads(raw)
    except ValueError:
        raise DaemonInstancesError(f"{raw[:60]!r} is not JSON as boincserver writes it "
                                   "(boincserver.toml's [daemon_instances])") from None
    return check_counts(counts)


def program_of(cmd: str) -> str:
    words = cmd.split()
    return words[0].rsplit("/", 1)[-1] if words else ""


def instance_name(name: str, n: int, i: int) -> str:
    """A file name of instance i of n: transitioner.pid -> transitioner_mod2_0.pid."""
    if name.startswith("/dev/"):
        return name  # /dev/null: bin/start writes no file
    stem, dot, ext = name.rpartition(".")
    if not dot or "/" in ext:
        return f"{name}_mod{n}_{i}"
    return f"{stem}_mod{n}_{i}.{ext}"


def _cmd(block: str) -> re.Match | None:
    return re.search(r"<cmd>(.*?)</cmd>", block, re.S)


def _with_cmd(block: str, cmd: str) -> str:
    m = _cmd(block)
    return block[:m.start(1)] + cmd + block[m.end(1):]


def _element(block: str, tag: str) -> re.Match | None:
    return re.search(rf"<{tag}>(.*?)</{tag}>", block, re.S)


def instance(block: str, n: int, i: int) -> str:
    """Entry i of n for a daemon entry (a <daemon> block as config.xml has it)."""
    m = _cmd(block)
    cmd = m.group(1)
    trailing = cmd[len(cmd.rstrip()):]
    out = _with_cmd(block, f"{cmd.rstrip()} --mod {n} {i}{trailing}")
    missing = []
    for tag, suffix in _SUFFIX.items():
        e = _element(out, tag)
        if e and e.group(1).strip():
            out = out[:e.start(1)] + instance_name(e.group(1).strip(), n, i) + out[e.end(1):]
        else:
            missing.append(f"<{tag}>{instance_name(program_of(cmd) + suffix, n, i)}</{tag}>")
    if missing:
        end = _cmd(out).end()
        line = out[out.rfind("\n", 0, m.start()) + 1:m.start()]
        indent = line[:len(line) - len(line.lstrip(" \t"))]
        out = out[:end] + "".join(f"\n{indent}{e}" for e in missing) + out[end:]
    return out


def _base_name(name: str, n: int, i: int) -> str | None:
    """The name instance_name() made `name` from (None: not one of its names)."""
    if name.startswith("/dev/"):
        return name
    mark = f"_mod{n}_{i}"
    stem, dot, ext = name.rpartition(".")
    was = stem.removesuffix(mark) + dot + ext if dot and stem.endswith(mark) else name.removesuffix(mark)
    return was if was != name and instance_name(was, n, i) == name else None


def original(block: str) -> str | None:
    """The entry an instance was made from, None if `block` is not one of ours."""
    m = _cmd(block)
    shape = _INSTANCE_CMD.fullmatch(m.group(1)) if m else None
    if not shape:
        return None
    base, n, i = shape.group(1) + shape.group(4), int(shape.group(2)), int(shape.group(3))
    if not 2 <= n <= MAX_INSTANCES or i >= n:
        return None
    out = _with_cmd(block, base)
    for tag, suffix in _SUFFIX.items():
        e = _element(out, tag)
        if not e:
            return None
        value = e.group(1).strip()
        if value == instance_name(program_of(base) + suffix, n, i):
            out = re.sub(rf"\n[ \t]*<{tag}>{re.escape(e.group(1))}</{tag}>", "", out, count=1)
            continue
        was = _base_name(value, n, i)
        if was is None:
            return None
        out = out[:e.start(1)] + was + out[e.end(1):]
    return out if instance(out, n, i) == block else None


def with_instances(config_xml: str, counts: dict[str, int]) -> str:
    """config.xml whose <daemons> has counts[type] instances of each daemon of that type (1 for a
    type not named); everything else as it was (the same text when nothing changes)."""
    counts = check_counts(counts)
    start, end = config_xml.find("<daemons>"), config_xml.find("</daemons>")
    if start < 0 or end < start:
        return config_xml
    start += len("<daemons>")
    seen: set[tuple[str, str]] = set()

    def entry(m: re.Match) -> str:
        was = original(m.group(0))
        block = was or m.group(0)
        cmd = _cmd(block)
        if not cmd:
            return m.group(0)
        kind = TYPE_OF.get(program_of(cmd.group(1)))
        if kind is None or _OWN_MOD.search(cmd.group(1)):
            return m.group(0)
        key = (" ".join(cmd.group(1).split()), configxml.get_element(block, "host") or "")
        if key in seen:
            return "" if was else m.group(0)  # another instance of an entry already written
        seen.add(key)
        n = counts.get(kind, 1)
        return block if n == 1 else "".join(instance(block, n, i) for i in range(n))
    return config_xml[:start] + _DAEMON.sub(entry, config_xml[start:end]) + config_xml[end:]
