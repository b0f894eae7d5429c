"""BOINC applications as files: names, version folders, version.xml, job.xml, templates, daemons.

What server_release 1.6.2's tools expect (tools/update_versions, tools/xadd,
tools/process_input_template.cpp, sched/sample_assimilator.cpp):

- An app is a `<app>` in project.xml, put into the database by `bin/xadd`.
- A version is a folder `apps/APP/VERSION/PLATFORM[__PLANCLASS]/` holding the files, an
  optional `version.xml` and, for each file, an optional `FILE.sig`; `bin/update_versions`
  signs the files that have no .sig with the project's code-signing key and copies them into
  `download/` under their (physical) names, which must never change content: a new file
  content needs a new name. VERSION is "M.mm"; its number is 100*M + mm.
- The input template `templates/APP_in` numbers the input files (file_info/number) and gives
  each its open name; the output template `templates/APP_out` names outputs <OUTFILE_n/>.
  Values such as max_error_results in a template override create_work's options, so the
  templates written here carry none: the options stay with create-work.
- sample_assimilator moves the canonical result's outputs to
  `results/BATCH/WU__file_OPENNAME` (from bin/, its default --outdir is ../results) and
  writes `results/BATCH/WU_error` (the error mask) for a job that failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from boincserver.boinc import configxml

APP_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
PLATFORM = re.compile(r"[A-Za-z0-9_.-]+(__[A-Za-z0-9_.-]+)?")
OPEN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_PLATFORM = "x86_64-pc-linux-gnu"
FIRST_VERSION = 100  # "1.00"
DEFAULT_MAX_OUTPUT_BYTES = 50_000_000
VALIDATOR = "sample_trivial_validator"
ASSIMILATOR = "sample_assimilator"


class AppError(ValueError):
    """A value BOINC cannot use for an app; the message says which and why, `advice` the fix
    (also in str(), for programs that print only that)."""

    def __init__(self, message: str, advice: str | None = None):
        super().__init__(message)
        self.message = message
        self.advice = advice

    def __str__(self) -> str:
        return self.message + (f" Fix: {self.advice}" if self.advice else "")


def check_app_name(name: str) -> str:
    if not isinstance(name, str) or not APP_NAME.fullmatch(name):
        raise AppError(f"app name {name!r} is not valid: use a lowercase letter, then lowercase "
                       "letters, digits or '_' (at most 63), e.g. 'uppercase'")
    return name


def check_platform(platform: str) -> str:
    if not PLATFORM.fullmatch(platform or ""):
        raise AppError(f"platform {platform!r} is not valid: a BOINC platform name such as "
                       f"{DEFAULT_PLATFORM!r}, optionally followed by __PLANCLASS")
    return platform


def check_open_name(name: str) -> str:
    if not OPEN_NAME.fullmatch(name or "") or name in (".", ".."):
        raise AppError(f"file name {name!r} is not valid: use letters, digits, '.', '_' or '-'")
    return name


def check_output_name(name: str) -> str:
    """An output's open name: the client renames slot/NAME into the project folder after the
    app exits (copy_file), so NAME must be a plain name in the slot."""
    if "/" in (name or "") or "\\" in (name or "") or ".." in (name or ""):
        raise AppError(f"output name {name!r} reaches outside the job's slot folder",
                       advice="name a file the app writes in its working folder, e.g. 'out.txt'")
    return check_open_name(name)


# Files the client and the BOINC API keep in a slot folder (lib/app_ipc.h, lib/common_defs.h):
# a version file of that name would be overwritten or taken for the client's own.
SLOT_RESERVED = ("init_data.xml", "stderr.txt", "stdout.txt", "trickle_up.xml", "boinc_task_state.xml")
SLOT_RESERVED_PREFIX = "boinc_"


def check_version_file_name(name: str) -> str:
    """A file of an app version by its logical name, as the app opens it in the slot."""
    check_open_name(name)
    if name in SLOT_RESERVED or name.startswith(SLOT_RESERVED_PREFIX):
        raise AppError(f"file name {name!r} is one the BOINC client uses in a job's folder",
                       advice="rename the file")
    if name.endswith(".sig"):
        raise AppError(f"file name {name!r} ends in .sig, which update_versions takes for a signature",
                       advice="rename the file")
    return name


def plan_class_of(platform: str) -> str:
    """The plan class of a version folder's name, as update_versions splits it:
    'x86_64-pc-linux-gnu__docker' -> 'docker', 'x86_64-pc-linux-gnu' -> ''."""
    parts = platform.split("__")
    return parts[1] if len(parts) > 1 else ""


def version_dir(num: int) -> str:
    """BOINC's version folder name for a version number: 100 -> '1.00', 712 -> '7.12'."""
    return f"{num // 100}.{num % 100:02d}"


