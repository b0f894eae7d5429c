"""What BOINC's docker_wrapper (samples/docker_wrapper at server_release 1.6.2, release 17)
reads from a job's slot folder (`job.toml` and the `Dockerfile`), and what it writes to the
task's stderr.txt.

- job.toml is read with a small TOML parser that knows ten keys (parse_config_file); each
  value is taken as one type, so another type stops the wrapper. A missing file is fine.
- The slot folder is mounted at job.toml's `workdir` (default /app) and `docker create` gets
  no `-w`: the container starts in the image's WORKDIR, which must therefore be that folder,
  or the program does not see its inputs and its outputs never reach the slot.
- `project_dir_mount` mounts the volunteer's whole project folder (every file of the project
  on that machine) and `mount` entries go to `docker create -v` as they are: both may reach
  outside the slot. A relative `./SUB:/path` source stays inside it (Docker CLI 23+ resolves
  it against the slot, the wrapper's working folder).
"""

from __future__ import annotations

import posixpath
import re

from boincserver.boinc.apps import AppError

JOB_TOML = "job.toml"
DOCKERFILE = "Dockerfile"
DEFAULT_WORKDIR = "/app"
# job.toml's keys at the pinned release and the type each is read as.
JOB_TOML_KEYS: dict[str, type] = {
    "workdir": str, "project_dir_mount": str, "image_name": str, "use_gpu": bool,
    "web_graphics_guest_port": int, "mount": list, "portmap": list, "build_args": str,
    "create_args": str, "verbose": int,
}
# The wrapper copies each mount into a 256-byte buffer with " -v ".
MAX_MOUNT = 240
SLOT_MOUNT = re.compile(r"\./[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*:/[A-Za-z0-9_./-]*(:(ro|rw))?")


def check_job_config(config: dict) -> str:
    """A parsed job.toml checked against what docker_wrapper reads; its workdir."""
    unknown = sorted(set(config) - set(JOB_TOML_KEYS))
    if unknown:
        raise AppError(f"{JOB_TOML} has key {unknown[0]!r}, which docker_wrapper (server release 1.6.2) does "
                       "not read", advice=f"use only: {', '.join(JOB_TOML_KEYS)}")
    for key, value in config.items():
        kind = JOB_TOML_KEYS[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if ok and kind is list:
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            shown = "an array of strings" if kind is list else {str: "a string", bool: "true or false",
                                                                  int: "an integer"}[kind]
            raise AppError(f"{JOB_TOML}: {key} = {value!r} is not {shown}, which docker_wrapper reads it as",
                           advice=f"write {key} as {shown}")
    if "project_dir_mount" in config:
        raise AppError(f"{JOB_TOML}: project_dir_mount gives the container the volunteer's whole project folder, "
                       "outside the job's slot folder",
                       advice="remove it: files the job needs go into the app folder (copied into the slot) "
                              "or are job inputs")
    for mount in config.get("mount", []):
        if not SLOT_MOUNT.fullmatch(mount) or ".." in mount.split(":")[0].split("/") or len(mount) > MAX_MOUNT:
            raise AppError(f"{JOB_TOML}: mount {mount!r} may reach outside the job's slot folder",
                           advice="mount only a sub-folder of the slot, as './SUB:/path' (or drop the mount: "
                                  "the slot itself is the working folder)")
    workdir = config.get("workdir", DEFAULT_WORKDIR)
    if not workdir.startswith("/") or ".." in workdir.split("/") or not re.fullmatch(r"[A-Za-z0-9_./-]+", workdir):
        raise AppError(f"{JOB_TOML}: workdir {workdir!r} is not an absolute path of letters, digits, '_', '.', "
                       "'-' and '/'", advice=f"write an absolute path such as {DEFAULT_WORKDIR!r}")
    return normal_path(workdir)


def normal_path(path: str) -> str:
    return posixpath.normpath(path) if path != "/" else path


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, continued lines joined,
    heredoc bodies (RUN <<EOF ... EOF) skipped."""
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    i, pending, heredoc = 0, "", None
    while i < len(lines):
        line = lines[i]
        i += 1
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        word, _, args = whole.partition(" ")
        out.append((word.upper(), args.strip()))
        m = re.search(r"<<-?\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?", args)
        if m and word.upper() in ("RUN", "COPY", "ADD"):
            heredoc = m.group(1)
    if pending.strip():
        word, _, args = pending.strip().partition(" ")
        out.append((word.upper(), args.strip()))
    return out


def dockerfile_workdir(text: str) -> str | None:
    """The WORKDIR the final stage of a Dockerfile sets (None: it sets none, so the base
    image's, unknown here); AppError if the Dockerfile has no FROM or the WORKDIR uses a
    variable (its value is known only when the image is built)."""
    instructions = _instructions(text)
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    if not starts:
        raise AppError(f"the {DOCKERFILE} has no FROM line", advice="start it with FROM and a base image")
    workdir: str | None = None
    for word, args in instructions[starts[-1] + 1:]:
        if word != "WORKDIR":
            continue
        if "$" in args or args.startswith("["):
            raise AppError(f"the {DOCKERFILE}'s WORKDIR {args!r} cannot be checked here (a variable)",
                           advice="write WORKDIR as a plain absolute path")
        path = args.strip("\"'")
        if not path.startswith("/"):
            if workdir is None:
                raise AppError(f"the {DOCKERFILE}'s WORKDIR {args!r} is relative to the base image's folder",
                               advice="write WORKDIR as an absolute path")
            path = posixpath.join(workdir, path)
        workdir = normal_path(path)
    return workdir


def check_workdir(dockerfile: str, workdir: str = DEFAULT_WORKDIR) -> None:
    """The container must start in the folder where docker_wrapper mounts the slot."""
    found = dockerfile_workdir(dockerfile)
    if found != normal_path(workdir):
        said = f"sets WORKDIR {found}" if found else "sets no WORKDIR after its last FROM"
        raise AppError(f"the {DOCKERFILE} {said}, but docker_wrapper mounts the job's folder at {workdir} "
                       "and starts the container in the image's WORKDIR",
                       advice=f"put `WORKDIR {workdir}` after the last FROM line"
                              + ("" if workdir == DEFAULT_WORKDIR else " (job.toml's workdir)"))


# docker_wrapper's cleanup runs `docker logs C` with popen: the container's stderr reaches the
# wrapper's own stderr at once, between its "running docker command: logs C" and "command
# output:" lines, and the container's stdout follows, framed by these two lines.
LOGS_COMMAND = "running docker command: logs "
OUTPUT_LINE = "command output:"
STDOUT_START, STDOUT_END = "stderr from container:", "stderr end"


def container_output(stderr_txt: str) -> str:
    """What the job's container itself wrote (its stderr, then its stdout), picked out of the
    wrapper's stderr.txt, where the docker commands and their output surround it; "" if the
    wrapper never got as far as the container's log."""
    lines = stderr_txt.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(LOGS_COMMAND)]
    if not starts:
        return ""
    rest = lines[starts[-1] + 1:]
    if rest and rest[0].startswith("program:"):
        rest = rest[1:]
    ended = rest.index(OUTPUT_LINE) if OUTPUT_LINE in rest else len(rest)
    own = rest[:ended]
    after = rest[ended + 1:]
    if after and after[0] == STDOUT_START:
        after = after[1:]
        own += after[:after.index(STDOUT_END)] if STDOUT_END in after else after
    return "\n".join(own)
