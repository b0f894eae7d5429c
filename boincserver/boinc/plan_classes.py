"""plan_class_spec.xml as the scheduler of server_release 1.6.2 reads it (sched/plan_class_spec.cpp,
sched/sched_customize.cpp app_plan).

- Without the file, the scheduler knows its built-in classes (mt, nci, sse3, cuda*, ati*,
  opencl*, vbox*, wsl) and no `docker`: a `docker` version is never sent ("Unknown plan class").
- Once the file exists, the scheduler uses only it: a version whose class the file lacks is
  never sent. So the file holds a spec of every class the project's versions use.
- If the file does not parse, every plan class fails, native `mt` versions too. BOINC's parser
  wants `<plan_classes>` as the very first tag (an `<?xml ...?>` line may precede it; a
  comment may not) and every element closed; tags it does not know it skips.
- It is read again by each scheduler request (a CGI), so a new file needs no restart.

The spec equivalents below are written from what each built-in class does (sched_customize.cpp)
in the spec elements BOINC documents (AppPlanSpec); the GPU and VirtualBox classes depend on
drivers and versions a project must choose, so they are not guessed here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Iterable

from boincserver.boinc.apps import AppError

FILE_NAME = "plan_class_spec.xml"
DOCKER = "docker"
# The plan classes of the versions the scheduler may send (deprecated ones it never sends).
PLAN_CLASSES_IN_USE = "SELECT DISTINCT plan_class FROM app_version WHERE deprecated=0"

# Each class: its spec elements in order, (tag, text); text None for a flag such as <docker/>.
SPEC_EQUIVALENTS: dict[str, tuple[tuple[str, str | None], ...]] = {
    # Built-in mt: at least 2 usable CPUs, up to 64 threads, "--nthreads N" on the command
    # line, projected speed x .99 so a sequential version wins on a single CPU.
    "mt": (("min_ncpus", "2"), ("max_threads", "64"), ("nthreads_cmdline", "1"),
           ("projected_flops_scale", ".99")),
    # Built-in nci: a non-CPU-intensive app, 1% of a CPU.
    "nci": (("avg_ncpus", ".01"), ("projected_flops_scale", "1.01")),
    # Built-in sse3: the CPU reports "pni" (SSE3), 10% faster than a plain version.
    "sse3": (("cpu_feature", "pni"), ("projected_flops_scale", "1.1")),
    # wsl and docker as BOINC's own sample spec has them: the host has WSL / Docker or podman.
    "wsl": (("wsl", None),),
    DOCKER: ((DOCKER, None),),
}
# Written into every file boincserver makes: the classes most apps use, served as before the
# file existed, and docker, the reason the file exists.
ALWAYS = ("mt", DOCKER)

ADVICE_WRITE_SPEC = ("add a <plan_class> for it to the project's plan_class_spec.xml (see BOINC's "
                     "AppPlanSpec documentation), then run the command again")


def spec_xml(name: str) -> str:
    """One <plan_class> element: the spec equivalent of a class this module knows."""
    if name not in SPEC_EQUIVALENTS:
        raise AppError(f"plan class {name!r} has no spec equivalent here (known: "
                       f"{', '.join(sorted(SPEC_EQUIVALENTS))})")
    lines = ["    <plan_class>", f"        <name>{name}</name>"]
    for tag, text in SPEC_EQUIVALENTS[name]:
        lines.append(f"        <{tag}/>" if text is None else f"        <{tag}>{text}</{tag}>")
    lines.append("    </plan_class>")
    return "\n".join(lines) + "\n"


def class_names(text: str) -> list[str]:
    """The names of a plan_class_spec.xml's classes, in file order; AppError (with the fix)
    for a file the scheduler would fail to parse, which would switch off every plan class."""
    def malformed(why: str) -> AppError:
        return AppError(f"the project's {FILE_NAME} is malformed ({why}): the scheduler would send no "
                        "version that has a plan class",
                        advice=f"correct {FILE_NAME} in the project folder (`boincserver shell`), or move "
                               "it away and boincserver writes a new one")
    head = re.sub(r"^\s*<\?xml[^>]*\?>", "", text).lstrip()
    if not head.startswith("<plan_classes>"):
        raise malformed("BOINC reads <plan_classes> as its first tag, before any comment")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise malformed(str(exc)) from None
    names = []
    for i, element in enumerate(root, 1):
        if element.tag != "plan_class":
            continue
        name = (element.findtext("name") or "").strip()
        if not name:
            raise malformed(f"<plan_class> number {i} has no <name>")
        names.append(name)
    return names


def has_class(text: str | None, name: str) -> bool:
    """Whether a plan_class_spec.xml (None: no file) defines the class `name`."""
    return text is not None and name in class_names(text)


def spec_file(in_use: Iterable[str], existing: str | None) -> str | None:
    """The plan_class_spec.xml the project needs for versions of these plan classes ('' for
    none), given the file it has (None: no file); None when it needs no file.

    A project without Docker versions keeps no file (the built-ins stay on). Otherwise the
    existing file is kept as it is, its classes untouched, with the classes it lacks added
    before </plan_classes>; a new file holds ALWAYS plus the classes in use. A class in use
    that neither the file nor SPEC_EQUIVALENTS defines is refused: the scheduler would never
    send its versions once the file exists."""
    used = {c for c in in_use if c}
    if existing is None and DOCKER not in used:
        return None
    have = class_names(existing) if existing is not None else []
    wanted = list(ALWAYS) + sorted(used - set(ALWAYS))
    missing = [c for c in wanted if c not in have]
    unknown = [c for c in missing if c not in SPEC_EQUIVALENTS]
    if unknown:
        raise AppError(f"the project's versions use plan class {unknown[0]!r}, which {FILE_NAME} must then "
                       f"define, and boincserver has no spec equivalent of it (it has: "
                       f"{', '.join(sorted(SPEC_EQUIVALENTS))})", advice=ADVICE_WRITE_SPEC)
    added = "".join(spec_xml(c) for c in missing)
    if existing is None:
        return "<plan_classes>\n" + added + "</plan_classes>\n"
    if not added:
        return existing
    end = existing.rfind("</plan_classes>")
    line_start = existing.rfind("\n", 0, end) + 1
    # Before the closing tag's line when it stands alone, else right before the tag.
    cut = line_start if not existing[line_start:end].strip() else end
    sep = "" if cut == 0 or existing[cut - 1] == "\n" else "\n"
    return existing[:cut] + sep + added + existing[cut:]
