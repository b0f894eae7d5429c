"""Docker apps end to end: a container image as a BOINC job, run by our BOINC 8.2 volunteer.

A project of its own (docker_stack), so that no other test's queued native jobs reach its
clients. First Debian's client 7.20, which reports no Docker, is attached: it gets a native
job but not the Docker job queued before it, and the scheduler log says why. Then
`boincserver volunteer up` starts the 8.2 client built from source, which detects Docker on
this machine's engine and computes: an app made from a Dockerfile, a `create-work --image`
job, a container that exits non-zero, and the Docker job the 7.20 client could not take,
beside a native job. Every output is fetched with `boincserver results --out` and compared
byte for byte with what the same image gives when run here with `docker run`.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Callable

import os

import pytest

from boincserver import boinc_source, pins

from .conftest import Stack, apache_sh, debian_client, ensure_example_app, running_project, run_cli, sql

TIMEOUT = 600
BASE = pins.BASE_OS_IMAGE

# The 8.2 volunteer is built from the client's source, as the server is from its own.
pytestmark = pytest.mark.skipif(
    boinc_source.cached(boinc_source.client_source()) is None and not os.environ.get(boinc_source.ENV_CLIENT_SOURCE),
    reason=f"BOINC client source not available: put boinc-{pins.CLIENT_COMMIT}.tar.gz into boincserver's "
           f"cache or set {boinc_source.ENV_CLIENT_SOURCE}")


@pytest.fixture(scope="module")
def docker_stack(tmp_path_factory):
    with running_project(tmp_path_factory.mktemp("docker"), "dk") as s:
        ensure_example_app(s, "uppercase")
        yield s


class Volunteer:
    """The 8.2 client of `boincserver volunteer up`, seen through `volunteer status`."""

    def __init__(self, stack: Stack):
        self.stack = stack

    def status(self) -> dict:
        return json.loads(run_cli("volunteer", "status", "--json", cwd=self.stack.dir).stdout)

    def nudge(self) -> None:
        run_cli("volunteer", "update", cwd=self.stack.dir, check=False)

    def log(self) -> str:
        done = run_cli("volunteer", "logs", cwd=self.stack.dir, check=False)
        return done.stdout + done.stderr


@pytest.fixture(scope="module")
def volunteer(docker_stack):
    up = json.loads(run_cli("volunteer", "up", "--json", cwd=docker_stack.dir).stdout)
    try:
        assert up["docker"], f"the 8.2 volunteer found no Docker: {up}"
        yield Volunteer(docker_stack)
    finally:
        run_cli("volunteer", "down", cwd=docker_stack.dir, check=False)


def job_of(stack: Stack, wu: str) -> tuple[int, dict]:
    done = run_cli("results", "--wu", wu, "--json", cwd=stack.dir, check=False)
    # Exit 2 is a failed job (the caller looks at it); anything else but 0 is `results` failing.
    assert done.returncode in (0, 2), f"boincserver results failed:\n{done.stdout}\n{done.stderr}"
    return done.returncode, json.loads(done.stdout)["jobs"][0]


def wait_ended(stack: Stack, wu: str, nudge: Callable[[], None], log: Callable[[], str]) -> dict:
    deadline = time.monotonic() + TIMEOUT
    last_nudge = 0.0
    job: dict = {}
    while time.monotonic() < deadline:
        _, job = job_of(stack, wu)
        if job.get("state") in ("done", "failed"):
            return job
        if time.monotonic() - last_nudge > 20:
            nudge()
            last_nudge = time.monotonic()
        time.sleep(3)
    raise AssertionError(f"job {wu} not ended in {TIMEOUT}s: {job}\nclient log:\n{log()[-4000:]}")


def fetched(stack: Stack, wu: str, name: str, out: Path) -> bytes:
    report = json.loads(run_cli("results", "--wu", wu, "--out", out, "--json", cwd=stack.dir).stdout)
    assert report["summary"] == {"done": 1, "pending": 0, "failed": 0}, report
    return (out / wu / name).read_bytes()


def docker_run_here(image: str, folder: Path, *command: str) -> None:
    """What `docker run IMAGE COMMAND` does with FOLDER as its working folder, on this machine."""
    subprocess.run(["docker", "run", "--rm", "-v", f"{folder}:/app", "-w", "/app", image, *command],
                   check=True, capture_output=True)


def result_hosts(stack: Stack, wu: str) -> list[str]:
    """The hosts' `misc` (where the scheduler keeps a host's Docker) of a job's successful results."""
    return sql(stack.dir, stack.project,
               f"SELECT h.misc FROM result r JOIN host h ON h.id = r.hostid "
               f"WHERE r.name LIKE '{wu}\\_%' AND r.outcome = 1").splitlines()


