"""Docker jobs: image references, the Dockerfile of `create-work --image`, docker_wrapper's limits.

Facts this module encodes:

- Docker's image reference grammar (github.com/distribution/reference, reference.go and
  regexp.go): `[HOST[:PORT]/]COMPONENT[/COMPONENT]...[:TAG][@DIGEST]`, where a path component
  is `[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*` (lowercase only), a host a DNS name, an IPv4
  address or a bracketed IPv6 address, a tag `[\\w][\\w.-]{0,127}`, a digest `ALGORITHM:HEX`
  (go-digest knows sha256, sha384 and sha512); the name (without tag and digest) is at most
  255 characters, and `docker` refuses a bare 64-hex name (it reads as an image id).
- docker_wrapper of the pinned server release (samples/docker_wrapper/docker_wrapper.cpp and
  lib/util.cpp): it builds the slot folder with `docker build "." -t IMAGE -f Dockerfile` into a
  256-byte buffer (a longer command is cut silently), names the image `boinc__PROJDIR__WU` and
  the container `boinc__PROJDIR__RESULT` (lower-cased; PROJDIR is the project's folder on the
  client, its escaped master URL), creates the container in a 1024-byte buffer that is filled
  without a bound, mounts the slot at /app without `-w` (the image's WORKDIR must be /app), runs
  the image's own ENTRYPOINT and CMD, and passes the job's arguments as `-e ARGS=" a b"`
  through /bin/sh (popen): inside those double quotes `"`, `$`, a backtick and `\\` are the
  shell's, and quoting that grouped words for BOINC's client is gone.
- Words docker_wrapper takes for itself (--config F, --dockerfile F, --sporadic, --verbose)
  never reach ARGS.
"""

from __future__ import annotations

import hashlib
import json
import re

from boincserver.boinc import apps
from boincserver.boinc.docker_wrapper import DEFAULT_WORKDIR, DOCKERFILE, JOB_TOML

# -- image references -------------------------------------------------------------------------
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
PATH_COMPONENT = _ALPHANUMERIC + rf"(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{PATH_COMPONENT}(?:/{PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII)
NAME_MAX = 255
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
IMAGE_ID = re.compile(r"[a-f0-9]{64}")
REFERENCE_FORM = "[HOST[:PORT]/]NAME[:TAG][@DIGEST], e.g. python:3.12-alpine or debian:bookworm-slim"

# -- docker_wrapper at the pinned release ---------------------------------------------------
# The Docker app of `create-work --image`: docker_wrapper alone; each job brings its Dockerfile.
GENERIC_APP = "docker_run"
GENERIC_APP_FRIENDLY_NAME = "Docker images (create-work --image)"
BUILD_BUFFER = 256  # char cmd[256] of build_image(), with its final NUL
CREATE_BUFFER = 1024  # char cmd[1024] of create_container(), with its final NUL
# create_container()'s parts that do not depend on the job: `create --name `, the slot mount,
# and room for ` --cpus N.NNNNNN` and podman's ` --log-driver=k8s-file`.
CREATE_FIXED = len("create --name ") + len(' -v "./":"/app"') + 2 + len(" --cpus 1024.000000") \
    + len(" --log-driver=k8s-file") + 1
# create_work names results WU_0, WU_1, ...: room for the suffix of the container's name.
RESULT_SUFFIX = len("_99999")
# The arguments of one job, joined as docker_wrapper joins them (" a b"): with the longest
# names allowed below, create_container()'s command stays within its buffer.
ARGS_MAX = 400
WRAPPER_OPTIONS = {"--config", "--dockerfile", "--sporadic", "--verbose"}
# Characters /bin/sh reads inside the "..." around ARGS, and quotes whose grouping is lost.
ARGS_FORBIDDEN = {'"': "a double quote", "'": "a single quote", "$": "'$'", "`": "a backtick",
                  "\\": "a backslash", "\n": "a newline", "\r": "a carriage return"}
# Files docker_wrapper reads in the slot, beside those of the client (boinc.apps.SLOT_RESERVED).
WRAPPER_SLOT_FILES = (DOCKERFILE, JOB_TOML, "fraction_done")
TEMPLATE_PREFIX = "templates/docker_"


