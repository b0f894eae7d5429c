"""The use case `create-work --image`: boinc2docker's one-liner, run by BOINC's own docker_wrapper.

The job belongs to the project's generic Docker app (its version holds docker_wrapper only,
plan class docker; installed on first use). What makes it run IMAGE is its first input, a
Dockerfile written here (`FROM IMAGE`, `WORKDIR /app`, `CMD [COMMAND, ARG...]`): the volunteer's
engine builds it in the job's folder, which docker_wrapper mounts at /app, and runs it as
`docker run IMAGE COMMAND ARG...` would. The other inputs follow it into that folder under
their own names; the outputs are the files the command writes there. Since every job has its
own files, it names its own templates (templates/docker_{in,out}_DIGEST, sent with it); the
rest goes as `create-work APP FILES` goes (jobs.send: one tar stream, one create_work).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

from boincserver import apps
from boincserver.boinc import apps as boinc_apps
from boincserver.boinc import docker
from boincserver.boinc import jobs as bj
from boincserver.context import Project
from boincserver.errors import InvalidInput
from boincserver.jobs import SubmitResult, project_dir_on_clients, refusals, send, work_option_args


def input_names(inputs: list[Path]) -> list[str]:
    """Each input's name in the container's working folder (its file name), all checked."""
    names: list[str] = []
    for path in inputs:
        if not path.exists():
            raise InvalidInput(f"input file {path} does not exist; no job was created",
                               advice="give the path of a file on this machine with --input")
        if not path.is_file():
            raise InvalidInput(f"input {path} is not a file; no job was created",
                               advice="give files with --input (pack a folder into one, e.g. with tar, "
                                      "and unpack it in the command)")
        with refusals(f"--input {path}: "):
            names.append(docker.check_input_name(path.name))
        if names.count(path.name) > 1:
            raise InvalidInput(f"two inputs are named {path.name!r}; each lands in the job's folder under its "
                               "file name", advice="rename one of them")
    return names


def check_outputs(outputs: list[str], inputs: list[str]) -> list[str]:
    for name in outputs:
        with refusals("--output: "):
            docker.check_output_name(name)
        if outputs.count(name) > 1:
            raise InvalidInput(f"--output {name} is given twice", advice="give each output once")
        if name in inputs:
            raise InvalidInput(f"--output {name} is also an input's name",
                               advice="have the command write its result under another name")
    return outputs


def create_work(project: Project, image: str, command: list[str], inputs: list[Path] | None = None,
                outputs: list[str] | None = None, wu_name: str | None = None,
                options: dict | None = None, sign_key: Path | None = None) -> SubmitResult:
    """One job that runs COMMAND in IMAGE on a volunteer with Docker; nothing is changed
    unless every argument is good."""
    inputs = [Path(f) for f in inputs or []]
    outputs = list(outputs or [])
    options = dict(options or {})
    priority = options.pop("priority", None)  # the job's own, on its line; the rest are the run's
    with refusals():
        text = docker.dockerfile(image, command)
        if wu_name:
            bj.check_wu_name(wu_name)
    names = input_names(inputs)
    check_outputs(outputs, names)
    option_args = work_option_args(options)
    in_template = boinc_apps.input_template([docker.DOCKERFILE, *names])
    out_template = boinc_apps.output_template(outputs)
    templates = {docker.template_name("in", in_template): in_template.encode(),
                 docker.template_name("out", out_template): out_template.encode()}
    wu_template, result_template = templates
    app = docker.GENERIC_APP
    prefix = f"{app}_{time.strftime('%Y%m%d%H%M%S')}_{uuid.uuid4().hex[:6]}"
    name = wu_name or f"{prefix}_1"
    with refusals():
        docker.check_job_name(name, project_dir_on_clients(project))
        bj.stdin_line(name, ["x"] * (1 + len(inputs)), None, priority, wu_template, result_template)
    # The app on first use; the project's scheduler must serve the docker plan class.
    # sign_key: the offline code-signing key, needed once, when the generic app is installed.
    apps.ensure_docker_app(project, app, friendly_name=docker.GENERIC_APP_FRIENDLY_NAME, sign_key=sign_key)
    with tempfile.TemporaryDirectory(prefix="boincserver-image-job-") as folder:
        dockerfile = Path(folder) / docker.DOCKERFILE
        dockerfile.write_text(text)
        job = bj.Job(files=[str(dockerfile), *(str(f.absolute()) for f in inputs)], wu_name=name,
                     priority=priority, lineno=1, wu_template=wu_template, result_template=result_template)
        result = send(project, app, [job], Path("/"), prefix, set(), option_args, None, files=templates)
    result.first = name
    return result