# -- (d) first: a client without Docker, before the 8.2 volunteer exists ---------------------
def test_client_without_docker_gets_native_jobs_but_no_docker_job(docker_stack: Stack, tmp_path):
    stack = docker_stack
    run_cli("create-work", "--image", BASE, "--wu-name", "dk_waiting", "--output", "hello.txt",
            "--", "sh", "-c", "echo hello from a container > hello.txt", cwd=stack.dir)
    with debian_client(stack, "nodocker") as old:
        log_line = "Docker not present"
        deadline = time.monotonic() + 180
        while log_line not in apache_sh(stack.dir, "cat log_boincserver/scheduler.log 2>/dev/null || true"):
            assert time.monotonic() < deadline, f"no {log_line!r} in the scheduler log\n{old.log()[-3000:]}"
            old.cmd("--project", old.url, "update", check=False)
            time.sleep(10)
        src = tmp_path / "words.txt"
        src.write_text("native jobs still reach a client without Docker\n")
        run_cli("create-work", "uppercase", src, "--wu-name", "dk_native_old", cwd=stack.dir)
        job = wait_ended(stack, "dk_native_old", lambda: old.cmd("--project", old.url, "update", check=False),
                         old.log)
        assert job["state"] == "done", job
        assert fetched(stack, "dk_native_old", "out", tmp_path / "o") == \
            b"NATIVE JOBS STILL REACH A CLIENT WITHOUT DOCKER\n"
    _, waiting = job_of(stack, "dk_waiting")
    assert waiting["state"] == "pending", waiting
    assert sql(stack.dir, stack.project, "SELECT server_state FROM result WHERE name LIKE 'dk\\_waiting\\_%'"
               ).split() == ["2"], "the Docker job was sent to a client without Docker"  # 2: unsent


# -- (a) an app made from a Dockerfile --------------------------------------------------------
DOCKERFILE = f"""FROM {BASE}
# Made when the volunteer's engine builds the image: only this image can write it.
RUN {{ cat /etc/debian_version; sha256sum /etc/os-release; }} > /opt/image-stamp
WORKDIR /app
COPY shout.sh /opt/shout.sh
CMD ["sh", "/opt/shout.sh"]
"""
SHOUT = "cat /opt/image-stamp > out\ntr a-z A-Z < in >> out\n"


def test_docker_app_from_a_dockerfile_computed_by_the_82_volunteer(docker_stack: Stack, volunteer, tmp_path):
    stack = docker_stack
    app_dir = tmp_path / "shout"
    app_dir.mkdir()
    (app_dir / "Dockerfile").write_text(DOCKERFILE)
    (app_dir / "shout.sh").write_text(SHOUT)
    run_cli("app", "add", "shout", "--docker", app_dir, cwd=stack.dir)
    spec = apache_sh(stack.dir, "cat plan_class_spec.xml")
    assert "<docker/>" in spec and "<name>mt</name>" in spec, spec
    src = tmp_path / "in.txt"
    src.write_text("made in a container\n")
    run_cli("create-work", "shout", src, "--wu-name", "dk_shout", "--max-error-results", "2", cwd=stack.dir)
    job = wait_ended(stack, "dk_shout", volunteer.nudge, volunteer.log)
    assert job["state"] == "done", f"{job}\n{volunteer.log()[-4000:]}"
    got = fetched(stack, "dk_shout", "out", tmp_path / "o")

    # The same image's stamp, and the same text uppercased, made here by `docker run`.
    expected = subprocess.run(["docker", "run", "--rm", "-i", BASE, "sh", "-c",
                               "{ cat /etc/debian_version; sha256sum /etc/os-release; }; tr a-z A-Z"],
                              input=b"made in a container\n", check=True, capture_output=True).stdout
    assert got == expected
    assert b"MADE IN A CONTAINER\n" in got


# -- submit: Docker jobs in bulk, each with its own arguments ------------------------------------
ECHO_ARGS = "printf 'args:%s\\n' \"$ARGS\" > out\ncat in >> out\n"