class DockerJobError(apps.AppError):
    """A Docker job BOINC's docker_wrapper or Docker cannot run; `advice` says what to do."""


def check_image_reference(reference: str) -> str:
    """An image reference as Docker reads it (FROM, docker run), or DockerJobError."""
    if not reference:
        raise DockerJobError("no image given", f"name a Docker image: {REFERENCE_FORM}")
    if any(c.isspace() for c in reference):
        raise DockerJobError(f"image {reference!r} holds white space", f"write it as {REFERENCE_FORM}")
    match = REFERENCE.fullmatch(reference)
    if match is None:
        lowered = REFERENCE.fullmatch(reference.lower())
        if lowered is not None:
            name, rest = _split_name(reference)
            raise DockerJobError(f"image {reference!r}: Docker's image names are lowercase",
                                 f"write {name.lower() + rest!r}")
        raise DockerJobError(f"{reference!r} is not a Docker image reference", f"write it as {REFERENCE_FORM}")
    name, digest = match.group("name"), match.group("digest")
    if len(name) > NAME_MAX:
        raise DockerJobError(f"image name {name[:40]!r}... is {len(name)} characters long",
                             f"Docker takes image names of at most {NAME_MAX} characters")
    if IMAGE_ID.fullmatch(name) and not match.group("tag"):
        raise DockerJobError(f"{reference!r} reads as an image id, not a name",
                             "give the image's name (`docker image ls` shows it)")
    if digest:
        algorithm, _, hex_digits = digest.partition(":")
        if algorithm not in DIGEST_HEX_LENGTHS:
            raise DockerJobError(f"image {reference!r}: digest algorithm {algorithm!r} is not one Docker knows",
                                 f"use {', '.join(DIGEST_HEX_LENGTHS)}, e.g. @sha256:<64 hex digits>")
        if len(hex_digits) != DIGEST_HEX_LENGTHS[algorithm] or hex_digits != hex_digits.lower():
            raise DockerJobError(f"image {reference!r}: a {algorithm} digest is {DIGEST_HEX_LENGTHS[algorithm]} "
                                 "lowercase hex digits", "copy the digest from `docker image ls --digests`")
    return reference


def _split_name(reference: str) -> tuple[str, str]:
    """(name, ':TAG@DIGEST' rest) of a reference, without validating it."""
    at = reference.find("@")
    before, digest = (reference, "") if at < 0 else (reference[:at], reference[at:])
    slash = before.rfind("/")
    colon = before.rfind(":")
    if colon > slash:
        return before[:colon], before[colon:] + digest
    return before, digest


# -- the Dockerfile of `create-work --image` --------------------------------------------------
def dockerfile(image: str, command: list[str] | None = None) -> str:
    """The Dockerfile that makes docker_wrapper run `docker run IMAGE COMMAND...`.

    CMD in JSON (exec) form: each word stays one argument, no shell reads it, and the image's
    ENTRYPOINT, if any, gets them as `docker run` would give them. Without a command the
    image's own CMD runs. WORKDIR is the slot, where the inputs are and outputs must go."""
    lines = [f"FROM {check_image_reference(image)}", f"WORKDIR {DEFAULT_WORKDIR}"]
    if command:
        if not command[0]:
            raise DockerJobError("the command is an empty word", "give the program to run, e.g. -- python -c ...")
        lines.append("CMD " + json.dumps(list(command)))
    return "\n".join(lines) + "\n"


# -- job names and arguments, as docker_wrapper uses them -------------------------------------
def image_name(projdir: str, wu_name: str) -> str:
    """The image docker_wrapper builds for a job (lib/util.cpp docker_image_name)."""
    return f"boinc__{projdir}__{wu_name}".lower()


def build_command(image: str) -> str:
    return f'build "." -t {image} -f {DOCKERFILE} '