def parse_version_dir(name: str) -> int | None:
    """update_versions' parse_version: 'M.mm' -> 100*M + mm, 'N' -> N; None if not a version."""
    parts = name.split(".")
    if not parts[0].isdigit():
        return None
    if len(parts) > 1:
        if not parts[1].isdigit():
            return None
        return int(parts[1]) + 100 * int(parts[0])
    return int(parts[0])


def next_version(existing_dirs: list[str]) -> int:
    nums = [n for n in (parse_version_dir(d) for d in existing_dirs) if n is not None]
    return max(nums) + 1 if nums else FIRST_VERSION


@dataclass(frozen=True)
class VersionFile:
    """One file of an app version: its name in download/ and the name the app opens."""

    physical_name: str
    logical_name: str | None = None
    main_program: bool = False
    copy_file: bool = False


def physical_name(app: str, num: int, platform: str, logical: str) -> str:
    """A download name unique to (app, version, platform, file): files there never change."""
    return f"{app}_{version_dir(num)}_{platform}_{logical}"


API_VERSION = re.compile(rb"API_VERSION_([0-9]+\.[0-9]+\.[0-9]+)\x00")


def api_version(executable: bytes) -> str | None:
    """The BOINC API version compiled into an app (update_versions greps `strings` for it)."""
    m = API_VERSION.search(executable)
    return m.group(1).decode() if m else None


def version_xml(files: list[VersionFile], is_wrapper: bool = False, api: str | None = None) -> str:
    out = ["<version>"]
    for f in files:
        out.append("    <file>")
        out.append(f"        <physical_name>{escape(f.physical_name)}</physical_name>")
        if f.logical_name:
            out.append(f"        <logical_name>{escape(f.logical_name)}</logical_name>")
        if f.main_program:
            out.append("        <main_program/>")
        if f.copy_file:
            out.append("        <copy_file/>")
        out.append("    </file>")
    if is_wrapper:
        out.append("    <is_wrapper/>")
    if api:
        out.append(f"    <api_version>{api}</api_version>")
    out.append("</version>")
    return "\n".join(out) + "\n"


def job_xml(application: str, stdin: str | None = None, stdout: str | None = None,
            command_line: str | None = None) -> str:
    """BOINC wrapper's job.xml: one task running `application` (a logical name)."""
    out = ["<job_desc>", "    <task>", f"        <application>{escape(application)}</application>"]
    if stdin:
        out.append(f"        <stdin_filename>{escape(stdin)}</stdin_filename>")
    if stdout:
        out.append(f"        <stdout_filename>{escape(stdout)}</stdout_filename>")
    if command_line:
        out.append(f"        <command_line>{escape(command_line)}</command_line>")
    out += ["        <append_cmdline_args/>", "    </task>", "</job_desc>"]
    return "\n".join(out) + "\n"


def input_template(inputs: list[str]) -> str:
    """templates/APP_in: one numbered input per open name, copied into the slot.

    Every input is <no_delete/>: this tool stages inputs under their content's name (jf_MD5),
    so one file serves every job with that content, and sched/file_deleter.cpp would otherwise
    delete it with the first such job to finish, under the others still waiting for it
    (BUDA's templates mark shared files the same way, html/user/buda.php)."""
    out = ["<input_template>"]
    for i, _ in enumerate(inputs):
        out += ["    <file_info>", f"        <number>{i}</number>", "        <no_delete/>", "    </file_info>"]
    out.append("    <workunit>")
    for i, name in enumerate(inputs):
        out += ["        <file_ref>", f"            <file_number>{i}</file_number>",
                f"            <open_name>{escape(name)}</open_name>", "            <copy_file/>",
                "        </file_ref>"]
    out += ["    </workunit>", "</input_template>"]
    return "\n".join(out) + "\n"


def output_template(outputs: list[str], max_nbytes: int = DEFAULT_MAX_OUTPUT_BYTES) -> str:
    """templates/APP_out: one uploaded output per open name."""
    out = ["<output_template>"]
    for i, _ in enumerate(outputs):
        out += ["    <file_info>", f"        <name><OUTFILE_{i}/></name>", "        <generated_locally/>",
                "        <upload_when_present/>", f"        <max_nbytes>{max_nbytes}</max_nbytes>",
                "        <url><UPLOAD_URL/></url>", "    </file_info>"]
    out.append("    <result>")
    for i, name in enumerate(outputs):
        out += ["        <file_ref>", f"            <file_name><OUTFILE_{i}/></file_name>",
                f"            <open_name>{escape(name)}</open_name>", "            <copy_file/>",
                "        </file_ref>"]
    out += ["    </result>", "</output_template>"]
    return "\n".join(out) + "\n"