def test_submit_gives_each_docker_job_its_own_arguments(docker_stack: Stack, volunteer, tmp_path):
    stack = docker_stack
    app_dir = tmp_path / "echoargs"
    app_dir.mkdir()
    (app_dir / "Dockerfile").write_text(f"FROM {BASE}\nWORKDIR /app\nCOPY args.sh /opt/args.sh\n"
                                        'CMD ["sh", "/opt/args.sh"]\n')
    (app_dir / "args.sh").write_text(ECHO_ARGS)
    run_cli("app", "add", "echoargs", "--docker", app_dir, cwd=stack.dir)
    for n in (1, 2):
        (tmp_path / f"in{n}.txt").write_text(f"input {n}\n")
    jobs = tmp_path / "jobs.txt"
    jobs.write_text('--wu-name dk_args_1 --command-line "alpha beta" in1.txt\n'
                    '--wu-name dk_args_2 --command-line "gamma" in2.txt\n')
    run_cli("submit", "echoargs", "--jobs", jobs, "--max-error-results", "2", cwd=stack.dir)
    for wu, args, text in (("dk_args_1", ["alpha", "beta"], "input 1\n"), ("dk_args_2", ["gamma"], "input 2\n")):
        job = wait_ended(stack, wu, volunteer.nudge, volunteer.log)
        assert job["state"] == "done", f"{job}\n{volunteer.log()[-4000:]}"
        first, rest = fetched(stack, wu, "out", tmp_path / "o").decode().split("\n", 1)
        assert first.removeprefix("args:").split() == args and rest == text, (first, rest)


# -- (b) boinc2docker's one-liner --------------------------------------------------------------
def test_create_work_image_runs_the_command_as_docker_run_would(docker_stack: Stack, volunteer, tmp_path):
    stack = docker_stack
    src = tmp_path / "words.txt"
    src.write_text("four words to count\nand four more here\n")
    command = ["sh", "-c", "wc -w < words.txt > count.txt && sort words.txt > sorted.txt"]
    run_cli("create-work", "--image", BASE, "--input", src, "--output", "count.txt", "--output", "sorted.txt",
            "--wu-name", "dk_image", "--max-error-results", "2", "--", *command, cwd=stack.dir)
    job = wait_ended(stack, "dk_image", volunteer.nudge, volunteer.log)
    assert job["state"] == "done", f"{job}\n{volunteer.log()[-4000:]}"
    here = tmp_path / "here"
    here.mkdir()
    (here / "words.txt").write_bytes(src.read_bytes())
    docker_run_here(BASE, here, *command)
    for name in ("count.txt", "sorted.txt"):
        assert fetched(stack, "dk_image", name, tmp_path / "o") == (here / name).read_bytes(), name
    assert (here / "count.txt").read_text().strip() == "8"


# -- (c) a container that fails ----------------------------------------------------------------
def test_a_container_exiting_non_zero_fails_the_job_with_its_exit_status(docker_stack: Stack, volunteer):
    stack = docker_stack
    run_cli("create-work", "--image", BASE, "--output", "never.txt", "--wu-name", "dk_exit3",
            "--max-error-results", "1", "--", "sh", "-c", "echo giving up on purpose >&2; exit 3", cwd=stack.dir)
    job = wait_ended(stack, "dk_exit3", volunteer.nudge, volunteer.log)
    assert job["state"] == "failed", job
    code, job = job_of(stack, "dk_exit3")
    assert code == 2
    # --max-error-results 1: the job fails once more than one result failed, so two tries.
    assert [f["exit_status"] for f in job["failures"]] == [3, 3], job
    # The container's own words come back, picked out of docker_wrapper's log of its commands.
    raw = sql(stack.dir, stack.project, "SELECT stderr_out FROM result WHERE name = 'dk_exit3_0'")
    assert job["failures"][0].get("container_output") == "giving up on purpose", f"{job}\n{raw}"
    text = run_cli("results", "--wu", "dk_exit3", cwd=stack.dir, check=False)
    assert text.returncode == 2 and "exit 3" in text.stdout and "giving up on purpose" in text.stdout, text.stdout


# -- a native app and a Docker app side by side ------------------------------------------------
def test_native_and_docker_jobs_served_side_by_side_to_the_82_volunteer(docker_stack: Stack, volunteer, tmp_path):
    stack = docker_stack
    src = tmp_path / "in.txt"
    src.write_text("native beside docker\n")
    run_cli("create-work", "uppercase", src, "--wu-name", "dk_native_new", cwd=stack.dir)
    native = wait_ended(stack, "dk_native_new", volunteer.nudge, volunteer.log)
    waited = wait_ended(stack, "dk_waiting", volunteer.nudge, volunteer.log)
    assert native["state"] == "done" and waited["state"] == "done", (native, waited)
    assert fetched(stack, "dk_native_new", "out", tmp_path / "o") == b"NATIVE BESIDE DOCKER\n"
    assert fetched(stack, "dk_waiting", "hello.txt", tmp_path / "o") == b"hello from a container\n"
    hosts = result_hosts(stack, "dk_native_new") + result_hosts(stack, "dk_waiting")
    assert len(hosts) == 2 and len(set(hosts)) == 1 and '"docker"' in hosts[0], hosts
    status = volunteer.status()
    assert status["docker"] and any(p["url"].rstrip("/").endswith(stack.project) for p in status["projects"]), status