def check_job_name(wu_name: str, projdir: str = "") -> str:
    """A job name whose image and container names Docker takes and docker_wrapper's buffers
    hold (projdir: the project's folder on clients; "" checks the name alone)."""
    if not re.fullmatch(PATH_COMPONENT, wu_name.lower(), re.ASCII):
        raise DockerJobError(
            f"job name {wu_name!r} cannot name a Docker image (docker_wrapper builds boinc__PROJECT__{wu_name.lower()})",
            "use letters and digits joined by one '.', one or two '_' or dashes, starting and ending "
            "with a letter or digit, e.g. run_1")
    image = image_name(projdir, wu_name)
    longest = BUILD_BUFFER - 1 - len(build_command(""))
    if len(image) > longest:
        raise DockerJobError(f"job name {wu_name!r} is too long for docker_wrapper: its image name "
                             f"{image!r} has {len(image)} characters, at most {longest} fit its build command",
                             f"use a job name of at most {max(longest - len(image_name(projdir, '')), 1)} characters")
    return wu_name


def wrapper_args(command_line: str | None) -> list[str]:
    """The words docker_wrapper puts into ARGS, as BOINC's client splits the command line."""
    return (command_line or "").split()


def check_args(command_line: str | None) -> str | None:
    """A job's arguments for docker_wrapper's ARGS, or DockerJobError."""
    if not command_line:
        return command_line
    for char, what in ARGS_FORBIDDEN.items():
        if char in command_line:
            raise DockerJobError(
                f"the job's arguments {command_line[:60]!r} hold {what}: docker_wrapper passes them to the "
                "container through /bin/sh inside double quotes, as ARGS, split at spaces",
                "use plain words separated by spaces (put anything else into an input file)")
    words = wrapper_args(command_line)
    for word in words:
        if word in WRAPPER_OPTIONS:
            raise DockerJobError(f"the job's arguments hold {word}, which docker_wrapper takes for itself",
                                 f"leave {word} out of the job's arguments")
    joined = sum(1 + len(w) for w in words)
    if joined > ARGS_MAX:
        raise DockerJobError(f"the job's arguments are {joined} characters long; docker_wrapper's "
                             f"command holds at most {ARGS_MAX}", "put long arguments into an input file")
    return command_line


def create_command_length(projdir: str, wu_name: str, command_line: str | None) -> int:
    """The longest `docker create` command docker_wrapper writes for the job (its results too)."""
    image = image_name(projdir, wu_name)
    words = wrapper_args(command_line)
    args = len(' -e ARGS=""') + sum(1 + len(w) for w in words) if words else 0
    return CREATE_FIXED + len(image) + RESULT_SUFFIX + args + len(image)


def check_job(wu_name: str, command_line: str | None, projdir: str = "") -> None:
    """A job of a Docker app: its name and its arguments. (Each within its own limit, the two
    together fit the create command: ARGS_MAX is chosen so.)"""
    check_job_name(wu_name, projdir)
    check_args(command_line)


# -- the files of a job -------------------------------------------------------------------------
def _slot_name(name: str, what: str) -> str:
    if name in WRAPPER_SLOT_FILES or name in apps.SLOT_RESERVED or name.startswith(apps.SLOT_RESERVED_PREFIX):
        raise DockerJobError(f"{what} cannot be named {name!r}: BOINC or docker_wrapper keeps a file of that "
                             "name in the job's folder", "choose another name")
    return name


def check_output_name(name: str) -> str:
    """An output file the command writes in its working folder (the slot), which the client
    takes from there by that name after the container exits."""
    try:
        apps.check_output_name(name)
    except apps.AppError as exc:
        raise DockerJobError(exc.message, exc.advice or "use letters, digits, '.', '_' or '-' (at most 64), "
                             f"and have the command write the file into {DEFAULT_WORKDIR}") from None
    return _slot_name(name, "an output")


def check_input_name(name: str) -> str:
    """The name an input file has in the container's working folder (its file name)."""
    if not apps.OPEN_NAME.fullmatch(name) or name in (".", ".."):
        raise DockerJobError(f"input file name {name!r} is not valid for BOINC",
                             "rename the file: letters, digits, '.', '_' or '-' (at most 64)")
    return _slot_name(name, "an input")


def template_name(kind: str, text: str) -> str:
    """templates/docker_{in,out}_DIGEST: one file per content, shared by the jobs that use it.

    The workunit row keeps the result template's path in 63 characters (result_template_file)."""
    return f"{TEMPLATE_PREFIX}{kind}_{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def is_docker_plan_class(plan_class: str | None) -> bool:
    """A version run by docker_wrapper: its plan class is (a variant of) `docker`."""
    return "docker" in (plan_class or "")