def template_input_count(template: str) -> int:
    """How many input files a job of the app takes (one <file_info> each in templates/APP_in)."""
    return len(re.findall(r"<file_info>", template))


# What update_versions prints when it leaves a version out: it exits 0 all the same.
UPDATE_VERSIONS_REFUSALS = ("Error", "not present", "skipping")


def update_versions_refused(output: str) -> bool:
    """Whether `update_versions --noconfirm`'s output says the version was not added."""
    return any(word in output for word in UPDATE_VERSIONS_REFUSALS)


def apps_from_rows(rows: list[tuple]) -> list[dict]:
    """`app list`'s apps from (app name, friendly name, version_num, platform, plan_class,
    deprecated) rows, versions in row order; an app without versions has a row of NULLs."""
    apps: dict[str, dict] = {}
    for name, friendly, num, platform, plan, deprecated in rows:
        app = apps.setdefault(name, {"name": name, "friendly_name": friendly, "versions": []})
        if num is not None:
            app["versions"].append({"version": num, "platform": platform, "plan_class": plan,
                                    "deprecated": bool(deprecated)})
    return list(apps.values())


def project_xml_apps(text: str) -> list[str]:
    return re.findall(r"<app>\s*<name>\s*([^<\s]+)\s*</name>", text)


def project_xml_with_app(text: str, name: str, friendly: str) -> str:
    """project.xml with an <app> for `name` (unchanged if it has one)."""
    if name in project_xml_apps(text):
        return text
    entry = (f"    <app>\n        <name>{name}</name>\n"
             f"        <user_friendly_name>{escape(friendly)}</user_friendly_name>\n    </app>\n")
    end = text.rfind("</boinc>")
    if end < 0:
        raise AppError("project.xml has no </boinc>: it is not BOINC's project.xml")
    return text[:end] + entry + text[end:]


@dataclass(frozen=True)
class Daemon:
    cmd: str
    output: str
    pid_file: str

    def xml(self) -> str:
        return (f"        <daemon>\n            <cmd>{escape(self.cmd)}</cmd>\n"
                f"            <output>{self.output}</output>\n"
                f"            <pid_file>{self.pid_file}</pid_file>\n        </daemon>\n")


def app_daemons(app: str, validator: str = VALIDATOR, assimilator: str = ASSIMILATOR) -> list[Daemon]:
    """The validator and assimilator of one app, with log and pid files of their own
    (bin/start names both after the command's first word, so two apps would clash)."""
    out = []
    for kind, program in (("validator", validator), ("assimilator", assimilator)):
        if program:
            base = program.split()[0]
            out.append(Daemon(f"{program} --app {app}", f"{base}_{app}.log", f"{base}_{app}.pid"))
    return out


def daemon_from_json(entry: dict) -> Daemon:
    """A Daemon from what `app-install` is given: {"cmd": ..., "xml": Daemon.xml()}."""
    return Daemon(entry["cmd"], configxml.get_element(entry["xml"], "output") or "",
                  configxml.get_element(entry["xml"], "pid_file") or "")


def config_daemon_commands(config_xml: str) -> list[str]:
    return [c.strip() for c in re.findall(r"<daemon>.*?<cmd>(.*?)</cmd>", config_xml, re.S)]


def app_daemon_commands(commands: list[str], app: str) -> list[str]:
    """The daemon commands that serve one app (those given `--app APP`)."""
    return [c for c in commands if re.search(rf"--app\s+{re.escape(app)}(\s|$)", c)]


def missing_daemons(config_xml: str, daemons: list[Daemon]) -> list[Daemon]:
    """The daemons config.xml has no <cmd> for yet."""
    present = set(config_daemon_commands(config_xml))
    return [d for d in daemons if escape(d.cmd) not in present and d.cmd not in present]


def config_xml_with_daemons(config_xml: str, daemons: list[Daemon]) -> str:
    """config.xml with the daemons it lacks (same <cmd>) added at the end of <daemons>, or in
    a new <daemons> before </boinc> if it has none (bin/start reads daemons only there)."""
    missing = missing_daemons(config_xml, daemons)
    if not missing:
        return config_xml
    block = "".join(d.xml() for d in missing)
    end = config_xml.find("</daemons>")
    if end >= 0:
        line_start = config_xml.rfind("\n", 0, end) + 1
        return config_xml[:line_start] + block + config_xml[line_start:]
    end = config_xml.rfind("</boinc>")
    if end < 0:
        raise AppError("config.xml has no </boinc>: it is not BOINC's config.xml")
    return config_xml[:end] + "    <daemons>\n" + block + "    </daemons>\n" + config_xml[end:]


