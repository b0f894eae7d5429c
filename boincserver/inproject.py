"""The project's own programs, run in its services, and their exit codes turned into our errors.

Two helpers live in the images: boincserver-jobs in the apache service (apps, jobs, batches;
run with `docker compose exec` as the BOINC user in PROJECT_ROOT) and the secrets vault of
boincserver-project-setup in a one-shot makeproject container. Both answer in JSON on stdout
and say what went wrong in one line on stderr; this module is the only host module that reads
their exit codes (defined by the helpers, boincserver/container/) and their refusals.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from boincserver.container.jobs import NAME as JOBS_HELPER
from boincserver.container.jobs import USER_MISTAKE as JOBS_REFUSED
from boincserver.container.setup import ERROR_PREFIX as VAULT_ERROR
from boincserver.container.setup import FAILED as VAULT_FAILED
from boincserver.context import Project
from boincserver.engine import Consume, Feed, Ran
from boincserver.errors import DockerError, InvalidInput, ProjectError, ServiceNotRunning

NOT_FOUND = 127  # the shell's "command not found": an apache image older than the helper
VAULT = ["boincserver-project-setup", "secrets"]
# Test hook of the vault: exit hard right after the named step of a rotation.
FAULT_ENV = "BOINCSERVER_FAULT_AFTER"


def in_apache(project: Project, command: Sequence[str], *, stdin: Feed = None, consume: Consume = None) -> Ran:
    """A command in the running apache service as the BOINC user, in PROJECT_ROOT; its exit
    code is the caller's to read.

    No `compose ps` first (half a second): a stopped project shows in exec's own error."""
    try:
        return project.engine.exec("apache", command, user=project.settings.boinc_user,
                                   workdir=project.settings.project_root, stdin=stdin, consume=consume,
                                   check=False)
    except ServiceNotRunning:
        raise ProjectError(f"project {project.settings.project!r} is not running",
                           advice="start it with `boincserver up`") from None


def jobs_helper(project: Project, args: Sequence[str], *, stdin: Feed = None, consume: Consume = None):
    """boincserver-jobs ARGS in apache: its JSON answer, or what consume returned."""
    return helper_answer(in_apache(project, [JOBS_HELPER, *args], stdin=stdin, consume=consume),
                         consumed=consume is not None)


def helper_answer(ran: Ran, consumed: bool = False):
    """boincserver-jobs's answer (JSON, or what consume returned), or its refusal as our error."""
    message = " ".join(line.split(f"{JOBS_HELPER}: ", 1)[-1] for line in ran.err.strip().splitlines()
                       if f"{JOBS_HELPER}:" in line)
    if ran.code == JOBS_REFUSED:
        raise InvalidInput(message or ran.err.strip())
    if ran.code == NOT_FOUND or f"{JOBS_HELPER}: not found" in ran.err or "executable file not found" in ran.err:
        raise ProjectError(f"the apache image has no {JOBS_HELPER}: it predates apps and jobs",
                           advice="`boincserver up` rebuilds it")
    if ran.code != 0:
        raise ProjectError(f"the apache service could not do it (exit {ran.code}): {ran.err.strip()[-1500:]}",
                           advice="see `boincserver logs apache`")
    if consumed:
        return ran.out
    return json.loads(ran.out.decode() or "null")


def vault(project: Project, args: Sequence[str], stdin: bytes | None = None) -> bytes:
    """The secrets vault (a one-shot makeproject container, MariaDB started for it): its stdout.

    Secrets travel through stdin and stdout only, never on a command line or in an error."""
    env = {FAULT_ENV: os.environ[FAULT_ENV]} if os.environ.get(FAULT_ENV) else None
    ran = project.engine.run([*VAULT, *args], service="makeproject", dependencies=True, env=env, stdin=stdin,
                             check=False)
    if ran.code == VAULT_FAILED and VAULT_ERROR in ran.err:
        raise ProjectError(" ".join(line.split(VAULT_ERROR, 1)[1] for line in ran.err.splitlines()
                                    if VAULT_ERROR in line))
    if ran.code != 0:
        raise DockerError(ran.command, ran.code, ran.err)
    return ran.out


def vault_json(project: Project, args: Sequence[str], stdin: bytes | None = None) -> dict:
    return json.loads(vault(project, args, stdin).decode())
