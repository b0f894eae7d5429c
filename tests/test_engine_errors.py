"""Without a reachable Docker engine every command gives doctor's advice, not a traceback.

Real, not mocked: DOCKER_HOST points at a socket where no engine listens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client installed")


@pytest.mark.parametrize("command", [["status"], ["up"], ["build"], ["down"], ["doctor"]])
def test_engine_not_running_gives_the_fix(tmp_path, command):
    project = tmp_path / "proj"
    subprocess.run([sys.executable, "-m", "boincserver", "init", str(project)], check=True, capture_output=True)
    before = sorted(p.name for p in project.iterdir())
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    done = subprocess.run([sys.executable, "-m", "boincserver", "-C", str(project), *command],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    text = done.stdout + done.stderr
    assert "Traceback" not in text
    assert "engine is not reachable" in text
    assert "dockerd" in text or "systemctl start docker" in text
    assert sorted(p.name for p in project.iterdir()) == before


# -- Docker's failures, classified once (engine.classify) --------------------------------------
from boincserver import engine  # noqa: E402
from boincserver.errors import (ComposeMissing, DockerError, EngineUnreachable, NoSuchImage,  # noqa: E402
                                ServiceNotRunning)


@pytest.mark.parametrize("stderr, kind", [
    ("Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?", EngineUnreachable),
    ("failed to connect to the docker API at unix:///x.sock; check if the path is correct and if the daemon "
     "is running: dial unix /x.sock: connect: no such file or directory", EngineUnreachable),
    ("docker: 'compose' is not a docker command.\nSee 'docker --help'", ComposeMissing),
    ('service "apache" is not running', ServiceNotRunning),
    ("no such service: apach", ServiceNotRunning),
    ("Unable to find image 'demo/makeproject:1' locally\ndocker: Error response from daemon: pull access denied",
     NoSuchImage),
    (" Image demo/makeproject:1 Error Get \"https://registry-1.docker.io/v2/\": no such host", NoSuchImage),
    ("tar: /run/boincserver/project: Cannot open: No such file or directory", DockerError),
])
def test_failures_are_classified_by_what_docker_printed(stderr, kind):
    problem = engine.classify(["docker", "compose", "exec", "apache", "true"], 1, stderr)
    assert type(problem) is kind
    if kind in (EngineUnreachable, ComposeMissing):
        assert problem.advice in (engine.ADVICE_ENGINE, engine.ADVICE_COMPOSE)
    else:
        assert problem.command == ["docker", "compose", "exec", "apache", "true"] and problem.stderr == stderr


def _no_client_engine():
    return object.__new__(engine.Engine)  # no docker client needed: the command is given whole


def test_one_command_feeds_stdin_and_consumes_stdout():
    e = _no_client_engine()
    ran = e._one_command(["sh", "-c", "tr a-z A-Z; echo note >&2"], b"hello\n", None, True)
    assert (ran.code, ran.out, ran.err) == (0, b"HELLO\n", "note\n")
    ran = e._one_command(["sh", "-c", "wc -c"], lambda dst: [dst.write(b"x" * 1000) for _ in range(300)],
                         lambda src: int(src.read().split()[0]), True)
    assert ran.out == 300_000


def test_one_command_exit_codes_raise_or_are_returned():
    e = _no_client_engine()
    with pytest.raises(DockerError) as info:
        e._one_command(["sh", "-c", "cat; echo broken >&2; exit 4"], b"secret-value", None, True)
    assert info.value.returncode == 4 and "broken" in str(info.value)
    assert "secret-value" not in str(info.value) + info.value.stdout  # stdout may hold secrets
    ran = e._one_command(["sh", "-c", "echo broken >&2; exit 3"], None, None, False)
    assert (ran.code, ran.err) == (3, "broken\n")
    # Docker's own failures raise even when the caller takes the exit code itself.
    with pytest.raises(ServiceNotRunning):
        e._one_command(["sh", "-c", "echo 'service \"apache\" is not running' >&2; exit 1"], None, None, False)