@dataclass
class AppSpec:
    """What `app add` installs: files (logical name -> source) and the app's file names."""

    name: str
    friendly_name: str = ""
    platform: str = DEFAULT_PLATFORM
    # For a native app: the main program and any other files; for a wrapper app: the worker.
    exe: str = ""
    extra_files: dict[str, str] = field(default_factory=dict)
    # Shared libraries the main program needs, copied into the slot folder (the client puts
    # the slot on LD_LIBRARY_PATH): logical name (the library's soname) -> source.
    libraries: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=lambda: ["in"])
    outputs: list[str] = field(default_factory=lambda: ["out"])
    wrapper: bool = False
    wrapper_command_line: str = ""
    wrapper_stdin: str | None = None
    wrapper_stdout: str | None = None
    validator: str = VALIDATOR
    assimilator: str = ASSIMILATOR
    # A Docker app: docker_wrapper is the main program and every file is copied into the slot
    # (the image is built there); extra_files hold the app folder's files, the Dockerfile too.
    docker: bool = False
    # The extra files that keep their executable bit (update_versions reads it from the file).
    executables: set[str] = field(default_factory=set)

    def check(self) -> "AppSpec":
        check_app_name(self.name)
        check_platform(self.platform)
        if not self.exe and not self.docker:
            raise AppError(f"app {self.name!r} has no executable: give --exe FILE or --example NAME")
        if not self.inputs or not self.outputs:
            raise AppError("an app needs at least one input and one output file name")
        for n in self.outputs:
            check_output_name(n)
        for n in list(self.inputs) + list(self.libraries):
            check_open_name(n)
        for n in self.extra_files:
            check_version_file_name(n)
        if len(set(self.inputs)) != len(self.inputs) or len(set(self.outputs)) != len(self.outputs):
            raise AppError("input and output file names must be distinct")
        if self.docker:
            self._check_docker()
        if re.search(r"['\"<>&\\]", self.friendly_name or ""):
            # xadd puts it into SQL and XML unescaped
            raise AppError(f"friendly name {self.friendly_name!r} cannot hold quotes, <, >, & or \\")
        for n in (self.wrapper_stdin, self.wrapper_stdout):
            if n is not None:
                check_open_name(n)
        return self

    def _check_docker(self) -> None:
        if plan_class_of(self.platform) != "docker" or self.wrapper or self.exe:
            raise AppError(f"a Docker app's version is PLATFORM__docker, run by docker_wrapper alone, "
                           f"not {self.platform!r}" + (" with an executable" if self.exe or self.wrapper else ""))
        slot = set(self.extra_files)
        clash = sorted(slot & (set(self.inputs) | set(self.outputs)))
        if clash:
            raise AppError(f"{clash[0]!r} is both a file of the app and a job's input or output name: they share "
                           "the job's folder", advice="rename the file or choose other --input/--output names")
        if "Dockerfile" not in slot | set(self.inputs):
            raise AppError("a Docker app needs a Dockerfile, in its folder or as a job input",
                           advice="put a Dockerfile into the app folder")


def version_layout(spec: AppSpec, num: int) -> tuple[list[tuple[str, str, bool]], list[VersionFile]]:
    """The files of a version: (physical name, source, executable) and version.xml's entries.

    For a wrapper app the sources include "wrapper:" (BOINC's wrapper) and "job.xml:" (the
    generated job description), for a Docker app "docker_wrapper:", which the caller resolves.
    """
    p = lambda logical: physical_name(spec.name, num, spec.platform, logical)  # noqa: E731
    files: list[tuple[str, str, bool]] = []
    entries: list[VersionFile] = []
    if spec.docker:
        files.append((p("docker_wrapper"), "docker_wrapper:", True))
        entries.append(VersionFile(p("docker_wrapper"), None, main_program=True, copy_file=True))
    elif spec.wrapper:
        files.append((p("wrapper"), "wrapper:", True))
        entries.append(VersionFile(p("wrapper"), None, main_program=True))
        files.append((p("worker"), spec.exe, True))
        entries.append(VersionFile(p("worker"), "worker"))
        files.append((p("job.xml"), "job.xml:", False))
        entries.append(VersionFile(p("job.xml"), "job.xml"))
    else:
        files.append((p("main"), spec.exe, True))
        entries.append(VersionFile(p("main"), None, main_program=True))
    for logical, source in spec.extra_files.items():
        files.append((p(logical), source, logical in spec.executables))
        entries.append(VersionFile(p(logical), logical, copy_file=spec.docker))
    for soname, source in spec.libraries.items():
        files.append((p(soname), source, False))
        entries.append(VersionFile(p(soname), soname, copy_file=True))
    return files, entries


def spec_job_xml(spec: AppSpec) -> str:
    return job_xml("worker", spec.wrapper_stdin, spec.wrapper_stdout, spec.wrapper_command_line or None)
